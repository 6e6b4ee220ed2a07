"""Spec errors: one located problem (path, line, message) and the exception that carries them all."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from speckit.paths import format_path


@dataclass(frozen=True)
class SpecError:
    """One problem in a spec file: dotted path from the root, 1-based line (or None), message."""

    path: str
    line: int | None
    message: str

    def to_dict(self) -> dict:
        return {"path": self.path, "line": self.line, "message": self.message}

    def __str__(self) -> str:
        where = f"line {self.line}: " if self.line is not None else ""
        what = f"{self.path}: " if self.path else ""
        return f"{where}{what}{self.message}"


class SpecInvalid(Exception):
    """Raised when a spec is refused; `errors` holds every problem found, in file order."""

    def __init__(self, errors: Iterable[SpecError]):
        self.errors: list[SpecError] = list(errors)
        super().__init__(self._summary())

    def _summary(self) -> str:
        if not self.errors:
            return "invalid spec"
        first = str(self.errors[0])
        if len(self.errors) == 1:
            return first
        return f"{len(self.errors)} errors; first: {first}"

    def __str__(self) -> str:
        return self._summary()


def error_at(lines, path: tuple, message: str) -> SpecError:
    """A SpecError for `path`, its line taken from a LineMap (the path's or its nearest ancestor's)."""
    line = lines.nearest(path) if lines is not None else None
    return SpecError(format_path(path), line, message)


def sort_errors(errors: Iterable[SpecError]) -> list[SpecError]:
    """Errors in file order (errors without a line last), duplicates dropped, order otherwise kept."""
    seen: set[SpecError] = set()
    unique = []
    for err in errors:
        if err not in seen:
            seen.add(err)
            unique.append(err)
    big = 1 << 60
    return sorted(unique, key=lambda e: e.line if e.line is not None else big)
