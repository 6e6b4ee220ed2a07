"""Shared, framework-free pieces of the dice.yml and pipeline.yml parsers (YAML with lines, errors)."""

from speckit.errors import SpecError, SpecInvalid, error_at, sort_errors
from speckit.paths import format_path
from speckit.report import render_errors
from speckit.suggest import did_you_mean
from speckit.yamlload import LineMap, load_yaml

__all__ = [
    "LineMap",
    "SpecError",
    "SpecInvalid",
    "did_you_mean",
    "error_at",
    "format_path",
    "load_yaml",
    "render_errors",
    "sort_errors",
]
