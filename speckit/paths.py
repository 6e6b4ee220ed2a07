"""Dotted paths into a spec document: ('stages', 1, 'stage', 0) -> 'stages.1.stage.0'."""

from __future__ import annotations


def format_path(path: tuple | list) -> str:
    """Dotted from the document root; list items by index; the root itself is ''."""
    return ".".join(str(part) for part in path)
