"""Run-time references and `if` conditions, without Django.

Substitution (params, commands, image, envs of an action):
  ${{ outputs.<alias>.<key> }}, ${{ params.<name> }}, ${{ configs.<key> }}, ${{ dirs.<alias> }},
  ${{ triggers.<event>.<field> }}, ${{ random.<kind> }} (a fresh value each time), the output
  suffixes .escape, .wrap_single_quotes and .wrap_double_quotes (pipelineyml.randoms), and the
  legacy ${<alias>:OUTPUT:<key>} and ${<alias>} (a directory only when <alias> is an action of the
  pipeline; otherwise left for the shell).

Conditions (`if:`): references are substituted as values, then the text is evaluated with
  ==, != (string comparison; quotes optional), && , ||, ! and parentheses; the words true/false.
  A bare value is true unless it is empty, false, 0, no, off or null (any case). Namespace paths
  may also appear without ${{ }} (`params.deploy == 'yes'`). Anything else (arithmetic, <, >,
  function calls) is an error that fails the task with the message.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from typing import Any

from pipelineyml.randoms import apply_suffix, random_value

_NEW = re.compile(r"\$\{\{(.*?)\}\}", re.DOTALL)
_OLD = re.compile(r"\$\{([^{}]+)\}")
_DOTTED = re.compile(r"^[\w-]+(?:\.[\w-]+)*$")
NAMESPACES = ("outputs", "params", "configs", "triggers", "dirs", "random")
_PATH = re.compile(r"(?<![\w.'\"-])(?:" + "|".join(NAMESPACES) + r")(?:\.[\w-]+)+")
FALSY = frozenset({"", "false", "0", "no", "off", "null", "none"})


class ResolveError(ValueError):
    """A reference that cannot be resolved at run time, or a malformed condition."""


@dataclass
class Context:
    """What references resolve to in one task of one run."""

    params: dict[str, Any] = field(default_factory=dict)
    configs: dict[str, str] = field(default_factory=dict)
    outputs: dict[str, dict[str, Any]] = field(default_factory=dict)
    dirs: dict[str, str] = field(default_factory=dict)
    triggers: dict[str, dict[str, Any]] = field(default_factory=dict)
    aliases: Collection[str] = ()
    used_configs: set[str] = field(default_factory=set)

    def lookup(self, path: str) -> str:
        parts = path.split(".")
        ns, rest = parts[0], parts[1:]
        if ns == "params" and len(rest) == 1:
            if rest[0] not in self.params:
                raise ResolveError(f"param '{rest[0]}' has no value in this run")
            return _text(self.params[rest[0]])
        if ns == "configs" and rest:
            key = ".".join(rest)
            if key not in self.configs:
                raise ResolveError(f"project config '{key}' is not set")
            self.used_configs.add(key)
            return self.configs[key]
        if ns == "outputs" and len(rest) >= 2:
            alias, key = rest[0], rest[1]
            produced = self.outputs.get(alias)
            if produced is None:
                raise ResolveError(f"action '{alias}' has no outputs in this run (did it run?)")
            value = _text(produced.get(key, ""))
            return apply_suffix(value, rest[2] if len(rest) > 2 else None)
        if ns == "dirs" and len(rest) == 1:
            if rest[0] not in self.dirs:
                raise ResolveError(f"no directory for action '{rest[0]}'")
            return self.dirs[rest[0]]
        if ns == "random" and len(rest) == 1:
            try:
                return random_value(rest[0])
            except ValueError as exc:
                raise ResolveError(str(exc)) from None
        if ns == "triggers" and len(rest) == 2:
            return _text(self.triggers.get(rest[0], {}).get(rest[1], ""))
        raise ResolveError(f"cannot resolve '{path}'")


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def substitute(text: str, ctx: Context) -> str:
    """`text` with every reference replaced by its value."""
    if "${" not in text:
        return text

    def new(match: re.Match) -> str:
        inner = match.group(1).strip()
        if _DOTTED.match(inner):
            return ctx.lookup(inner)
        return "true" if evaluate(inner, ctx) else "false"

    text = _NEW.sub(new, text)

    def old(match: re.Match) -> str:
        parts = match.group(1).split(":", 2)
        if len(parts) == 1 and parts[0] in ctx.aliases:
            return ctx.lookup(f"dirs.{parts[0]}")
        if len(parts) == 3 and parts[1] == "OUTPUT" and parts[0] in ctx.aliases:
            return ctx.lookup(f"outputs.{parts[0]}.{parts[2]}")
        return match.group(0)

    return _OLD.sub(old, text)


def substitute_value(value: Any, ctx: Context) -> Any:
    """Substitute in every string of JSON-like data."""
    if isinstance(value, str):
        return substitute(value, ctx)
    if isinstance(value, dict):
        return {k: substitute_value(v, ctx) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [substitute_value(v, ctx) for v in value]
    return value


# ---- conditions -------------------------------------------------------------------------------

_TOKEN = re.compile(r"\s*(?:(\|\||&&|==|!=|!|\(|\))|'([^']*)'|\"([^\"]*)\"|\x00(\d+)\x00|([^\s()!&|=]+))")


def _tokens(text: str, values: list[str]) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    pos = 0
    text = text.strip()
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if not match or match.end() == pos:
            raise ResolveError(f"cannot read the condition at '{text[pos:]}'")
        pos = match.end()
        op, single, double, slot, word = match.groups()
        if op:
            out.append(("op", op))
        elif slot is not None:
            out.append(("value", values[int(slot)]))
        elif single is not None or double is not None:
            out.append(("value", single if single is not None else double))
        elif word is not None:
            out.append(("value", word))
        if pos < len(text) and not text[pos:].strip():
            break
    return out


class _Parser:
    def __init__(self, tokens: list[tuple[str, str]]):
        self.tokens = tokens
        self.i = 0

    def peek(self) -> tuple[str, str] | None:
        return self.tokens[self.i] if self.i < len(self.tokens) else None

    def take(self) -> tuple[str, str]:
        tok = self.peek()
        if tok is None:
            raise ResolveError("the condition ends too early")
        self.i += 1
        return tok

    def parse(self) -> Any:
        value = self.or_()
        if self.peek() is not None:
            raise ResolveError(f"unexpected '{self.peek()[1]}' in the condition")
        return value

    def or_(self):
        left = self.and_()
        while self.peek() == ("op", "||"):
            self.take()
            right = self.and_()
            left = truthy(left) or truthy(right)
        return left

    def and_(self):
        left = self.unary()
        while self.peek() == ("op", "&&"):
            self.take()
            right = self.unary()
            left = truthy(left) and truthy(right)
        return left

    def unary(self):
        if self.peek() == ("op", "!"):
            self.take()
            return not truthy(self.unary())
        return self.compare()

    def compare(self):
        left = self.atom()
        tok = self.peek()
        if tok in (("op", "=="), ("op", "!=")):
            self.take()
            right = self.atom()
            same = _text(left) == _text(right)
            return same if tok[1] == "==" else not same
        return left

    def atom(self):
        kind, text = self.take()
        if kind == "op" and text == "(":
            value = self.or_()
            if self.take() != ("op", ")"):
                raise ResolveError("missing ')' in the condition")
            return value
        if kind == "op":
            raise ResolveError(f"unexpected '{text}' in the condition")
        return text


def truthy(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    return _text(value).strip().lower() not in FALSY


def evaluate(text: str, ctx: Context) -> bool:
    """The truth of an `if` condition."""
    values: list[str] = []

    def slot(value: str) -> str:
        values.append(value)
        return f"\x00{len(values) - 1}\x00"

    def new(match: re.Match) -> str:
        inner = match.group(1).strip()
        if _DOTTED.match(inner):
            return slot(ctx.lookup(inner))
        return "(" + _PATH.sub(lambda m: slot(ctx.lookup(m.group(0))), inner) + ")"

    text = _NEW.sub(new, text)
    text = _PATH.sub(lambda m: slot(ctx.lookup(m.group(0))), text)
    tokens = _tokens(text, values)
    if not tokens:
        return False
    return truthy(_Parser(tokens).parse())


Resolver = Callable[[str], str]
