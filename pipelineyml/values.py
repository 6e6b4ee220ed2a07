"""Typed reading of plain YAML values that records located errors instead of raising."""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

from speckit import LineMap, SpecError, did_you_mean, error_at

_TRUE = {"true": True, "false": False}


def kind_of(value: Any) -> str:
    """A reader's name for the YAML kind of `value`."""
    if value is None:
        return "nothing (null)"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return type(value).__name__


def scalar_text(value: Any) -> str:
    """A scalar as the text a user would have meant (1.1 -> "1.1", True -> "true")."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


class Reader:
    """Collects SpecErrors (with lines from a LineMap) while reading values by path."""

    def __init__(self, lines: LineMap | None):
        self.lines = lines
        self.errors: list[SpecError] = []

    def error(self, path: tuple, message: str) -> None:
        self.errors.append(error_at(self.lines, path, message))

    def mapping(self, value: Any, path: tuple, *, allowed: Iterable[str] | None = None) -> dict | None:
        """`value` as a dict (None reads as empty); unknown keys are reported with a suggestion."""
        if value is None:
            return {}
        if not isinstance(value, dict):
            self.error(path, f"expected a mapping, found {kind_of(value)}")
            return None
        if allowed is not None:
            self.unknown_keys(value, path, allowed)
        return value

    def unknown_keys(self, value: dict, path: tuple, allowed: Iterable[str]) -> None:
        known = sorted(set(allowed))
        for key in value:
            if key not in known:
                self.error((*path, key), f"unknown key '{key}'{did_you_mean(key, known)}")

    def sequence(self, value: Any, path: tuple) -> list | None:
        """`value` as a list (None reads as empty)."""
        if value is None:
            return []
        if not isinstance(value, list):
            self.error(path, f"expected a list, found {kind_of(value)}")
            return None
        return value

    def string(self, value: Any, path: tuple, *, required: bool = False) -> str | None:
        """A string; numbers and booleans become their text (YAML types `1.0` as a float)."""
        if value is None:
            if required:
                self.error(path, "is required")
            return None
        if isinstance(value, str):
            if required and not value.strip():
                self.error(path, "must not be empty")
                return None
            return value
        if isinstance(value, bool | int | float):
            return scalar_text(value)
        self.error(path, f"expected a string, found {kind_of(value)}")
        return None

    def boolean(self, value: Any, path: tuple, *, default: bool) -> bool:
        if value is None:
            return default
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in _TRUE:
            return _TRUE[value.lower()]
        self.error(path, f"expected true or false, found {kind_of(value)}")
        return default

    def integer(self, value: Any, path: tuple, *, minimum: int | None = None, what: str = "") -> int | None:
        """An integer (an integral float or a string of digits is accepted)."""
        if value is None:
            return None
        number: int | None = None
        if isinstance(value, bool):
            number = None
        elif isinstance(value, int):
            number = value
        elif isinstance(value, float) and value.is_integer():
            number = int(value)
        elif isinstance(value, str) and value.strip().lstrip("-").isdigit():
            number = int(value.strip())
        if number is None:
            self.error(
                path, f"expected a whole number{what}, found {kind_of(value)} ({scalar_text(value)!r})"
            )
            return None
        if minimum is not None and number < minimum:
            self.error(path, f"must be at least {minimum}{what}, found {number}")
            return None
        return number

    def number(self, value: Any, path: tuple, *, positive: bool = False, what: str = "") -> float | None:
        if value is None:
            return None
        number: float | None = None
        if isinstance(value, int | float) and not isinstance(value, bool):
            number = float(value)
        elif isinstance(value, str):
            try:
                number = float(value)
            except ValueError:
                number = None
        if number is None or math.isnan(number) or math.isinf(number):
            self.error(path, f"expected a number{what}, found {kind_of(value)} ({scalar_text(value)!r})")
            return None
        if positive and number <= 0:
            self.error(path, f"must be greater than 0{what}, found {scalar_text(value)}")
            return None
        if not positive and number < 0:
            self.error(path, f"must not be negative{what}, found {scalar_text(value)}")
            return None
        return number

    def string_list(self, value: Any, path: tuple, *, single_ok: bool = False) -> tuple[str, ...]:
        """A list of strings (scalars are turned into text); a lone string when `single_ok`."""
        if single_ok and isinstance(value, str | int | float) and not isinstance(value, bool):
            return (scalar_text(value),)
        items = self.sequence(value, path)
        if items is None:
            return ()
        out = []
        for i, item in enumerate(items):
            if isinstance(item, str | int | float | bool):
                out.append(scalar_text(item))
            else:
                self.error((*path, i), f"expected a string, found {kind_of(item)}")
        return tuple(out)

    def string_map(self, value: Any, path: tuple) -> dict[str, str]:
        """A mapping of strings; number and boolean values become their text."""
        data = self.mapping(value, path)
        if not data:
            return {}
        out = {}
        for key, item in data.items():
            if item is None:
                out[key] = ""
            elif isinstance(item, str | int | float | bool):
                out[key] = scalar_text(item)
            else:
                self.error((*path, key), f"expected a string, found {kind_of(item)}")
        return out
