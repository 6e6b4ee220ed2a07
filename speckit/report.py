"""Rendering of spec errors for the CLI: `file:line: path: message` text, or the JSON of SPEC.md."""

from __future__ import annotations

import json

from speckit.errors import SpecError

FORMATS = ("text", "json")


def render_errors(
    errors: list[SpecError], *, filename: str, fmt: str, warnings: list[SpecError] | None = None
) -> str:
    """Text: one `file:line: path: message` per error (`file: ...` without a line), or
    `file: valid`, then one `file:line: path: warning: message` per warning; json:
    {"valid": bool, "errors": [{"path", "line", "message"}, ...], "warnings": [...]}
    (`warnings` only when the caller reports them)."""
    if fmt == "json":
        report: dict = {"valid": not errors, "errors": [e.to_dict() for e in errors]}
        if warnings is not None:
            report["warnings"] = [w.to_dict() for w in warnings]
        return json.dumps(report, ensure_ascii=False)
    if fmt != "text":
        raise ValueError(f"unknown format {fmt!r}; expected one of {', '.join(FORMATS)}")
    out = [f"{filename}: valid"] if not errors else [_line(filename, err, "") for err in errors]
    out += [_line(filename, w, "warning: ") for w in warnings or ()]
    return "\n".join(out)


def _line(filename: str, err: SpecError, kind: str) -> str:
    where = f"{filename}:{err.line}" if err.line is not None else filename
    what = f"{err.path}: " if err.path else ""
    return f"{where}: {what}{kind}{err.message}"
