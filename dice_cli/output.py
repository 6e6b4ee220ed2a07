"""Printing data as aligned text tables or JSON (`--format json` on every data command)."""

from __future__ import annotations

import json
import sys


def add_format_option(parser) -> None:
    parser.add_argument("--format", choices=("text", "json"), default="text", help="output format")


def emit(data, fmt: str, columns: list[str] | None = None, out=None) -> None:
    out = out or sys.stdout
    if fmt == "json":
        out.write(json.dumps(data, indent=2, default=str) + "\n")
        return
    rows = data if isinstance(data, list) else [data]
    columns = columns or (list(rows[0]) if rows else [])
    if not rows:
        out.write("(none)\n")
        return
    cells = [[str(row.get(col, "") if row.get(col) is not None else "") for col in columns] for row in rows]
    widths = [max(len(col), *(len(r[i]) for r in cells)) for i, col in enumerate(columns)]
    out.write("  ".join(col.upper().ljust(w) for col, w in zip(columns, widths, strict=True)).rstrip() + "\n")
    for r in cells:
        out.write("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() + "\n")
