"""`{% runtime_graphs runtime %}` and `{% cluster_usage cluster %}`: the runtime and cluster pages' sparklines."""

from django import template

from apps.monitoring import graphs

register = template.Library()


@register.inclusion_tag("monitoring/_graphs_body.html")
def runtime_graphs(runtime, window: str = "1h"):
    return graphs.runtime_graphs(runtime, window)


@register.inclusion_tag("monitoring/_cluster_usage_body.html")
def cluster_usage(cluster, window: str = "1h"):
    return graphs.cluster_usage(cluster, window)
