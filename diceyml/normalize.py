"""Short forms of dice.yml turned into one explicit shape (ports, binds, volumes, health checks, plans)."""

from __future__ import annotations

import re
import shlex

from pydantic_core import PydanticCustomError

from speckit.suggest import did_you_mean as did_you_mean_hint

ADDON_SIZES = ("basic", "professional", "ultimate")
DEFAULT_SIZE = "basic"  # of a bare `plan: <type>` (`professional` in production)
PRODUCTION_DEFAULT_SIZE = "professional"
LEGACY_SIZES = {"small": "basic", "medium": "professional", "large": "ultimate"}
# Types the built-in executors provide (a cluster may provide others: decided at deploy time).
ADDON_TYPES = (
    "mysql",
    "redis",
    "postgresql",
    "elasticsearch",
    "kafka",
    "rabbitmq",
    "zookeeper",
    "custom",
)
# Prefix of the variables a service sees for each addon type (without `as`).
ADDON_ENV_PREFIX = {"postgresql": "POSTGRES", "elasticsearch": "ELASTICSEARCH"}
# Other spellings seen in Dice/Erda files for the same addon types.
ADDON_TYPE_ALIASES = {
    "postgres": "postgresql",
    "terminus-elasticsearch": "elasticsearch",
    "terminus-zookeeper": "zookeeper",
    "zk": "zookeeper",
}


def fail(kind: str, message: str) -> PydanticCustomError:
    """A validation error whose message is shown to the user as it is."""
    return PydanticCustomError(kind, message)


def stringify(value: object) -> str:
    """Text of an env or label value the way YAML wrote it (true/false, 0.1, 8080)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return ""
    if isinstance(value, int | float | str):
        return str(value)
    raise fail("not_scalar", f"expected text, a number or a boolean, got {kind_of(value)}")


def kind_of(value: object) -> str:
    """How a YAML value is called in error messages."""
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, bool):
        return f"the boolean {str(value).lower()}"
    if value is None:
        return "nothing (null)"
    if isinstance(value, int | float):
        return f"the number {value}"
    return f"'{value}'"


def string_map(value: object) -> object:
    """A map of strings (envs, labels, annotations, options): `key:` with nothing means empty."""
    return {} if value is None else value


def string_value(value: object) -> object:
    """One value of such a map as text; a mapping or list stays as it is for the type error."""
    if isinstance(value, dict | list):
        raise fail("not_scalar", f"expected text, a number or a boolean, got {kind_of(value)}")
    return stringify(value)


def empty_list(value: object) -> object:
    """`key:` with nothing after it means an empty list."""
    return [] if value is None else value


def command_text(value: object) -> object:
    """`cmd` as one shell string; a list of words is quoted and joined."""
    if value is None:
        return ""
    if isinstance(value, list) and all(isinstance(v, str | int | float) for v in value):
        return shlex.join(str(v) for v in value)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return value


def port(value: object) -> object:
    """A port as an object: 8080, "8080", "8080/udp" or {port, protocol, ...}."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return {"port": value}
    if isinstance(value, str):
        match = re.fullmatch(r"\s*(\d+)\s*(?:/\s*([A-Za-z]+))?\s*", value)
        if not match:
            raise fail("port", f"a port must be a number or {{port, protocol}}, got '{value}'")
        out: dict = {"port": int(match.group(1))}
        if match.group(2):
            out["protocol"] = match.group(2)
        return out
    return value


def bind(value: object) -> object:
    """`host:container[:rw|ro]` into {host, container, type}; the mode is checked by the model."""
    if not isinstance(value, str):
        return value
    parts = value.strip().split(":")
    if len(parts) not in (2, 3) or not all(parts):
        raise fail("bind", f"a bind must be 'host:container[:rw|ro]', got '{value}'")
    out = {"host": parts[0], "container": parts[1]}
    if len(parts) == 3:
        out["type"] = parts[2]
    return out


# Keys of the deprecated volume form `{id, storage, path}` (Erda's older dice.yml).
DEPRECATED_VOLUME_KEYS = ("id", "storage", "path")


