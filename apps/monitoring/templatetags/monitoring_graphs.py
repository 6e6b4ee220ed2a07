"""`{% runtime_graphs runtime %}`: the runtime page's sparklines (templates/monitoring/_runtime_graphs.html)."""

from django import template

from apps.monitoring import graphs

register = template.Library()


@register.inclusion_tag("monitoring/_graphs_body.html")
def runtime_graphs(runtime, window: str = "1h"):
    return graphs.runtime_graphs(runtime, window)
