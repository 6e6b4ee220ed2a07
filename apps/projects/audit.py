"""Audit events: a record of every state change, pushed live to the organization's viewers."""

from __future__ import annotations

import datetime
import decimal

from django.db import transaction
from django.forms.models import model_to_dict

from apps.projects.models import AuditEvent, Organization

# Superusers' consoles listen here for the events of every organization.
ALL_EVENTS_GROUP = "org-events-all"

# Fields never copied into an audit record.
_SECRET_FIELDS = {"digest", "password"}


def snapshot(obj) -> dict:
    """The object's own field values as JSON-safe data."""
    data = model_to_dict(obj)
    data["id"] = obj.pk
    out = {}
    for key, value in data.items():
        if key in _SECRET_FIELDS:
            continue
        if isinstance(value, datetime.datetime | datetime.date | decimal.Decimal):
            value = str(value)
        elif hasattr(value, "pk"):
            value = value.pk
        out[key] = value
    return out


def record(actor, action: str, obj, *, before: dict | None = None, after: dict | None = None) -> AuditEvent:
    org = getattr(obj, "organization", None)
    if org is not None and not isinstance(org, Organization):
        org = None
    if org is not None and org.pk is None:
        org = None
    event = AuditEvent.objects.create(
        actor=actor if actor is not None and actor.is_authenticated else None,
        actor_name=getattr(actor, "username", "") or "system",
        organization=org,
        action=action,
        object_type=type(obj).__name__.lower(),
        object_id=str(obj.pk or ""),
        object_repr=str(obj)[:200],
        before=before,
        after=after,
    )
    if event.organization_id:
        payload = {
            "id": event.pk,
            "action": action,
            "object_type": event.object_type,
            "object_repr": event.object_repr,
            "actor": event.actor_name,
        }
        group = f"org-events-{event.organization_id}"

        def push():
            from dice_console.realtime import group_send

            group_send(group, {"type": "audit.event", "event": payload})
            group_send(ALL_EVENTS_GROUP, {"type": "audit.event", "event": payload})

        transaction.on_commit(push)
    return event
