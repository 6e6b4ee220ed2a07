"""Masking of secret values in log lines: the value itself and the forms a step commonly prints
it in (base64, hex, URL-encoded, JSON-escaped, reversed), and a value split across two lines.

Standard library only: the agent masks each line before it leaves the step, and the console
masks again with the same code (apps/pipelines/secrets.py) when it stores lines.

What cannot be masked (README, Live logs): any other transformation (encryption, compression,
hashing, another encoding, a value printed one character per line or split across more than two
lines, or re-assembled by the reader); forms of values shorter than MIN_FORM_LENGTH (only their
exact text is masked); and the first or last few characters of a value split across two lines
(at most SPLIT_MIN_PART - 1) when the split leaves only those on one line.
"""

from __future__ import annotations

TYPE_CHECKING = False  # not typing's: importing typing costs more than this whole module
if TYPE_CHECKING:
    from collections.abc import Iterable

# re, base64, json and urllib are imported when there is a secret to mask: most steps have none,
# and every step's agent imports this module (their imports cost it milliseconds at start).

MASK = "******"
MIN_FORM_LENGTH = 6  # shorter secrets: only the exact value (their forms would mask ordinary text)
SPLIT_MIN_PART = 4  # a line ending in this much of a secret's start is masked before the next line comes
_B64_MIN_CORE = 8  # characters of base64 that must come from the secret alone to mask them in a blob
def _base64_forms(raw: bytes) -> set[str]:
    import base64

    out: set[str] = set()
    for encode in (base64.b64encode, base64.urlsafe_b64encode):
        full = encode(raw).decode("ascii")
        out |= {full, full.rstrip("=")}
        # Inside a longer blob (`user:secret` in a Basic header) the secret's bytes start at any of
        # three alignments: the characters that come from whole groups of its bytes are the same
        # whatever surrounds it.
        for shift in (0, 1, 2):
            start = (3 - shift) % 3  # first byte of the secret beginning a group
            groups = (len(raw) - start) // 3
            if groups <= 0:
                continue
            core = encode(raw[start:start + 3 * groups]).decode("ascii")
            if len(core) >= _B64_MIN_CORE:
                out.add(core)
    return out


def forms(secret: str) -> set[str]:
    """The texts that reveal `secret`: itself, and for values of MIN_FORM_LENGTH or more its
    reversed, base64 (standard and URL-safe, padded or not, or inside a longer blob), hex (lower
    and upper case), URL-encoded (path or form style, upper or lower case escapes) and
    JSON-escaped forms."""
    if not secret:
        return set()
    out = {secret}
    if len(secret) < MIN_FORM_LENGTH:
        return out
    import json
    import re
    from urllib.parse import quote, quote_plus

    percent = re.compile(r"%[0-9A-F]{2}")
    raw = secret.encode("utf-8")
    out.add(secret[::-1])
    out |= _base64_forms(raw)
    out |= {raw.hex(), raw.hex().upper()}
    for encoded in (quote(secret, safe=""), quote(secret), quote_plus(secret)):
        out |= {encoded, percent.sub(lambda m: m.group(0).lower(), encoded)}
    out.add(json.dumps(secret, ensure_ascii=False)[1:-1])
    out.add(json.dumps(secret)[1:-1])
    return {form for form in out if form}


class Masker:
    """Replaces every form of every secret with ******, longest first (a secret containing another
    is masked whole). `line()` also masks a secret split across two consecutive lines of a stream."""

    def __init__(self, secrets: Iterable[str]):
        self.secrets = sorted({s for s in secrets if s}, key=len, reverse=True)
        all_forms = sorted({f for s in self.secrets for f in forms(s)}, key=len, reverse=True)
        self._pattern = None
        if all_forms:
            import re

            self._pattern = re.compile("|".join(map(re.escape, all_forms)))
        self._splittable = [s for s in self.secrets if len(s) >= 2]
        self._pending: dict[str, list[tuple[str, int]]] = {}  # stream -> (secret, length of its start seen)

    def __call__(self, text: str) -> str:
        if self._pattern is None:
            return text
        return self._pattern.sub(MASK, text)

    def line(self, text: str, stream: str = "") -> str:
        """Mask one line of `stream`; lines of one stream must come in order."""
        if self._pattern is None:
            return text
        pending = self._pending.pop(stream, [])
        head = ""
        body = text
        for secret, seen in pending:  # the previous line ended with secret[:seen]
            stripped = body.lstrip()
            rest = secret[seen:]
            if rest and stripped.startswith(rest):
                head = MASK
                body = stripped[len(rest):]
                break
        ends: list[tuple[str, int]] = []
        cut = 0
        trimmed = body.rstrip()
        for secret in self._splittable:
            for seen in range(min(len(secret) - 1, len(trimmed)), 0, -1):
                if trimmed.endswith(secret[:seen]):
                    ends.append((secret, seen))
                    if seen >= SPLIT_MIN_PART:
                        cut = max(cut, seen)
                    break
        if ends:
            self._pending[stream] = ends
        if cut:
            tail_space = body[len(trimmed):]
            return head + self(trimmed[:-cut]) + MASK + tail_space
        return head + self(body)
