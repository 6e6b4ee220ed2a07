"""JSON for the agent's hot path, on the interpreter's C accelerator (`_json`) alone.

The `json` package imports `re`, and `re` imports `enum`: on this machine under load those cost
a step's agent 20-30 ms before it runs anything (bench/bench_pipeline_dispatch.py), more than
the interpreter's own start. The C scanner and encoder behind `json` need neither: these are
json.loads and json.dumps (default separators) without the imports. Standard library only."""

from __future__ import annotations

import _json

__all__ = ["dumps", "loads"]


class _Context:
    """What the C scanner reads from a decoder (json.JSONDecoder's defaults)."""

    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    parse_constant = float  # NaN, Infinity, -Infinity


_scan = _json.make_scanner(_Context())
_WHITESPACE = " \t\n\r"


def loads(text: str | bytes):
    """json.loads: a ValueError naming the position when `text` is not one JSON document."""
    if isinstance(text, bytes):
        text = text.decode("utf-8")
    start = len(text) - len(text.lstrip(_WHITESPACE))
    try:
        value, end = _scan(text, start)
    except StopIteration as exc:
        raise ValueError(f"not JSON: expecting a value at character {exc.value}") from None
    except SystemError:  # the C scanner reports its other errors through json.decoder, if imported
        import json  # only on this path: a spec that is not JSON

        try:
            json.loads(text)
        except ValueError as exc:
            raise ValueError(f"not JSON: {exc}") from None
        raise
    if text[end:].strip(_WHITESPACE):
        raise ValueError(f"not JSON: extra data at character {end}")
    return value


def _unknown(value):
    raise TypeError(f"Object of type {value.__class__.__name__} is not JSON serializable")


_encoders = {
    ascii_only: _json.make_encoder(None, _unknown, _json.encode_basestring_ascii if ascii_only
                                   else _json.encode_basestring, None, ": ", ", ", False, False, True)
    for ascii_only in (True, False)
}


def dumps(value, ensure_ascii: bool = True) -> str:
    """json.dumps(value, ensure_ascii=...) with the default separators."""
    return "".join(_encoders[bool(ensure_ascii)](value, 0))
