"""A small server-rendered graph of an item and its neighbours: the item in the middle, related
items on a circle, an edge with its relation name to each."""

from __future__ import annotations

import math

WIDTH, HEIGHT = 720, 420
RADIUS = 155
MAX_NEIGHBOURS = 16


def layout(item, outgoing, incoming) -> dict:
    """outgoing/incoming: Relation lists (targets/sources already fetched)."""
    cx, cy = WIDTH / 2, HEIGHT / 2
    neighbours = [(r.kind, r.target, "out") for r in outgoing] + [(r.kind, r.source, "in") for r in incoming]
    hidden = max(0, len(neighbours) - MAX_NEIGHBOURS)
    neighbours = neighbours[:MAX_NEIGHBOURS]
    nodes = [_box(cx, cy, item, "", center=True)]
    edges = []
    for i, (kind, other, direction) in enumerate(neighbours):
        angle = 2 * math.pi * i / max(1, len(neighbours)) - math.pi / 2
        x, y = cx + RADIUS * 1.6 * math.cos(angle), cy + RADIUS * math.sin(angle)
        nodes.append(_box(x, y, other, other.get_absolute_url()))
        x1, y1, x2, y2 = (cx, cy, x, y) if direction == "out" else (x, y, cx, cy)
        edges.append({"x1": round(x1, 1), "y1": round(y1, 1), "x2": round(x2, 1), "y2": round(y2, 1),
                      "lx": round((cx + x) / 2, 1), "ly": round((cy + y) / 2 - 4, 1), "label": kind})
    return {"width": WIDTH, "height": HEIGHT, "nodes": nodes, "edges": edges, "hidden": hidden}


def _box(x: float, y: float, item, url: str, center: bool = False) -> dict:
    return {"x": round(x, 1), "y": round(y, 1), "rx": round(x - 80, 1), "ry": round(y - 17, 1),
            "t1": round(y - 3, 1), "t2": round(y + 11, 1), "label": _short(item.name), "kind": item.kind,
            "url": url, "center": center}


def _short(text: str, limit: int = 26) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