def volume(value: object) -> object:
    """`name~storage:/path`, `storage:/path`, `name~storage` ... or a bare `/path` into an object;
    the deprecated `{storage, path, id}` form into `{type, targetPath, name}` (with a warning)."""
    if isinstance(value, dict) and "targetPath" not in value and any(k in value for k in ("storage", "path")):
        out_old: dict = {k: v for k, v in value.items() if k not in DEPRECATED_VOLUME_KEYS}
        if value.get("path") is not None:
            out_old["targetPath"] = value["path"]
        if value.get("storage"):
            out_old["type"] = value["storage"]
        if value.get("id"):
            out_old["name"] = value["id"]
        return out_old
    if not isinstance(value, str):
        return value
    text = value.strip()
    name = storage = None
    path = text
    if not text.startswith("/"):
        head, sep, path = text.partition(":")
        if not sep:
            raise fail("volume", f"a volume must be '[name~storage:]/path' or an object, got '{value}'")
        if "~" in head:
            name, _, storage = head.partition("~")
        else:
            storage = head
    out: dict = {"targetPath": path}
    if name:
        out["name"] = name
    if storage:
        out["type"] = storage
    return out


def health_check(value: object) -> object:
    """Drop empty `http: {}` / `exec: {}` blocks; nothing left means no health check."""
    if value is None:
        return None
    if not isinstance(value, dict):
        return value
    out = {k: v for k, v in value.items() if not (k in ("http", "exec") and (v is None or v == {}))}
    if not out:
        return None
    return out


_ADDON_TYPE = re.compile(r"[a-z0-9]([a-z0-9._-]{0,62})")


def canonical_plan(value: object) -> object:
    """`<type>:<size>` or a bare `<type>`, with the type's canonical name and the size's (legacy
    small/medium/large mapped). Any type name is valid in the file: whether a cluster can provide
    it is decided at deploy time."""
    if not isinstance(value, str):
        if value is None:
            raise fail("plan", "plan is required: '<type>:<size>' or '<type>', for example 'mysql:basic'")
        raise fail("plan", f"plan must be '<type>:<size>' or '<type>', got {kind_of(value)}")
    addon_type, sep, size = value.strip().partition(":")
    addon_type, size = addon_type.strip().lower(), size.strip().lower()
    if not addon_type or (sep and not size):
        raise fail(
            "plan", f"plan must be '<type>:<size>' or '<type>' (for example 'mysql:basic'), got '{value}'"
        )
    addon_type = ADDON_TYPE_ALIASES.get(addon_type, addon_type)
    if not _ADDON_TYPE.fullmatch(addon_type):
        raise fail(
            "plan",
            f"'{addon_type}' is not an addon type name: use lowercase letters, digits, '-', '_' and '.'",
        )
    if not sep:
        return addon_type
    size = LEGACY_SIZES.get(size, size)
    if addon_type not in ADDON_TYPES and _ADDON_TYPE.fullmatch(size):
        # Another type's sizes are its provider's business (Erda files carry `monitor:dev`).
        return f"{addon_type}:{size}"
    if size not in ADDON_SIZES:
        hint = did_you_mean_hint(size, (*ADDON_SIZES, *LEGACY_SIZES))
        raise fail(
            "plan",
            f"unknown addon size '{size}'{hint}; sizes: basic, professional, ultimate "
            "(or legacy small, medium, large)",
        )
    return f"{addon_type}:{size}"


def selectors(value: object) -> object:
    """Node selectors: each key's value becomes a list of allowed values."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        return value
    out = {}
    for key, item in value.items():
        if isinstance(item, list):
            out[key] = [stringify(v) for v in item]
        else:
            out[key] = [v for v in stringify(item).split("|") if v] if item is not None else []
    return out


def volume_name(target_path: str) -> str:
    """A deterministic DNS-label name for a volume that has none, from its container path."""
    slug = re.sub(r"[^a-z0-9]+", "-", target_path.lower()).strip("-") or "root"
    return f"vol-{slug}"[:63].rstrip("-")
