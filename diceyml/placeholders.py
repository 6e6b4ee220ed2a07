"""Deploy-time placeholders of a dice.yml: `${platform.DICE_*}` and `((KEY))` secret configs.

The parser accepts both and leaves them in the typed spec; the executors fill them when they
know the runtime: `${platform.X}` from the runtime's facts (fill_platform), `((KEY))` from the
project's configs, which the console hands over with the deployment (secret_keys tells which).
"""

from __future__ import annotations

import re
from typing import Any

from diceyml.models import DiceYml

# What `${platform.X}` may name, and what it becomes (see platform_values).
PLATFORM_KEYS = (
    "DICE_ORG_NAME",
    "DICE_PROJECT_NAME",
    "DICE_APPLICATION_NAME",
    "DICE_WORKSPACE",
    "DICE_RUNTIME_NAME",
    "DICE_RUNTIME_ID",
    "DICE_CLUSTER_NAME",
)
PLATFORM = re.compile(r"\$\{platform\.([^}:]*)(?::[^}]*)?\}")
SECRET = re.compile(r"\(\(([A-Za-z_][A-Za-z0-9_.\-]*)\)\)")


class PlaceholderError(ValueError):
    """A placeholder that cannot be filled at deploy time (its message names it)."""


def platform_problem(text: str) -> str | None:
    """Why a `${platform.X}` in `text` can never be filled (an unknown X), or None."""
    for match in PLATFORM.finditer(text):
        if match.group(1) not in PLATFORM_KEYS:
            return (
                f"'{match.group(0)}': unknown platform value '{match.group(1)}'; "
                f"known: {', '.join(PLATFORM_KEYS)}"
            )
    return None


def platform_values(
    *, org: str, project: str, app: str, workspace: str, runtime: str, cluster: str, runtime_id: int | None
) -> dict[str, str]:
    """The value of each platform key for one runtime."""
    return {
        "DICE_ORG_NAME": org,
        "DICE_PROJECT_NAME": project,
        "DICE_APPLICATION_NAME": app,
        "DICE_WORKSPACE": workspace,
        "DICE_RUNTIME_NAME": runtime,
        "DICE_RUNTIME_ID": "" if runtime_id is None else str(runtime_id),
        "DICE_CLUSTER_NAME": cluster,
    }


def _strings(node: Any):
    if isinstance(node, str):
        yield node
    elif isinstance(node, dict):
        for value in node.values():
            yield from _strings(value)
    elif isinstance(node, list | tuple):
        for value in node:
            yield from _strings(value)


def _replace(node: Any, pattern: re.Pattern, repl) -> Any:
    if isinstance(node, str):
        return pattern.sub(repl, node) if pattern.search(node) else node
    if isinstance(node, dict):
        return {k: _replace(v, pattern, repl) for k, v in node.items()}
    if isinstance(node, list):
        return [_replace(v, pattern, repl) for v in node]
    return node


def _data(doc: DiceYml) -> dict:
    """The typed spec as data that validates back into the same spec (computed fields left out)."""
    return doc.model_dump(
        mode="json",
        by_alias=True,
        exclude_none=True,  # every None is a default: absent reads back the same
        exclude={"addons": {"__all__": {"type", "size"}}},
    )


def _retyped(doc: DiceYml, data: dict) -> DiceYml:
    out = DiceYml.model_validate(data)
    out._environment = doc.environment
    out._warnings = list(getattr(doc, "_warnings", []))
    return out


def uses_platform(doc: DiceYml) -> bool:
    return any("${platform." in s for s in _strings(_data(doc)))


def fill_platform(doc: DiceYml, values: dict[str, str]) -> DiceYml:
    """The spec with every `${platform.X}` replaced by values[X]; PlaceholderError names an unknown X."""
    data = _data(doc)
    if not any("${platform." in s for s in _strings(data)):
        return doc
    missing: list[str] = []

    def repl(match: re.Match) -> str:
        key = match.group(1)
        if key not in values:
            missing.append(key)
            return match.group(0)
        return values[key]

    data = _replace(data, PLATFORM, repl)
    if missing:
        raise PlaceholderError(
            f"cannot fill ${{platform.{missing[0]}}}: unknown platform value; known: {', '.join(PLATFORM_KEYS)}"
        )
    return _retyped(doc, data)


def secret_keys(doc: DiceYml) -> list[str]:
    """The project config keys that `((KEY))` placeholders of the spec name, sorted."""
    return sorted({m.group(1) for s in _strings(_data(doc)) for m in SECRET.finditer(s)})


def fill_secret(text: str, configs: dict[str, str], where: str) -> str:
    """`text` with every `((KEY))` replaced by configs[KEY]; PlaceholderError names a missing KEY."""

    def repl(match: re.Match) -> str:
        key = match.group(1)
        if key not in configs:
            raise PlaceholderError(f"{where}: '(({key}))' names no project config '{key}'")
        return configs[key]

    return SECRET.sub(repl, text)


def has_secret(text: str) -> bool:
    return bool(SECRET.search(text))
