"""speckit.load_yaml: plain data with lines, and each refusal of hostile or ambiguous input."""

from __future__ import annotations

import time

import pytest

from speckit import LineMap, SpecInvalid, load_yaml


def refused(text, **kwargs):
    with pytest.raises(SpecInvalid) as info:
        load_yaml(text, **kwargs)
    return info.value.errors


def alias_bomb(levels: int = 9) -> str:
    text = 'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n'
    prev = "a"
    for name in "bcdefghijk"[: levels - 1]:
        text += f"{name}: &{name} [" + ", ".join([f"*{prev}"] * 9) + "]\n"
        prev = name
    return text


def test_plain_data_and_lines():
    data, lines = load_yaml("version: 2.0\nservices:\n  api:\n    ports:\n      - 8080\n      - port: 9090\n")
    assert data == {"version": 2.0, "services": {"api": {"ports": [8080, {"port": 9090}]}}}
    assert isinstance(lines, LineMap)
    assert lines.get(()) == 1
    assert lines.get(("services",)) == 2
    assert lines.get(("services", "api", "ports", 0)) == 5
    assert lines.get(("services", "api", "ports", 1, "port")) == 6
    assert lines.get(("services", "api", "missing")) is None
    assert lines.nearest(("services", "api", "missing", 3)) == 3


def test_keys_stay_source_text_values_are_yaml_1_1():
    data, _ = load_yaml("on:\n  push: yes\n2.0: x\n1: one\nnull: ~\nwhen: 2020-01-01\nn: 0x10\n")
    assert data == {"on": {"push": True}, "2.0": "x", "1": "one", "null": None, "when": "2020-01-01", "n": 16}


def test_bytes_input_and_bom():
    data, _ = load_yaml("\ufeffa: é\n".encode())
    assert data == {"a": "é"}


def test_merge_keys_supported_explicit_keys_win():
    data, _ = load_yaml("base: &b {x: 1, y: 2}\nz:\n  <<: *b\n  y: 3\n")
    assert data["z"] == {"x": 1, "y": 3}


def test_alias_bomb_refused_quickly():
    start = time.process_time()  # CPU spent, not wall time (the machine may be busy)
    errors = refused(alias_bomb())
    assert time.process_time() - start < 1.0
    assert "alias" in errors[0].message
    assert errors[0].line is not None


def test_small_aliases_still_fine():
    data, _ = load_yaml("x: &x {a: 1}\ny: *x\n")
    assert data["y"] == {"a": 1}


def test_recursive_alias_refused():
    assert "recursive" in refused("a: &a [*a]\n")[0].message


def test_duplicate_keys_name_both_lines():
    errors = refused("a: 1\nb:\n  c: 1\n  c: 2\n")
    assert errors[0].path == "b.c"
    assert errors[0].line == 4
    assert "line 3" in errors[0].message and "line 4" in errors[0].message


def test_tab_indentation_names_the_line():
    errors = refused("a:\n  b: 1\n\tc: 2\n")
    assert errors[0].line == 3
    assert "tab" in errors[0].message


def test_tab_inside_block_scalar_is_content():
    data, _ = load_yaml("a: |\n  x\n  \ty\n")
    assert data["a"] == "x\n\ty\n"


def test_size_limit():
    errors = refused("a: " + "x" * (1024 * 1024) + "\n")
    assert "too large" in errors[0].message
    assert refused("a: 12345\n", max_bytes=4)[0].path == ""


def test_not_utf8():
    errors = refused(b"a: 1\nb: \xff\xfe\n")
    assert "UTF-8" in errors[0].message
    assert errors[0].line == 2


@pytest.mark.parametrize(("text", "word"), [("- 1\n- 2\n", "list"), ("just text\n", "single value")])
def test_non_mapping_refused(text, word):
    errors = refused(text)
    assert "mapping" in errors[0].message and word in errors[0].message


def test_empty_document_refused():
    assert "empty" in refused("# only a comment\n")[0].message


def test_syntax_error_has_line():
    errors = refused("a: 1\nb: [1, 2\nc: 3\n")
    assert errors[0].message.startswith("YAML syntax error")
    assert errors[0].line == 3


def test_more_than_one_document():
    errors = refused("a: 1\n---\nb: 2\n")
    assert "more than one" in errors[0].message
    assert errors[0].line == 3


def test_unknown_tag_and_complex_key():
    assert "!foo" in refused("a: !foo x\n")[0].message
    assert "plain scalars" in refused("? [a]\n: 1\n")[0].message


def test_deep_nesting_refused_not_crashing():
    start = time.process_time()  # CPU spent, not wall time (the machine may be busy)
    refused("a: " + "[" * 5000 + "]" * 5000 + "\n")
    refused("a:\n" + "".join(f"{' ' * i}k{i}:\n" for i in range(1, 400)))
    assert time.process_time() - start < 1.0
