"""Addon instances of a runtime and their generated credentials: made once, encrypted at rest,
handed to the executor on every deployment so passwords never change under running data."""

from __future__ import annotations

import json
import secrets

from apps.clusters import crypto
from apps.deploy.models import AddonInstance, Runtime
from diceyml import DiceYml


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
            instance = AddonInstance.objects.create(
                runtime=runtime, name=name, type=addon.type, size=addon.size,
                credentials=crypto.encrypt(json.dumps(creds)),
            )
        elif (instance.type, instance.size) != (addon.type, addon.size):
            instance.type, instance.size = addon.type, addon.size
            instance.save(update_fields=["type", "size", "updated"])
        if addon.type != "custom":
            out[name] = credentials(instance)
    return out
