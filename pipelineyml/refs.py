"""References inside pipeline strings: `${{ ns.x.y }}`, legacy `${alias}` and `${alias:OUTPUT:key}`."""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any

from pipelineyml import catalog
from pipelineyml.models import Reference
from pipelineyml.randoms import random_problem
from speckit import did_you_mean

NAMESPACES = ("outputs", "params", "configs", "triggers", "dirs", "random")
OUTPUT_MODIFIERS = ("escape", "wrap_single_quotes", "wrap_double_quotes")
LEGACY_OUTPUT_OP = "OUTPUT"

_NEW = re.compile(r"\$\{\{(.*?)\}\}", re.DOTALL)
_OLD = re.compile(r"\$\{([^{}]+)\}")
_DOTTED = re.compile(r"^[\w-]+(?:\.[\w-]+)*$")
# Inside an expression (`${{ outputs.a.status == 'Success' }}`): the known-namespace paths.
_EXPR_PATH = re.compile(r"(?<![\w.-])(?:" + "|".join(NAMESPACES) + r")(?:\.[\w-]+)+")

_SHAPES = {
    "outputs": "outputs.<alias>.<key>",
    "dirs": "dirs.<alias>",
    "params": "params.<name>",
    "configs": "configs.<key>",
    "triggers": "triggers.<event>.<field>",
    "random": "random.<kind>",
}

Problem = tuple[tuple, str]  # (path, message)


def _dotted(inner: str, text: str, path: tuple, problems: list[Problem]) -> Reference | None:
    parts = inner.split(".")
    namespace = parts[0]
    if namespace not in NAMESPACES:
        problems.append(
            (
                path,
                f"unknown namespace '{namespace}' in '{text}'{did_you_mean(namespace, NAMESPACES)}; "
                f"expected one of {', '.join(NAMESPACES)}",
            )
        )
        return None
    rest = parts[1:]
    ok = {
        "outputs": len(rest) == 2 or (len(rest) == 3 and rest[2] in OUTPUT_MODIFIERS),
        "dirs": len(rest) == 1,
        "params": len(rest) == 1,
        "configs": len(rest) >= 1,
        "triggers": len(rest) == 2,
        "random": len(rest) == 1,
    }[namespace]
    if not ok:
        problems.append((path, f"malformed reference '{text}': expected ${{{{ {_SHAPES[namespace]} }}}}"))
        return None
    if namespace == "configs":
        return Reference("configs", ".".join(rest), None, text, path)
    if namespace == "random":
        problem = random_problem(rest[0])
        if problem:
            problems.append((path, f"'{text}': {problem}"))
            return None
    key = rest[1] if len(rest) > 1 else None
    return Reference(namespace, rest[0], key, text, path)


def _new_style(match: re.Match, path: tuple, problems: list[Problem], out: list[Reference]) -> None:
    text = match.group(0)
    inner = match.group(1).strip()
    if not inner:
        problems.append((path, f"empty reference '{text}'"))
        return
    if _DOTTED.match(inner):
        ref = _dotted(inner, text, path, problems)
        if ref is not None:
            out.append(ref)
        return
    # An expression: check the namespace paths it uses, leave the rest to run time.
    for token in _EXPR_PATH.finditer(inner):
        ref = _dotted(token.group(0), text, path, problems)
        if ref is not None:
            out.append(ref)


def _old_style(
    match: re.Match, path: tuple, names: Collection[str], problems: list[Problem], out: list[Reference]
) -> None:
    text = match.group(0)
    parts = match.group(1).split(":", 2)
    name = parts[0]
    if len(parts) == 1:
        # ${X} is an action directory only when X names an action; otherwise a shell variable.
        if name in names:
            out.append(Reference("dirs", name, None, text, path, legacy=True))
    elif len(parts) == 2:
        if name in names:
            problems.append(
                (path, f"malformed reference '{text}': use ${{{name}}} or ${{{name}:OUTPUT:<key>}}")
            )
    elif parts[1] == LEGACY_OUTPUT_OP:
        out.append(Reference("outputs", name, parts[2], text, path, legacy=True))
    elif name in names:
        problems.append(
            (path, f"unknown operation '{parts[1]}' in '{text}': only {LEGACY_OUTPUT_OP} is supported")
        )


def scan_text(text: str, path: tuple, names: Collection[str], problems: list[Problem]) -> list[Reference]:
    """The references in one string. `names` are the aliases and namespaces of the pipeline."""
    if "${" not in text:
        return []
    out: list[Reference] = []
    for match in _NEW.finditer(text):
        _new_style(match, path, problems, out)
    for match in _OLD.finditer(text):
        _old_style(match, path, names, problems, out)
    return out


def scan_value(value: Any, path: tuple, names: Collection[str], problems: list[Problem]) -> list[Reference]:
    """The references in every string under `value` (mapping values and list items, not keys)."""
    found: list[Reference] = []
    stack: list[tuple[Any, tuple]] = [(value, path)]
    while stack:
        item, where = stack.pop()
        if isinstance(item, str):
            found.extend(scan_text(item, where, names, problems))
        elif isinstance(item, dict):
            stack.extend((v, (*where, k)) for k, v in reversed(list(item.items())))
        elif isinstance(item, list):
            stack.extend((v, (*where, i)) for i, v in reversed(list(enumerate(item))))
    return found


@dataclass
class RefScope:
    """What references may name: action types by alias, namespaces, params, trigger events."""

    types: Mapping[str, str]  # alias -> action type
    namespaces: Mapping[str, str]  # namespace -> owning alias
    params: Collection[str]
    trigger_events: Collection[str] | None  # None: no top-level `triggers` to check against

    def owner(self, name: str) -> str | None:
        """The alias whose directory `dirs.<name>` means (an alias or a declared namespace)."""
        if name in self.types:
            return name
        return self.namespaces.get(name)


def check_reference(ref: Reference, scope: RefScope, report: Callable[[tuple, str], None]) -> str | None:
    """Report what `ref` names that does not exist; return the alias it depends on, if any."""
    if ref.kind == "outputs":
        action_type = scope.types.get(ref.target)
        if action_type is None:
            report(
                ref.path,
                f"'{ref.text}' refers to unknown action alias '{ref.target}'"
                f"{did_you_mean(ref.target, scope.types)}",
            )
            return None
        spec = catalog.lookup(action_type)
        if spec is not None and spec.outputs is not None and ref.key not in spec.outputs:
            declared = ", ".join(sorted(spec.outputs)) or "none"
            report(
                ref.path,
                f"'{ref.text}': action '{ref.target}' ({action_type}) has no output "
                f"'{ref.key}'{did_you_mean(ref.key or '', spec.outputs)}; its outputs: {declared}",
            )
        return ref.target
    if ref.kind == "dirs":
        owner = scope.owner(ref.target)
        if owner is None:
            known = [*scope.types, *scope.namespaces]
            report(
                ref.path,
                f"'{ref.text}' refers to unknown action alias '{ref.target}'"
                f"{did_you_mean(ref.target, known)}",
            )
        return owner
    if ref.kind == "params" and ref.target not in scope.params:
        declared = ", ".join(sorted(scope.params)) or "none are declared"
        report(
            ref.path,
            f"'{ref.text}' refers to undeclared param '{ref.target}'"
            f"{did_you_mean(ref.target, scope.params)} (params: {declared})",
        )
    if ref.kind == "triggers" and scope.trigger_events is not None and ref.target not in scope.trigger_events:
        report(
            ref.path,
            f"'{ref.text}' refers to event '{ref.target}', which no item of `triggers` "
            f"listens to{did_you_mean(ref.target, scope.trigger_events)}",
        )
    return None
