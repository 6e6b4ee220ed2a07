"""Addon instances of a runtime and their generated credentials: made once, encrypted at rest,
handed to the executor on every deployment so passwords never change under running data."""

from __future__ import annotations

import json
import re
import secrets

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from apps.clusters import crypto
from apps.deploy.access import require_deploy
from apps.deploy.lifecycle import parse_for
from apps.deploy.models import AddonInstance, Runtime
from apps.projects import audit
from diceyml import DiceYml

CUSTOM_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,99}")
MAX_CUSTOM_VALUES = 50
MAX_CUSTOM_VALUE = 8192


def _generate(name: str) -> dict[str, str]:
    return {
        "username": "dice",
        "password": secrets.token_urlsafe(18),
        "database": name.replace("-", "_").replace(".", "_").lower(),
    }


def credentials(instance: AddonInstance) -> dict[str, str]:
    return json.loads(crypto.decrypt(instance.credentials) or "{}")


def addon_secrets(runtime: Runtime, doc: DiceYml) -> dict[str, dict[str, str]]:
    """Addon name -> credentials for every non-custom addon of the spec; instances that do not
    exist yet are created (and their credentials generated) now."""
    out: dict[str, dict[str, str]] = {}
    existing = {a.name: a for a in AddonInstance.objects.filter(runtime=runtime)}
    for name, addon in sorted(doc.addons.items()):
        instance = existing.get(name)
        if instance is None:
            creds = {} if addon.type == "custom" else _generate(name)
            try:
                with transaction.atomic():  # a savepoint: the caller's transaction goes on either way
                    instance = AddonInstance.objects.create(
                        runtime=runtime, name=name, type=addon.type, size=addon.size,
                        credentials=crypto.encrypt(json.dumps(creds)),
                    )
            except IntegrityError:
                # Another rollout of this runtime made it since the read above (a worker resuming
                # a rollout that another still follows): its credentials are the addon's, for both.
                instance = AddonInstance.objects.get(runtime=runtime, name=name)
        elif (instance.type, instance.size) != (addon.type, addon.size):
            instance.type, instance.size = addon.type, addon.size
            instance.save(update_fields=["type", "size", "updated"])
        # A custom addon's credentials are the connection values the user gave the console.
        out[name] = credentials(instance)
    return out


def custom_addons(runtime: Runtime) -> dict[str, list[str]]:
    """The custom addons of the runtime's current spec, each with the keys of the values given
    to the console (never the values: they may be passwords)."""
    if runtime.release_id is None:
        return {}
    try:
        doc = parse_for(runtime.release, runtime.workspace.kind)
    except ValidationError:
        return {}
    given = {a.name: a for a in AddonInstance.objects.filter(runtime=runtime, type="custom")}
    return {
        name: sorted(credentials(given[name])) if name in given else []
        for name, addon in sorted(doc.addons.items())
        if addon.type == "custom"
    }


def set_custom_values(user, runtime: Runtime, name: str, values: dict) -> list[str]:
    """Replace the connection values of a custom addon of the runtime (used from its next
    deployment on); returns the keys now set. Needs the right to deploy to the workspace."""
    require_deploy(user, runtime.application, runtime.workspace.kind)
    known = custom_addons(runtime)
    if name not in known:
        listed = ", ".join(known) or "none"
        raise ValidationError({"addon": f"runtime {runtime.name} has no custom addon {name!r} (its custom addons: {listed})"})
    if not isinstance(values, dict) or len(values) > MAX_CUSTOM_VALUES:
        raise ValidationError({"values": f"values must be a mapping of at most {MAX_CUSTOM_VALUES} keys"})
    clean: dict[str, str] = {}
    for key, value in values.items():
        if not isinstance(key, str) or not CUSTOM_KEY.fullmatch(key):
            raise ValidationError({"values": f"{key!r} is not a valid key: letters, digits and '_', not starting with a digit"})
        if not isinstance(value, str | int | float) or isinstance(value, bool) or len(str(value)) > MAX_CUSTOM_VALUE:
            raise ValidationError({"values": f"the value of {key} must be text of at most {MAX_CUSTOM_VALUE} characters"})
        clean[key] = str(value)
    with transaction.atomic():
        instance, _ = AddonInstance.objects.select_for_update().get_or_create(
            runtime=runtime, name=name, defaults={"type": "custom", "size": ""}
        )
        before = sorted(credentials(instance)) if instance.credentials else []
        instance.type = "custom"
        instance.credentials = crypto.encrypt(json.dumps(clean))
        instance.save(update_fields=["type", "credentials", "updated"])
        # Keys only: the values may be secrets and never reach the audit log.
        audit.record(user, "set_addon_values", instance, before={"keys": before}, after={"keys": sorted(clean)})
    return sorted(clean)
