"""`${{ random.<kind> }}` values and the reference suffixes (.escape, .wrap_*), as Erda has them.

The kinds are Erda's (pkg/mock): strings of random letters or digits, integers, floats, booleans,
mobile numbers, timestamps and dates (now, an hour or a day before or after), plus `uuid`, and
`datetime_custom_<layout>` with a Go time layout or one of Go's named layouts (RFC3339 ...).
A value is drawn each time a reference is resolved (each occurrence its own value).
"""

from __future__ import annotations

import datetime as dt
import re
import secrets
import string
import uuid

SIMPLE_KINDS = (
    "string", "integer", "float", "boolean", "upper", "lower", "mobile", "digital_letters", "letters",
    "character", "uuid", "timestamp", "timestamp_hour", "timestamp_after_hour", "timestamp_day",
    "timestamp_after_day", "timestamp_ms", "timestamp_ms_hour", "timestamp_ms_after_hour", "timestamp_ms_day",
    "timestamp_ms_after_day", "timestamp_ns", "timestamp_ns_hour", "timestamp_ns_after_hour", "timestamp_ns_day",
    "timestamp_ns_after_day", "date", "date_day", "datetime", "datetime_hour",
)  # fmt: skip
_INTEGER_N = re.compile(r"integer_(\d+)")
CUSTOM_PREFIX = "datetime_custom_"
GO_LAYOUTS = {
    "ANSIC": "Mon Jan _2 15:04:05 2006",
    "UnixDate": "Mon Jan _2 15:04:05 MST 2006",
    "RubyDate": "Mon Jan 02 15:04:05 -0700 2006",
    "RFC822": "02 Jan 06 15:04 MST",
    "RFC822Z": "02 Jan 06 15:04 -0700",
    "RFC850": "Monday, 02-Jan-06 15:04:05 MST",
    "RFC1123": "Mon, 02 Jan 2006 15:04:05 MST",
    "RFC1123Z": "Mon, 02 Jan 2006 15:04:05 -0700",
    "RFC3339": "2006-01-02T15:04:05Z07:00",
    "RFC3339Nano": "2006-01-02T15:04:05.999999999Z07:00",
    "Kitchen": "3:04PM",
    "Stamp": "Jan _2 15:04:05",
    "StampMilli": "Jan _2 15:04:05.000",
    "StampMicro": "Jan _2 15:04:05.000000",
    "StampNano": "Jan _2 15:04:05.000000000",
}
_RNG = secrets.SystemRandom()


def random_problem(kind: str) -> str | None:
    """Why `random.<kind>` is not a kind (None when it is)."""
    if kind in SIMPLE_KINDS:
        return None
    match = _INTEGER_N.fullmatch(kind)
    if match:
        n = int(match.group(1))
        return None if 1 <= n <= 18 else f"random.{kind}: the length must be 1 to 18 digits"
    if kind.startswith(CUSTOM_PREFIX) and kind[len(CUSTOM_PREFIX) :]:
        return None
    return (
        f"unknown random kind '{kind}': use one of {', '.join(SIMPLE_KINDS)}, integer_<digits> "
        f"or {CUSTOM_PREFIX}<layout>"
    )


def _chars(alphabet: str) -> str:
    return "".join(_RNG.choice(alphabet) for _ in range(_RNG.randint(1, 15)))


_GO_TOKENS = (
    ("January", "%B"), ("Monday", "%A"), ("2006", "%Y"), ("-07:00", "%:z"), ("-0700", "%z"), ("Z07:00", "Z%:z"),
    ("Jan", "%b"), ("Mon", "%a"), ("MST", "%Z"), ("_2", "%e"), ("01", "%m"), ("02", "%d"), ("03", "%I"),
    ("04", "%M"), ("05", "%S"), ("06", "%y"), ("15", "%H"), ("PM", "%p"), ("pm", "%p"),
    (".000000000", ".%N9"), (".999999999", ".%N9"), (".000000", ".%f"), (".000", ".%N3"),
    ("1", "%-m"), ("2", "%-d"), ("3", "%-I"), ("4", "%-M"), ("5", "%-S"),
)  # fmt: skip


def go_format(when: dt.datetime, layout: str) -> str:
    """`when` written with a Go reference-time layout (the common elements of Go's time.Format)."""
    out: list[str] = []
    i = 0
    while i < len(layout):
        for token, directive in _GO_TOKENS:
            if layout.startswith(token, i):
                out.append(_directive(when, directive))
                i += len(token)
                break
        else:
            out.append(layout[i])
            i += 1
    return "".join(out)


