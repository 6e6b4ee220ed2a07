"""Notifications: the one place that changes channels and sends events to them.

`notify(project, event, ...)` is what the rest of the console calls (deployments and pipeline
runs through apps.monitoring.hooks, a torn-down preview, a degraded runtime): it records one
delivery per enabled channel of the project that subscribes to the event, in the caller's
transaction, and hands each to the worker after the commit. The worker's attempt (`attempt()`)
claims the delivery, sends it, and records the outcome; a failed attempt is retried after
DICE_NOTIFY_RETRY_DELAYS, until they run out."""

from __future__ import annotations

import datetime
import hashlib
import hmac
import json
import logging
import secrets
import time

from celery import current_app
from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.mail import send_mail
from django.core.validators import validate_email
from django.db import transaction
from django.utils import timezone

from apps.clusters import crypto
from apps.monitoring import outbound
from apps.monitoring.choices import SUBSCRIBABLE, ChannelKind, DeliveryStatus, NotifyEvent
from apps.monitoring.models import NotificationChannel, NotificationDelivery
from apps.projects import audit, permissions, scope

log = logging.getLogger(__name__)

MAX_RECIPIENTS = 20
DEFAULT_RETRY_DELAYS = (10, 60, 300, 1800)  # seconds before the 2nd, 3rd... attempt
CLAIM_EXPIRES = 300  # a claim older than this (its worker died mid-send) is taken again
SIGNATURE_HEADER = "X-Dice-Signature-256"
TIMESTAMP_HEADER = "X-Dice-Timestamp"
TASK = "dice.monitoring.deliver"


# ---- channels ------------------------------------------------------------------------------------


def _require(user, project) -> None:
    if not scope.has_perm(user, permissions.CHANGE, project):
        raise PermissionDenied("changing notifications needs the change permission on the project")


def _clean_events(events) -> list[str]:
    if events is None:
        return list(SUBSCRIBABLE)
    if not isinstance(events, list | tuple) or not all(isinstance(e, str) for e in events):
        raise ValidationError({"events": ["a list of event names"]})
    unknown = sorted(set(events) - set(SUBSCRIBABLE))
    if unknown:
        raise ValidationError({"events": [f"unknown event {', '.join(unknown)}; one of {', '.join(SUBSCRIBABLE)}"]})
    return [e for e in SUBSCRIBABLE if e in events]


def _clean_recipients(text: str) -> str:
    addresses = [a.strip() for a in (text or "").replace(";", ",").replace("\n", ",").split(",") if a.strip()]
    if not addresses:
        raise ValidationError({"recipients": ["an e-mail channel needs at least one address"]})
    if len(addresses) > MAX_RECIPIENTS:
        raise ValidationError({"recipients": [f"at most {MAX_RECIPIENTS} addresses"]})
    for address in addresses:
        try:
            validate_email(address)
        except ValidationError:
            raise ValidationError({"recipients": [f"{address!r} is not an e-mail address"]}) from None
    return ", ".join(addresses)


def _clean_url(url: str) -> tuple[str, str]:
    """(encrypted URL, hint) of a URL that may be sent to; ValidationError on `url` otherwise."""
    try:
        target, _ = outbound.check(url, resolve=False)
    except outbound.TargetRefused as exc:
        raise ValidationError({"url": [str(exc)]}) from None
    default = 443 if target.scheme == "https" else 80
    netloc = target.host if target.port == default else f"{target.host}:{target.port}"
    return crypto.encrypt(target.url), f"{target.scheme}://{netloc}/…"


