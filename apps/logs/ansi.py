"""ANSI SGR colour codes to HTML spans (the same rules as static/dice/logviewer.js), for pages
rendered without JavaScript. Everything else is escaped; other escape sequences are dropped."""

from __future__ import annotations

import re
from html import escape

COLORS = ["black", "red", "green", "yellow", "blue", "magenta", "cyan", "white"]
ESCAPE = re.compile(r"\x1b\[([0-9;]*)([A-Za-z])|\x1b[()][A-Za-z0-9]|\x1b.")


def _color256(n: int) -> str:
    if n < 8:
        return COLORS[n]
    if n < 16:
        return "bright-" + COLORS[n - 8]
    if n >= 232:
        g = 8 + (n - 232) * 10
        return f"rgb({g},{g},{g})"
    n -= 16
    steps = [0, 95, 135, 175, 215, 255]
    return f"rgb({steps[n // 36]},{steps[(n // 6) % 6]},{steps[n % 6]})"


def _open_tag(state: dict) -> str:
    classes, style = [], []
    for flag in ("bold", "dim", "italic", "underline"):
        if state.get(flag):
            classes.append(f"ansi-{flag}")
    fg, bg = state.get("fg"), state.get("bg")
    if fg:
        (style.append(f"color:{fg}") if fg.startswith("rgb") else classes.append(f"ansi-{fg}"))
    if bg:
        (style.append(f"background-color:{bg}") if bg.startswith("rgb") else classes.append(f"ansi-bg-{bg}"))
    if not classes and not style:
        return ""
    attrs = (f' class="{" ".join(classes)}"' if classes else "") + (f' style="{";".join(style)}"' if style else "")
    return f"<span{attrs}>"


def _apply(state: dict, codes: list[int]) -> dict:
    i = 0
    while i < len(codes):
        c = codes[i]
        if c == 0:
            state = {}
        elif c in (1, 2, 3, 4):
            state[("bold", "dim", "italic", "underline")[c - 1]] = True
        elif c == 22:
            state["bold"] = state["dim"] = False
        elif c == 23:
            state["italic"] = False
        elif c == 24:
            state["underline"] = False
        elif 30 <= c <= 37:
            state["fg"] = COLORS[c - 30]
        elif 90 <= c <= 97:
            state["fg"] = "bright-" + COLORS[c - 90]
        elif c == 39:
            state["fg"] = None
        elif 40 <= c <= 47:
            state["bg"] = COLORS[c - 40]
        elif 100 <= c <= 107:
            state["bg"] = "bright-" + COLORS[c - 100]
        elif c == 49:
            state["bg"] = None
        elif c in (38, 48) and i + 1 < len(codes) and codes[i + 1] == 5:
            state["fg" if c == 38 else "bg"] = _color256(codes[i + 2] if i + 2 < len(codes) else 0)
            i += 2
        elif c in (38, 48) and i + 1 < len(codes) and codes[i + 1] == 2:
            r, g, b = (codes[i + 2: i + 5] + [0, 0, 0])[:3]
            state["fg" if c == 38 else "bg"] = f"rgb({r},{g},{b})"
            i += 4
        i += 1
    return state


def to_html(text: str) -> str:
    out, state, last = [], {}, 0

    def emit(chunk: str) -> None:
        if chunk:
            tag = _open_tag(state)
            out.append(f"{tag}{escape(chunk, quote=True)}</span>" if tag else escape(chunk, quote=True))

    for match in ESCAPE.finditer(text):
        emit(text[last:match.start()])
        last = match.end()
        if match.group(2) == "m":
            raw = match.group(1)
            codes = [int(c or 0) for c in raw.split(";")] if raw else [0]
            state = _apply(dict(state), codes)
    emit(text[last:])
    return "".join(out)


def strip(text: str) -> str:
    return ESCAPE.sub("", text)