def _directive(when: dt.datetime, directive: str) -> str:
    prefix = directive[: directive.index("%")]
    code = directive[directive.index("%") + 1 :]
    if code == "N9":
        return prefix + f"{when.microsecond * 1000:09d}"
    if code == "N3":
        return prefix + f"{when.microsecond // 1000:03d}"
    if code == ":z":
        offset = when.strftime("%z") or "+0000"
        if prefix == "Z" and offset in ("+0000", "-0000"):
            return "Z"
        return offset[:3] + ":" + offset[3:]
    if code.startswith("-"):
        value = {
            "m": when.month,
            "d": when.day,
            "I": when.hour % 12 or 12,
            "M": when.minute,
            "S": when.second,
        }
        return prefix + str(value[code[1:]])
    if code == "e":
        return prefix + f"{when.day:>2}"
    return prefix + when.strftime("%" + code)


def random_value(kind: str, now: dt.datetime | None = None) -> str:
    """A fresh value of `random.<kind>` (ValueError for an unknown kind)."""
    problem = random_problem(kind)
    if problem:
        raise ValueError(problem)
    now = now or dt.datetime.now().astimezone()
    hour, day = dt.timedelta(hours=1), dt.timedelta(days=1)
    letters = string.ascii_letters
    simple = {
        "string": lambda: _chars(string.digits + letters),
        "digital_letters": lambda: _chars(string.digits + letters),
        "upper": lambda: _chars(string.ascii_uppercase),
        "lower": lambda: _chars(string.ascii_lowercase),
        "letters": lambda: _chars(letters),
        "character": lambda: _RNG.choice(letters),
        "integer": lambda: str(_RNG.randrange(10**15)),
        "float": lambda: f"{_RNG.randrange(10**6)}.{_RNG.randrange(1, 10**6)}",
        "boolean": lambda: _RNG.choice(("true", "false")),
        "mobile": lambda: (
            _RNG.choice(("133", "153", "180", "189", "135", "138", "186"))
            + "".join(_RNG.choice(string.digits) for _ in range(8))
        ),
        "uuid": lambda: str(uuid.uuid4()),
        "date": lambda: now.strftime("%Y-%m-%d"),
        "date_day": lambda: (now - day).strftime("%Y-%m-%d"),
        "datetime": lambda: now.strftime("%Y-%m-%d %H:%M:%S"),
        "datetime_hour": lambda: (now - hour).strftime("%Y-%m-%d %H:%M:%S"),
    }
    if kind in simple:
        return simple[kind]()
    if kind.startswith("timestamp"):
        unit = {"ms": 10**3, "ns": 10**9}.get(kind.split("_")[1] if "_" in kind else "", 1)
        shift = {"hour": -hour, "after_hour": hour, "day": -day, "after_day": day}
        rest = kind.removeprefix("timestamp").removeprefix("_ms").removeprefix("_ns").removeprefix("_")
        when = now + shift.get(rest, dt.timedelta(0))
        seconds = int(when.timestamp())
        return str(seconds * unit + (when.microsecond * unit // 10**6 if unit > 1 else 0))
    match = _INTEGER_N.fullmatch(kind)
    if match:
        n = int(match.group(1))
        return str(_RNG.randrange(10 ** (n - 1), 10**n))
    layout = kind[len(CUSTOM_PREFIX) :]
    return go_format(now, GO_LAYOUTS.get(layout, layout))


def go_quote(value: str) -> str:
    """`value` as Go's strconv.Quote writes it: double quotes, backslash escapes (Erda `.escape`)."""
    named = {"\a": "\\a", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t", "\v": "\\v"}
    out = ['"']
    for ch in value:
        if ch in ('"', "\\"):
            out.append("\\" + ch)
        elif ch in named:
            out.append(named[ch])
        elif ch.isprintable():
            out.append(ch)
        elif ord(ch) < 0x80:
            out.append(f"\\x{ord(ch):02x}")
        elif ord(ch) <= 0xFFFF:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(f"\\U{ord(ch):08x}")
    out.append('"')
    return "".join(out)


def apply_suffix(value: str, suffix: str | None) -> str:
    """A reference's value with its suffix applied.

    .escape: Go-quoted, as Erda (strconv.Quote). .wrap_single_quotes: '...' safe for a POSIX
    shell (a quote inside becomes '\\''). .wrap_double_quotes: "..." with \\ " $ ` escaped.
    """
    if suffix == "escape":
        return go_quote(value)
    if suffix == "wrap_single_quotes":
        return "'" + value.replace("'", "'\\''") + "'"
    if suffix == "wrap_double_quotes":
        return '"' + re.sub(r'([\\"$`])', r"\\\1", value) + '"'
    return value
