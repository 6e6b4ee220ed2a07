"""Audit events: a record of every state change, pushed live to the organization's viewers."""

from __future__ import annotations

import datetime
import decimal
import re

from django.db import transaction
from django.forms.models import model_to_dict

from apps.projects.models import Application, AuditEvent, Organization, Project

# Superusers' consoles listen here for the events of every organization.
ALL_EVENTS_GROUP = "org-events-all"

# Fields never copied into an audit record.
_SECRET_FIELDS = {"digest", "password", "credentials"}
# A config-like object whose key looks like a credential is treated as secret even when stored plain.
_SECRET_KEY = re.compile(r"secret|passw|token|credential|private|api[_-]?key|auth", re.IGNORECASE)
CHANGED = "changed"


def _is_secret(obj) -> bool:
    if getattr(obj, "secret", False) is True:
        return True
    key = getattr(obj, "key", None)
    return isinstance(key, str) and bool(_SECRET_KEY.search(key))


def _redact(obj, values: dict | None) -> dict | None:
    """A secret object's value never reaches the audit log: only that it changed."""
    if values is None or not _is_secret(obj):
        return values
    return {k: (CHANGED if k in ("value", "plain_value") else v) for k, v in values.items()}


def place(obj) -> tuple[Organization | None, Project | None, Application | None]:
    """The organization, project and application an object lives in (for scoping its events)."""
    org = getattr(obj, "organization", None)
    if not isinstance(org, Organization) or org.pk is None:
        org = None
    if isinstance(obj, Application):
        return org, obj.project, obj
    if isinstance(obj, Project):
        return org, obj, None
    if isinstance(obj, Organization):
        return org, None, None
    app = getattr(obj, "application", None)
    app = app if isinstance(app, Application) and app.pk else None
    project = getattr(obj, "project", None)
    project = project if isinstance(project, Project) and project.pk else (app.project if app else None)
    return org, project, app


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
        elif isinstance(value, list | tuple):  # many-to-many: the related objects' ids
            value = [getattr(v, "pk", v) for v in value]
        out[key] = value
    return out


def record(actor, action: str, obj, *, before: dict | None = None, after: dict | None = None) -> AuditEvent:
    org, project, app = place(obj)
    before, after = _redact(obj, before), _redact(obj, after)
    event = AuditEvent.objects.create(
        project=project,
        application=app,
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
            "project": event.project_id,
            "application": event.application_id,
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


def record_lockout(sender=None, request=None, username: str = "", ip_address: str = "", **kwargs) -> AuditEvent:
    """django-axes locked sign-ins out for a username or an address: an event staff see in the log."""
    return AuditEvent.objects.create(
        actor=None, actor_name="system", organization=None, action="lockout", object_type="user",
        object_id="", object_repr=(username or ip_address or "")[:200],
        after={"username": username or "", "ip_address": ip_address or ""},
    )
