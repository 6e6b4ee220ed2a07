"""Alert rules: their changes (permission, validation, audit) and their evaluation by the worker
after each collection, from the services' raw samples."""

from __future__ import annotations

import datetime

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.utils import timezone

from apps.monitoring import services
from apps.monitoring.choices import AlertMetric, AlertOperator, AlertState, NotifyEvent
from apps.monitoring.models import AlertRule, MetricSample
from apps.projects import audit, permissions, scope

MAX_DURATION = 7 * 24 * 3600


def _require(user, runtime) -> None:
    if not scope.has_perm(user, permissions.CHANGE, runtime.application):
        raise PermissionDenied("changing alert rules needs the change permission on the application")


def _clean(fields: dict) -> dict:
    out = dict(fields)
    if "name" in out:
        out["name"] = (out["name"] or "").strip()
        if not out["name"]:
            raise ValidationError({"name": ["a rule needs a name"]})
    if "service" in out:
        out["service"] = (out["service"] or "").strip()
        if not out["service"]:
            raise ValidationError({"service": ["name the service the rule watches"]})
    if "metric" in out and out["metric"] not in AlertMetric.values:
        raise ValidationError({"metric": [f"one of {', '.join(AlertMetric.values)}"]})
    if "operator" in out and out["operator"] not in AlertOperator.values:
        raise ValidationError({"operator": [f"one of {', '.join(AlertOperator.values)}"]})
    if "duration" in out and not 0 <= int(out["duration"]) <= MAX_DURATION:
        raise ValidationError({"duration": [f"between 0 and {MAX_DURATION} seconds"]})
    if "threshold" in out and out["threshold"] is None:
        raise ValidationError({"threshold": ["a number"]})
    return out


def _services_of(runtime) -> set[str]:
    return set(MetricSample.objects.filter(runtime=runtime, replica="").values_list("service", flat=True).distinct())


def create_rule(user, runtime, **fields) -> AlertRule:
    _require(user, runtime)
    fields = _clean({"operator": AlertOperator.ABOVE, "duration": 300, **fields})
    known = _services_of(runtime)
    if known and fields["service"] not in known:
        raise ValidationError({"service": [f"runtime {runtime.name} has no service {fields['service']!r}; "
                                           f"it has {', '.join(sorted(known))}"]})
    if AlertRule.objects.filter(runtime=runtime, name=fields["name"]).exists():
        raise ValidationError({"name": [f"runtime {runtime.name} already has a rule named {fields['name']!r}"]})
    with transaction.atomic():
        rule = AlertRule.objects.create(runtime=runtime, **fields)
        audit.record(user, "alert_rule.create", rule, after=audit.snapshot(rule))
    return rule


def update_rule(user, rule: AlertRule, **fields) -> AlertRule:
    _require(user, rule.runtime)
    before = audit.snapshot(rule)
    for key, value in _clean(fields).items():
        setattr(rule, key, value)
    with transaction.atomic():
        rule.save()
        audit.record(user, "alert_rule.update", rule, before=before, after=audit.snapshot(rule))
    return rule


def delete_rule(user, rule: AlertRule) -> None:
    _require(user, rule.runtime)
    with transaction.atomic():
        audit.record(user, "alert_rule.delete", rule, before=audit.snapshot(rule))
        rule.delete()


# ---- evaluation ----------------------------------------------------------------------------------


def _value(sample: dict, metric: str) -> float | None:
    if metric == AlertMetric.MEMORY:
        return None if sample["memory_bytes"] is None else sample["memory_bytes"] / 1024 / 1024
    return sample[metric] if sample[metric] is None else float(sample[metric])


def _beyond(rule: AlertRule, value: float) -> bool:
    return value > rule.threshold if rule.operator == AlertOperator.ABOVE else value < rule.threshold


def evaluate(rule: AlertRule, now: datetime.datetime | None = None) -> str | None:
    """Fire or resolve the rule from its service's samples; returns the event sent, if any.
    Fires when the samples of the last `duration` seconds (at least two, the oldest at least
    `duration` old, so a rule never fires on a single reading) are all beyond the threshold."""
    now = now or timezone.now()
    field = "memory_bytes" if rule.metric == AlertMetric.MEMORY else rule.metric
    recent = list(MetricSample.objects.filter(
        runtime=rule.runtime, service=rule.service, replica="", resolution=MetricSample.RAW,
        at__gte=now - datetime.timedelta(seconds=rule.duration + 3600)).order_by("-at").values("at", field)[:2000])
    if not recent:
        return None
    latest = _value(recent[0], rule.metric)
    window = [s for s in recent if s["at"] >= now - datetime.timedelta(seconds=rule.duration)]
    covering = [s for s in recent if s["at"] <= now - datetime.timedelta(seconds=rule.duration)][:1]
    values = [_value(s, rule.metric) for s in window + covering]
    firing = (len(values) >= 2 and all(v is not None and _beyond(rule, v) for v in values)
              and bool(covering or rule.duration == 0))
    event = None
    if firing and rule.state != AlertState.FIRING:
        event, rule.state, rule.since = NotifyEvent.ALERT_FIRING, AlertState.FIRING, now
    elif rule.state == AlertState.FIRING and latest is not None and not _beyond(rule, latest):
        event, rule.state, rule.since = NotifyEvent.ALERT_RESOLVED, AlertState.OK, now
    rule.value = latest
    with transaction.atomic():
        AlertRule.objects.filter(pk=rule.pk).update(state=rule.state, since=rule.since, value=rule.value)
        if event is not None:
            runtime = rule.runtime
            what = "firing" if event == NotifyEvent.ALERT_FIRING else "resolved"
            services.notify(runtime.application.project, event,
                            f"Alert {rule.name} {what}: {rule.service} {AlertMetric(rule.metric).label.split(' (')[0]} "
                            f"{latest:g} ({rule.operator} {rule.threshold:g} for {rule.duration}s) on {runtime}", {
                                "rule": rule.pk, "runtime": runtime.pk, "service": rule.service, "metric": rule.metric,
                                "operator": rule.operator, "threshold": rule.threshold, "duration": rule.duration,
                                "value": latest, "state": rule.state,
                            }, url=runtime.get_absolute_url())
    return event


def evaluate_all() -> dict:
    rules = AlertRule.objects.filter(enabled=True).select_related(
        "runtime__application__project__organization", "runtime__workspace")
    sent = [evaluate(rule) for rule in rules]
    return {"rules": len(sent), "firing": sent.count(NotifyEvent.ALERT_FIRING),
            "resolved": sent.count(NotifyEvent.ALERT_RESOLVED)}
