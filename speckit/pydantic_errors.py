"""Pydantic validation errors translated into SpecErrors with our dotted paths, lines and plain words."""

from __future__ import annotations

import types
import typing
from collections.abc import Callable

from pydantic import BaseModel, ValidationError

from speckit.errors import SpecError
from speckit.paths import format_path
from speckit.suggest import did_you_mean

_TYPE_WORDS = {
    "int": "a whole number",
    "float": "a number",
    "bool": "true or false",
    "string": "text",
    "dict": "a mapping",
    "model": "a mapping",
    "list": "a list",
}


def describe(value: object) -> str:
    """How a YAML value is called in messages: 'abc', the number 3, a mapping, a list."""
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list | tuple):
        return "a list"
    if isinstance(value, bool):
        return str(value).lower()
    if value is None:
        return "nothing (null)"
    if isinstance(value, int | float):
        return str(value)
    return repr(value) if isinstance(value, str) else type(value).__name__


def _unwrap(tp: object) -> object:
    while True:
        origin = typing.get_origin(tp)
        if origin is typing.Annotated:
            tp = typing.get_args(tp)[0]
        elif origin in (typing.Union, types.UnionType):
            args = [a for a in typing.get_args(tp) if a is not type(None)]
            picked = next((a for a in args if _is_model(a)), None) or (args[0] if args else tp)
            if picked is tp:
                return tp
            tp = picked
        else:
            return tp


def _is_model(tp: object) -> bool:
    return isinstance(tp, type) and issubclass(tp, BaseModel)


def _field_keys(model: type[BaseModel]) -> dict[str, str]:
    keys = {}
    for name, field in model.model_fields.items():
        keys[field.alias or name] = name
    return keys


def model_at(model: type[BaseModel] | None, loc: tuple) -> type[BaseModel] | None:
    """The model class that validates the mapping at `loc` under `model` (None if not a model)."""
    tp: object = model
    for part in loc:
        tp = _unwrap(tp)
        if _is_model(tp):
            keys = _field_keys(tp)  # type: ignore[arg-type]
            name = keys.get(str(part), part if part in tp.model_fields else None)  # type: ignore[union-attr]
            if name is None:
                return None
            tp = tp.model_fields[name].annotation  # type: ignore[union-attr]
        elif typing.get_origin(tp) is dict:
            tp = typing.get_args(tp)[1]
        elif typing.get_origin(tp) is list:
            tp = typing.get_args(tp)[0]
        else:
            return None
    tp = _unwrap(tp)
    return tp if _is_model(tp) else None  # type: ignore[return-value]


def _message(
    err: dict, model: type[BaseModel] | None, value_hint: Callable[[object], str | None] | None
) -> str:
    kind = err["type"]
    loc = err["loc"]
    value = err.get("input")
    msg = err["msg"]
    if kind == "extra_forbidden":
        parent = model_at(model, tuple(loc[:-1]))
        allowed = list(_field_keys(parent)) if parent is not None else []
        return f"unknown key '{loc[-1]}'{did_you_mean(str(loc[-1]), allowed)}"
    if kind == "missing":
        return f"'{loc[-1]}' is required" if loc else "a value is required"
    if value_hint is not None:
        hint = value_hint(value)
        if hint:
            return hint
    for prefix, words in _TYPE_WORDS.items():
        if kind.startswith(prefix + "_") and kind.endswith(("_type", "_parsing", "_from_float")):
            if kind == "int_from_float":
                return f"expected a whole number, got {describe(value)}"
            return f"expected {words}, got {describe(value)}"
    if kind in ("model_attributes_type",):
        return f"expected a mapping, got {describe(value)}"
    if kind == "literal_error":
        expected = msg.removeprefix("Input should be ")
        return f"must be {expected}, got {describe(value)}"
    if kind in ("greater_than", "greater_than_equal", "less_than", "less_than_equal"):
        bound = next(iter((err.get("ctx") or {}).values()), "")
        symbol = {"greater_than": ">", "greater_than_equal": ">=", "less_than": "<", "less_than_equal": "<="}[
            kind
        ]
        return f"must be {symbol} {bound}, got {describe(value)}"
    if kind == "string_too_short":
        return "must not be empty"
    msg = msg.removeprefix("Value error, ").removeprefix("Assertion failed, ")
    return msg.replace("Input should be", "must be")


def translate_raw(
    exc: ValidationError,
    *,
    prefix: tuple = (),
    model: type[BaseModel] | None = None,
    value_hint: Callable[[object], str | None] | None = None,
) -> list[tuple[tuple, str]]:
    """(path, message) pairs for a pydantic ValidationError raised validating the data at `prefix`."""
    out = []
    for err in exc.errors(include_url=False):
        loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and p.startswith(("function-", "["))))
        out.append(((*prefix, *loc), _message(err, model, value_hint)))
    return out


def translate(
    exc: ValidationError,
    *,
    prefix: tuple = (),
    lines=None,
    model: type[BaseModel] | None = None,
    value_hint: Callable[[object], str | None] | None = None,
) -> list[SpecError]:
    """SpecErrors for a pydantic ValidationError raised while validating the data at `prefix`.

    `lines` is a LineMap of the whole document, `model` the class that was validated (for the
    did-you-mean of unknown keys), `value_hint` may give a better message for a bad value.
    """
    return [
        SpecError(format_path(path), lines.nearest(path) if lines is not None else None, message)
        for path, message in translate_raw(exc, prefix=prefix, model=model, value_hint=value_hint)
    ]
