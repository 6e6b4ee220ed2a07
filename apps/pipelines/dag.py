"""A run's task graph as inline SVG, drawn on the server: columns by depth (longest chain of needs),
arrows from a task to the tasks that need it, boxes coloured by status."""

from __future__ import annotations

from html import escape

BOX_W, BOX_H = 170, 44
COL_GAP, ROW_GAP, PAD = 60, 14, 10
MAX_ROWS_DRAWN = 400  # beyond this many tasks the page shows the table only

COLOURS = {
    "queued": ("#f1f3f5", "#868e96"),
    "running": ("#e7f5ff", "#1c7ed6"),
    "success": ("#ebfbee", "#2f9e44"),
    "failed": ("#fff5f5", "#e03131"),
    "timed-out": ("#fff4e6", "#e8590c"),
    "cancelled": ("#f8f0fc", "#9c36b5"),
    "skipped": ("#f8f9fa", "#adb5bd"),
}


def _short(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def run_svg(tasks: list) -> str:
    """`tasks`: objects with alias, type, status, needs, attempt (the planned order)."""
    if not tasks or len(tasks) > MAX_ROWS_DRAWN:
        return ""
    depth: dict[str, int] = {}
    for task in tasks:  # planned order is topological
        depth[task.alias] = 1 + max((depth.get(d, -1) for d in task.needs), default=-1)
    columns: dict[int, list] = {}
    for task in tasks:
        columns.setdefault(depth[task.alias], []).append(task)
    where = {}
    for col, members in columns.items():
        for row, task in enumerate(members):
            where[task.alias] = (PAD + col * (BOX_W + COL_GAP), PAD + row * (BOX_H + ROW_GAP))
    width = PAD * 2 + len(columns) * (BOX_W + COL_GAP) - COL_GAP
    height = PAD * 2 + max(len(m) for m in columns.values()) * (BOX_H + ROW_GAP) - ROW_GAP
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="pipeline-dag" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="task graph">',
        '<defs><marker id="dag-arrow" markerWidth="8" markerHeight="8" refX="7" refY="4" orient="auto">'
        '<path d="M0,0 L8,4 L0,8 z" fill="#868e96"/></marker></defs>',
    ]
    for task in tasks:
        x2, y2 = where[task.alias]
        for dep in task.needs:
            if dep not in where:
                continue
            x1, y1 = where[dep]
            parts.append(f'<line x1="{x1 + BOX_W}" y1="{y1 + BOX_H / 2}" x2="{x2 - 2}" y2="{y2 + BOX_H / 2}" '
                         'stroke="#adb5bd" stroke-width="1.5" marker-end="url(#dag-arrow)"/>')
    for task in tasks:
        x, y = where[task.alias]
        fill, stroke = COLOURS.get(task.status, COLOURS["queued"])
        attempt = f" · try {task.attempt}" if task.attempt > 1 else ""
        parts.append(
            f'<a href="#task-{escape(task.alias)}"><g class="dag-task status-{escape(task.status)}">'
            f'<title>{escape(task.alias)} ({escape(task.type)}): {escape(task.status)}</title>'
            f'<rect x="{x}" y="{y}" width="{BOX_W}" height="{BOX_H}" rx="6" fill="{fill}" stroke="{stroke}" '
            'stroke-width="2"/>'
            f'<text x="{x + 10}" y="{y + 18}" font-size="13" font-weight="600" fill="#212529">'
            f'{escape(_short(task.alias, 22))}</text>'
            f'<text x="{x + 10}" y="{y + 35}" font-size="11" fill="{stroke}">'
            f'{escape(_short(task.type, 16))} · {escape(task.status)}{attempt}</text></g></a>'
        )
    parts.append("</svg>")
    return "".join(parts)