def _apply(channel: NotificationChannel, *, kind: str, url: str | None, recipients: str | None) -> None:
    if kind not in ChannelKind.values:
        raise ValidationError({"kind": [f"one of {', '.join(ChannelKind.values)}"]})
    channel.kind = kind
    if kind == ChannelKind.EMAIL:
        channel.recipients = _clean_recipients(recipients if recipients is not None else channel.recipients)
        channel.url_encrypted, channel.url_hint = "", ""
    else:
        if url is not None:
            channel.url_encrypted, channel.url_hint = _clean_url(url)
        elif not channel.url_encrypted:
            raise ValidationError({"url": [f"a {kind} channel needs a URL"]})
        channel.recipients = ""


def create_channel(user, project, *, name: str, kind: str, url: str | None = None, recipients: str | None = None,
                   events=None, enabled: bool = True) -> tuple[NotificationChannel, str]:
    """A new channel, and the webhook's signing secret (shown this once; "" for other kinds)."""
    _require(user, project)
    name = (name or "").strip()
    if not name:
        raise ValidationError({"name": ["a channel needs a name"]})
    if NotificationChannel.objects.filter(project=project, name=name).exists():
        raise ValidationError({"name": [f"the project already has a channel named {name!r}"]})
    channel = NotificationChannel(project=project, name=name, events=_clean_events(events), enabled=enabled)
    _apply(channel, kind=kind, url=url, recipients=recipients)
    secret = ""
    if channel.kind == ChannelKind.WEBHOOK:
        secret = secrets.token_urlsafe(32)
        channel.secret_encrypted = crypto.encrypt(secret)
    with transaction.atomic():
        channel.save()
        audit.record(user, "notification_channel.create", channel, after=_audit_view(channel))
    return channel, secret


def update_channel(user, channel: NotificationChannel, *, name: str | None = None, kind: str | None = None,
                   url: str | None = None, recipients: str | None = None, events=None,
                   enabled: bool | None = None) -> NotificationChannel:
    _require(user, channel.project)
    before = _audit_view(channel)
    if name is not None:
        name = name.strip()
        if not name:
            raise ValidationError({"name": ["a channel needs a name"]})
        if NotificationChannel.objects.filter(project=channel.project, name=name).exclude(pk=channel.pk).exists():
            raise ValidationError({"name": [f"the project already has a channel named {name!r}"]})
        channel.name = name
    if events is not None:
        channel.events = _clean_events(events)
    if enabled is not None:
        channel.enabled = bool(enabled)
    new_kind = kind or channel.kind
    if kind is not None or url is not None or recipients is not None:
        _apply(channel, kind=new_kind, url=url, recipients=recipients)
    if channel.kind == ChannelKind.WEBHOOK and not channel.secret_encrypted:
        channel.secret_encrypted = crypto.encrypt(secrets.token_urlsafe(32))
    with transaction.atomic():
        channel.save()
        audit.record(user, "notification_channel.update", channel, before=before, after=_audit_view(channel))
    return channel


def rotate_secret(user, channel: NotificationChannel) -> str:
    """A new signing secret for a webhook channel (returned this once)."""
    _require(user, channel.project)
    if channel.kind != ChannelKind.WEBHOOK:
        raise ValidationError({"kind": ["only webhook channels sign their requests"]})
    secret = secrets.token_urlsafe(32)
    with transaction.atomic():
        NotificationChannel.objects.filter(pk=channel.pk).update(secret_encrypted=crypto.encrypt(secret))
        audit.record(user, "notification_channel.rotate_secret", channel)
    return secret


def delete_channel(user, channel: NotificationChannel) -> None:
    _require(user, channel.project)
    with transaction.atomic():
        audit.record(user, "notification_channel.delete", channel, before=_audit_view(channel))
        channel.delete()


def _audit_view(channel: NotificationChannel) -> dict:
    return {"name": channel.name, "kind": channel.kind, "url": channel.url_hint, "recipients": channel.recipients,
            "events": list(channel.events), "enabled": channel.enabled}


# ---- events --------------------------------------------------------------------------------------


