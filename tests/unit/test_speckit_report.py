"""speckit errors, paths, suggestions and the shared error report."""

from __future__ import annotations

import json

import pytest

from speckit import (
    LineMap,
    SpecError,
    SpecInvalid,
    did_you_mean,
    error_at,
    format_path,
    render_errors,
    sort_errors,
)


def test_format_path():
    assert format_path(("stages", 1, "stage", 0)) == "stages.1.stage.0"
    assert format_path(()) == ""


def test_spec_error_dict_and_exception_str():
    err = SpecError("services.api.resources.max_cpu", 12, "max_cpu must be >= cpu")
    assert err.to_dict() == {
        "path": "services.api.resources.max_cpu",
        "line": 12,
        "message": "max_cpu must be >= cpu",
    }
    assert "max_cpu must be >= cpu" in str(SpecInvalid([err]))
    many = SpecInvalid([err, SpecError("", None, "x")])
    assert str(many).startswith("2 errors")
    assert many.errors[1].line is None


def test_error_at_and_sort():
    lines = LineMap({(): 1, ("services",): 2, ("services", "api"): 3})
    assert error_at(lines, ("services", "api", "cpu"), "m") == SpecError("services.api.cpu", 3, "m")
    errs = [SpecError("b", None, "x"), SpecError("a", 5, "y"), SpecError("a", 2, "z"), SpecError("a", 5, "y")]
    assert [e.line for e in sort_errors(errs)] == [2, 5, None]


def test_did_you_mean():
    assert did_you_mean("replica", ["replicas", "policies"]) == " (did you mean 'replicas'?)"
    assert did_you_mean("zzz", ["replicas"]) == ""
    assert did_you_mean("IMAGE", ["image"]) == " (did you mean 'image'?)"


def test_render_text_and_json():
    errs = [SpecError("services.api.cpu", 4, "bad"), SpecError("", None, "not a complete spec")]
    assert render_errors(errs, filename="dice.yml", fmt="text") == (
        "dice.yml:4: services.api.cpu: bad\ndice.yml: not a complete spec"
    )
    payload = json.loads(render_errors(errs, filename="dice.yml", fmt="json"))
    assert payload == {
        "valid": False,
        "errors": [
            {"path": "services.api.cpu", "line": 4, "message": "bad"},
            {"path": "", "line": None, "message": "not a complete spec"},
        ],
    }
    assert json.loads(render_errors([], filename="f", fmt="json")) == {"valid": True, "errors": []}
    assert render_errors([], filename="f", fmt="text") == "f: valid"
    with pytest.raises(ValueError):
        render_errors([], filename="f", fmt="xml")
