"""The dependency diagram of a release as inline SVG, drawn on the server (no JavaScript library).

Columns by depth: a service sits left of everything it depends on, so every arrow points right,
from a service to its dependency; addons form the last column (every service may reach them).
"""

from __future__ import annotations

from html import escape

BOX_W, BOX_H = 180, 46
COL_GAP, ROW_GAP, PAD = 70, 18, 12


def _depth(name: str, deps: dict[str, list[str]], memo: dict[str, int], seen: frozenset = frozenset()) -> int:
    """Length of the longest depends_on chain below a service (0: depends on nothing)."""
    if name in memo:
        return memo[name]
    if name in seen:  # cycles are refused by the parser; never loop on one anyway
        return 0
    below = [d for d in deps.get(name, []) if d in deps]
    memo[name] = 1 + max((_depth(d, deps, memo, seen | {name}) for d in below), default=-1)
    return memo[name]


def _short(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def dependency_svg(summary: dict) -> str:
    """SVG markup (all text escaped) for a release summary from apps.deploy.summary.summarize."""
    services = {s["name"]: s for s in summary.get("services", [])}
    deps = {name: list(s.get("depends_on") or []) for name, s in services.items()}
    memo: dict[str, int] = {}
    depth = {name: _depth(name, deps, memo) for name in services}
    top = max(depth.values(), default=0)
    columns: list[list[tuple[str, str, str]]] = [[] for _ in range(top + 1)]
    for name in sorted(services):
        image = services[name].get("image") or "no image"
        columns[top - depth[name]].append((name, image, "service"))
    addons = summary.get("addons", [])
    if addons:
        columns.append([(a["name"], f"{a['type']}:{a['size']}", "addon") for a in addons])
    columns = [c for c in columns if c]
    if not columns:
        return ""
    pos: dict[tuple[str, str], tuple[int, int]] = {}
    for ci, column in enumerate(columns):
        for ri, (name, _, kind) in enumerate(column):
            pos[(kind, name)] = (PAD + ci * (BOX_W + COL_GAP), PAD + ri * (BOX_H + ROW_GAP))
    width = PAD * 2 + len(columns) * BOX_W + (len(columns) - 1) * COL_GAP
    height = PAD * 2 + max(len(c) for c in columns) * (BOX_H + ROW_GAP) - ROW_GAP
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="dependency-diagram" role="img" '
        f'width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
        f'aria-label="Service dependencies">',
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="8" markerHeight="8" '
        'orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="#667"/></marker></defs>',
    ]
    for name in sorted(services):
        x, y = pos[("service", name)]
        for dep in deps[name]:
            if ("service", dep) not in pos:
                continue
            tx, ty = pos[("service", dep)]
            parts.append(
                f'<line class="edge" data-from="{escape(name)}" data-to="{escape(dep)}" '
                f'x1="{x + BOX_W}" y1="{y + BOX_H // 2}" x2="{tx}" y2="{ty + BOX_H // 2}" '
                'stroke="#667" stroke-width="1.5" marker-end="url(#arrow)"/>'
            )
    for column in columns:
        for name, detail, kind in column:
            x, y = pos[(kind, name)]
            fill, stroke, rx = ("#eef4ff", "#4a6fb5", 4) if kind == "service" else ("#f3f0e8", "#9a7b3c", 14)
            parts.append(
                f'<g class="{kind}" data-name="{escape(name)}"><title>{escape(kind)} {escape(name)}: '
                f'{escape(detail)}</title>'
                f'<rect x="{x}" y="{y}" width="{BOX_W}" height="{BOX_H}" rx="{rx}" fill="{fill}" '
                f'stroke="{stroke}"/>'
                f'<text x="{x + 10}" y="{y + 19}" font-size="13" font-weight="600" fill="#222">'
                f'{escape(_short(name, 24))}</text>'
                f'<text x="{x + 10}" y="{y + 36}" font-size="11" fill="#555">{escape(_short(detail, 28))}</text>'
                "</g>"
            )
    parts.append("</svg>")
    return "".join(parts)