def _queue(delivery_ids: list[int], countdown: float | None = None) -> None:
    for pk in delivery_ids:
        try:
            # through the registered task, so eager mode and the embedded worker apply as to .delay()
            current_app.tasks[TASK].apply_async([pk], countdown=countdown)
        except Exception as exc:  # a broker hiccup: the periodic sweep sends it
            log.warning("notify: could not queue delivery %s: %s", pk, exc)


def notify(project, event: str, subject: str, data: dict | None = None, *, url: str = "") -> list[int]:
    """Record a delivery of `event` for every enabled channel of `project` subscribed to it and
    queue them after the commit. Returns the deliveries' ids. Never raises for a channel's sake."""
    if event not in NotifyEvent.values:
        raise ValueError(f"unknown notification event {event!r}")
    channels = [c for c in NotificationChannel.objects.filter(project=project, enabled=True) if event in c.events]
    return _record(channels, project, event, subject, data or {}, url)


def _record(channels, project, event: str, subject: str, data: dict, url: str) -> list[int]:
    if not channels:
        return []
    # One line: names in it come from tenants (a pipeline's name), and a mail subject may not break
    subject = " ".join(str(subject).split())
    now = timezone.now()
    payload = {
        "event": event,
        "organization": project.organization.slug,
        "project": project.slug,
        "subject": subject[:300],
        "url": _absolute(url),
        "data": data,
        "at": now.isoformat(),
    }
    made = NotificationDelivery.objects.bulk_create([
        NotificationDelivery(channel=c, event=event, subject=subject[:300], payload=payload, next_attempt=now)
        for c in channels])
    ids = [d.pk for d in made if d.pk is not None] or list(
        NotificationDelivery.objects.filter(channel__in=channels, created__gte=now, event=event).values_list("pk", flat=True))
    transaction.on_commit(lambda: _queue(ids))
    return ids


def _absolute(url: str) -> str:
    if not url or url.startswith(("http://", "https://")):
        return url
    base = (getattr(settings, "DICE_CONSOLE_URL", "") or "").rstrip("/")
    return f"{base}{url}" if base else url


def send_test(user, channel: NotificationChannel) -> NotificationDelivery:
    """A test event to this channel alone (the page's test button, `dice notify test`)."""
    _require(user, channel.project)
    project = channel.project
    with transaction.atomic():
        ids = _record([channel], project, NotifyEvent.TEST, f"Test notification from {project.organization.slug}/"
                      f"{project.slug} ({channel.name})", {"requested_by": getattr(user, "username", "")}, "")
    return NotificationDelivery.objects.get(pk=ids[0])


# ---- sending -------------------------------------------------------------------------------------


def retry_delays() -> list[float]:
    return [float(d) for d in getattr(settings, "DICE_NOTIFY_RETRY_DELAYS", DEFAULT_RETRY_DELAYS)]


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """The signature a receiver recomputes: HMAC-SHA256 of "<timestamp>.<body>" with the secret."""
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def message_text(payload: dict) -> str:
    text = f"[{payload.get('organization')}/{payload.get('project')}] {payload.get('subject')}"
    if payload.get("url"):
        text += f"\n{payload['url']}"
    return text


class _Refused(Exception):
    """An attempt that must not be retried (the target is not allowed)."""


