"""Rendering of spec errors for the CLI: `file:line: path: message` text, or the JSON of SPEC.md."""

from __future__ import annotations

import json

from speckit.errors import SpecError

FORMATS = ("text", "json")


def render_errors(errors: list[SpecError], *, filename: str, fmt: str) -> str:
    """Text: one `file:line: path: message` per error (`file: ...` without a line), or
    `file: valid`; json: {"valid": bool, "errors": [{"path", "line", "message"}, ...]}."""
    if fmt == "json":
        return json.dumps({"valid": not errors, "errors": [e.to_dict() for e in errors]}, ensure_ascii=False)
    if fmt != "text":
        raise ValueError(f"unknown format {fmt!r}; expected one of {', '.join(FORMATS)}")
    if not errors:
        return f"{filename}: valid"
    out = []
    for err in errors:
        where = f"{filename}:{err.line}" if err.line is not None else filename
        what = f"{err.path}: " if err.path else ""
        out.append(f"{where}: {what}{err.message}")
    return "\n".join(out)
