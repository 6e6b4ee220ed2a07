"""Workspaces and environments: name mapping, deep merging of overlays (with their lines), values."""

from __future__ import annotations

import re
from functools import lru_cache

import yaml

from speckit.yamlload import LineMap

ENVIRONMENTS = ("development", "test", "staging", "production")
WORKSPACES = {"dev": "development", "test": "test", "staging": "staging", "prod": "production"}
PRODUCTION = "production"
# `${key}` / `${key:default}`; `${env.X}` is matched too but left for run time, and
# `${platform.DICE_*}` for deploy time (filled by the executors from the runtime's facts).
_PLACEHOLDER = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_.\-]*)(?::([^}]*))?\}")
LATER_PREFIXES = ("env.", "platform.")
_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def environment_name(name: str) -> str | None:
    """development/test/staging/production for a workspace or environment name in any case, else None."""
    if not isinstance(name, str):
        return None
    low = name.strip().lower()
    if low in ENVIRONMENTS:
        return low
    return WORKSPACES.get(low)


def normalize_workspace(name: str) -> str:
    """The environment of a workspace name (DEV, prod, Staging, production ...); ValueError if unknown."""
    env = environment_name(name)
    if env is None:
        allowed = "DEV, TEST, STAGING, PROD (or development, test, staging, production)"
        raise ValueError(f"unknown workspace '{name}': expected one of {allowed}")
    return env


def deep_merge(base: object, overlay: object) -> object:
    """Maps merge key by key (recursively); anything else, lists included, is replaced by the overlay."""
    if isinstance(base, dict) and isinstance(overlay, dict):
        out = dict(base)
        for key, value in overlay.items():
            out[key] = deep_merge(base[key], value) if key in base else value
        return out
    return overlay


class OriginLines(LineMap):
    """Lines of a merged document; remembers which paths an overlay supplied (for error paths)."""

    def __init__(self, base: LineMap, overlay: LineMap | None = None, overlay_prefix: tuple = ()):
        super().__init__({p: base.get(p) for p in base})  # type: ignore[misc]
        self.overlay_prefix = overlay_prefix
        self.from_overlay: set[tuple] = set()
        if overlay is not None:
            for path in overlay:
                line = overlay.get(path)
                if path and line is not None:
                    self.set(path, line)
                    self.from_overlay.add(path)

    def origin(self, path: tuple) -> tuple | None:
        """The overlay path an error at `path` belongs to, or None when the base supplied it."""
        path = tuple(path)
        while path:
            if path in self.from_overlay:
                return self.overlay_prefix
            if self.get(path) is not None:
                return None
            path = path[:-1]
        return None


@lru_cache(maxsize=512)
def _typed(text: str) -> object:
    """A default written in a placeholder, typed as YAML would type it (`1` -> 1, `0.5` -> 0.5)."""
    try:
        value = yaml.load(text, Loader=_Loader)
    except yaml.YAMLError:
        return text
    return value if isinstance(value, str | int | float | bool) else text


def _text(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)


def fill_values(data: object, values: dict | None, fallback: dict | None = None) -> object:
    """Replace `${key}` / `${key:default}` from `values` (or the default, or else `fallback`) in every
    string value.

    A string that is one placeholder takes the value's type (`cpu: ${cpu:0.5}` is a number).
    `${env.X}` and placeholders with neither a value nor a default are kept as written.
    """
    values = values or {}
    fallback = fallback or {}

    def one(match: re.Match) -> tuple[bool, object]:
        key, default = match.group(1), match.group(2)
        if key.startswith(LATER_PREFIXES):
            return False, match.group(0)
        if key in values:
            return True, values[key]
        if default is not None:
            return True, _typed(default)
        if key in fallback:
            return True, fallback[key]
        return False, match.group(0)

    def walk(node: object) -> object:
        if isinstance(node, str):
            if "${" not in node:
                return node
            whole = _PLACEHOLDER.fullmatch(node)
            if whole:
                return one(whole)[1]
            return _PLACEHOLDER.sub(lambda m: _text(one(m)[1]), node)
        if isinstance(node, dict):
            return {k: walk(v) for k, v in node.items()}
        if isinstance(node, list):
            return [walk(v) for v in node]
        return node

    return walk(data)


def unfilled(text: str) -> list[str]:
    """Placeholder keys in `text` that were left unfilled (not `${env.X}`)."""
    return [m.group(1) for m in _PLACEHOLDER.finditer(text) if not m.group(1).startswith(LATER_PREFIXES)]