class _Answered(Exception):
    """The receiver answered, but not with a 2xx: retried."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


def _send(channel: NotificationChannel, delivery: NotificationDelivery) -> int | None:
    """Send once; the response code (None for mail). Raises on failure."""
    payload = dict(delivery.payload, delivery=delivery.pk)
    if channel.kind == ChannelKind.EMAIL:
        recipients = [a.strip() for a in channel.recipients.split(",") if a.strip()]
        send_mail(f"[Dice] {delivery.subject}", message_text(payload), None, recipients, fail_silently=False)
        return None
    url = crypto.decrypt(channel.url_encrypted)
    if channel.kind == ChannelKind.SLACK:
        body = json.dumps({"text": message_text(payload)}).encode()
        headers = {}
    else:
        body = json.dumps(payload, sort_keys=True).encode()
        timestamp = str(int(time.time()))
        headers = {"X-Dice-Event": delivery.event, "X-Dice-Delivery": str(delivery.pk), TIMESTAMP_HEADER: timestamp,
                   SIGNATURE_HEADER: sign(crypto.decrypt(channel.secret_encrypted), timestamp, body)}
    try:
        answer = outbound.post(url, body, headers)
    except outbound.TargetRefused as exc:
        raise _Refused(str(exc)) from None
    if 300 <= answer.status < 400:
        raise _Answered(answer.status, f"the receiver answered {answer.status} (a redirect); "
                                       "redirects are not followed")
    if not 200 <= answer.status < 300:
        raise _Answered(answer.status, f"the receiver answered {answer.status}: {answer.body[:200]}")
    return answer.status


def attempt(delivery_id: int) -> dict:
    """Claim the delivery (if it is due and nobody else holds it), send it once, record the
    outcome. A failure is retried after the next of DICE_NOTIFY_RETRY_DELAYS (the caller queues
    it: `retry_in` in the result) until they run out. Running it twice does no harm."""
    now = timezone.now()
    stale = now - datetime.timedelta(seconds=CLAIM_EXPIRES)
    claimed = NotificationDelivery.objects.filter(pk=delivery_id, next_attempt__lte=now).filter(
        status=DeliveryStatus.PENDING).update(status=DeliveryStatus.SENDING, claimed=now) or \
        NotificationDelivery.objects.filter(pk=delivery_id, status=DeliveryStatus.SENDING, claimed__lt=stale).update(
            claimed=now)
    if not claimed:
        return {"delivery": delivery_id, "sent": False, "why": "not due, already sent, or held by another worker"}
    delivery = NotificationDelivery.objects.select_related("channel__project__organization").get(pk=delivery_id)
    attempts = delivery.attempts + 1
    code, error, final = None, "", False
    try:
        code = _send(delivery.channel, delivery)
    except _Refused as exc:
        error, final = str(exc), True
    except Exception as exc:  # the receiver, the network or the mail server: retried
        error = str(exc) or type(exc).__name__
        code = getattr(exc, "status", None)
    delays = retry_delays()
    fields = {"attempts": attempts, "claimed": None, "last_error": error[:2000]}
    if code is not None:
        fields["response_code"] = code
    retry_in = None
    if not error:
        fields.update(status=DeliveryStatus.DELIVERED, delivered=timezone.now(), next_attempt=None, last_error="")
    elif final or attempts > len(delays):
        fields.update(status=DeliveryStatus.FAILED, next_attempt=None)
    else:
        retry_in = delays[attempts - 1]
        fields.update(status=DeliveryStatus.PENDING,
                      next_attempt=timezone.now() + datetime.timedelta(seconds=retry_in))
    NotificationDelivery.objects.filter(pk=delivery_id, status=DeliveryStatus.SENDING).update(**fields)
    if error:
        log.info("notify: delivery %s attempt %s failed: %s", delivery_id, attempts, error)
    return {"delivery": delivery_id, "sent": not error, "attempts": attempts, "error": error, "retry_in": retry_in}


def due_deliveries(limit: int = 500) -> list[int]:
    """Deliveries whose attempt is due (a lost queue message, a retry) or whose claim expired."""
    now = timezone.now()
    stale = now - datetime.timedelta(seconds=CLAIM_EXPIRES)
    pending = NotificationDelivery.objects.filter(status=DeliveryStatus.PENDING, next_attempt__lte=now)
    held = NotificationDelivery.objects.filter(status=DeliveryStatus.SENDING, claimed__lt=stale)
    return list((pending | held).order_by("next_attempt", "pk").values_list("pk", flat=True)[:limit])


def queue_retry(delivery_id: int, countdown: float) -> None:
    _queue([delivery_id], countdown)
