"""Branch and tag patterns as the git providers read them (GitHub's filter patterns, Gitea's branch
filter, GitLab's wildcards), for `on.push.branches`, `on.push.tags`, `on.merge.branches` and branch rules.

- `*` matches any run of characters except `/`: `feature/*` matches `feature/a`, not `feature/a/b`
- `**` matches any run of characters, `/` included: `feature/**` matches `feature/a/b`
- `?` matches one character except `/`
- `[abc]`, `[a-z]` one character of the set; `[!a-z]` (or `[^a-z]`) one character not in it
- `{a,b}` either alternative (`release/{v1,v2}`)
- a leading `!` in a list of patterns excludes what an earlier pattern included (the last
  pattern that matches decides, as in GitHub's `branches` lists)
- anything else matches itself; `\\` escapes the next character
"""

from __future__ import annotations

import functools
import re


class GlobError(ValueError):
    """The pattern cannot be read (an unclosed `[` or `{`)."""


@functools.lru_cache(maxsize=1024)
def compile_glob(pattern: str) -> re.Pattern[str]:
    return re.compile(_translate(pattern) + r"\Z", re.DOTALL)


def _translate(pattern: str, *, in_braces: bool = False) -> str:
    out, i, n = [], 0, len(pattern)
    while i < n:
        c = pattern[i]
        if c == "*":
            if pattern.startswith("**", i):
                i += 2
                # `**/` also matches nothing at all, so `a/**/b` matches `a/b`
                if pattern.startswith("/", i):
                    out.append("(?:.*/)?")
                    i += 1
                else:
                    out.append(".*")
                continue
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "[":
            end = _class_end(pattern, i)
            body = pattern[i + 1:end]
            negate = body[:1] in ("!", "^")
            if negate:
                body = body[1:]
            body = body.replace("\\", "\\\\").replace("]", "\\]") if body else body
            out.append(f"[^/{body}]" if negate else f"[{body}]")
            i = end
        elif c == "{":
            end = _brace_end(pattern, i)
            alternatives = _split_alternatives(pattern[i + 1:end])
            out.append("(?:" + "|".join(_translate(a, in_braces=True) for a in alternatives) + ")")
            i = end
        elif c == "\\" and i + 1 < n:
            i += 1
            out.append(re.escape(pattern[i]))
        else:
            out.append(re.escape(c))
        i += 1
    return "".join(out)


def _class_end(pattern: str, start: int) -> int:
    j = start + 1
    if j < len(pattern) and pattern[j] in "!^":
        j += 1
    if j < len(pattern) and pattern[j] == "]":
        j += 1
    while j < len(pattern) and pattern[j] != "]":
        j += 1
    if j >= len(pattern):
        raise GlobError(f"{pattern!r}: `[` at position {start + 1} is not closed")
    return j


def _brace_end(pattern: str, start: int) -> int:
    depth = 0
    for j in range(start, len(pattern)):
        if pattern[j] == "\\":
            continue
        if pattern[j] == "{":
            depth += 1
        elif pattern[j] == "}":
            depth -= 1
            if depth == 0:
                return j
    raise GlobError(f"{pattern!r}: `{{` at position {start + 1} is not closed")


def _split_alternatives(body: str) -> list[str]:
    parts, depth, current = [], 0, []
    for ch in body:
        if ch == "," and depth == 0:
            parts.append("".join(current))
            current = []
            continue
        depth += ch == "{"
        depth -= ch == "}"
        current.append(ch)
    parts.append("".join(current))
    return parts


def check_glob(pattern: str) -> str | None:
    """None when the pattern is readable; otherwise what is wrong with it."""
    try:
        compile_glob(pattern.removeprefix("!"))
    except (GlobError, re.error) as exc:
        return str(exc)
    return None


def glob_match(pattern: str, name: str) -> bool:
    """Does `name` (a branch or tag) match one pattern (no `!` handling)?"""
    return compile_glob(pattern).match(name) is not None


def matches_any(patterns, name: str) -> bool:
    """Does `name` match the list: the last pattern that matches decides (`!p` excludes)."""
    decided = False
    for pattern in patterns:
        if pattern.startswith("!"):
            if glob_match(pattern[1:], name):
                decided = False
        elif glob_match(pattern, name):
            decided = True
    return decided
