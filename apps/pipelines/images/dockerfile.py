"""A Dockerfile read into instructions, with the subset this builder writes without running
anything: FROM (one stage), COPY, ADD (local files), ENV, ARG, LABEL, WORKDIR, EXPOSE, USER, CMD,
ENTRYPOINT. RUN, and anything else that needs a container to execute, is refused naming its line."""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass

SUPPORTED = {"FROM", "COPY", "ADD", "ENV", "ARG", "LABEL", "WORKDIR", "EXPOSE", "USER", "CMD", "ENTRYPOINT"}
IGNORED = {"MAINTAINER", "STOPSIGNAL", "HEALTHCHECK", "SHELL", "VOLUME", "ONBUILD"}
MAX_BYTES = 256 * 1024


class DockerfileError(ValueError):
    """The Dockerfile cannot be built here; the message names the line."""


@dataclass(frozen=True)
class Instruction:
    line: int
    op: str
    args: str


def parse(text: str) -> list[Instruction]:
    if len(text.encode()) > MAX_BYTES:
        raise DockerfileError(f"the Dockerfile is larger than {MAX_BYTES} bytes")
    out: list[Instruction] = []
    pending, start = "", 0
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if not pending:
            start = number
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        whole = (pending + line).strip()
        pending = ""
        if not whole:
            continue
        op, _, args = whole.partition(" ")
        op = op.upper()
        if op == "RUN":
            raise DockerfileError(f"line {start}: RUN needs a container to run the command in; this builder "
                                  "writes layers without one (FROM, COPY, ADD, ENV, WORKDIR, EXPOSE, CMD, "
                                  "ENTRYPOINT...): do the work in an earlier pipeline step and COPY its result")
        if op not in SUPPORTED | IGNORED:
            raise DockerfileError(f"line {start}: unknown instruction {op}")
        out.append(Instruction(start, op, args.strip()))
    froms = [i for i in out if i.op == "FROM"]
    if len(froms) != 1 or out[0].op not in ("FROM", "ARG") or not froms:
        raise DockerfileError("a Dockerfile here has exactly one FROM (one stage), first")
    return out


def words(args: str, line: int) -> list[str]:
    """The JSON array form, or shell words."""
    if args.startswith("["):
        try:
            value = json.loads(args)
        except ValueError:
            raise DockerfileError(f"line {line}: not a JSON array: {args}") from None
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise DockerfileError(f"line {line}: a JSON array of strings")
        return value
    try:
        return shlex.split(args)
    except ValueError as exc:
        raise DockerfileError(f"line {line}: {exc}") from None


def command(args: str, line: int) -> list[str]:
    """CMD/ENTRYPOINT: the exec form as it is, the shell form under /bin/sh -c."""
    if args.startswith("["):
        return words(args, line)
    return ["/bin/sh", "-c", args]


def pairs(args: str, line: int) -> dict[str, str]:
    """ENV/LABEL: `k=v k2="v 2"`, or the legacy `ENV k v...`."""
    parts = words(args, line)
    if parts and "=" not in parts[0]:
        if len(parts) < 2:
            raise DockerfileError(f"line {line}: ENV NAME VALUE, or NAME=VALUE")
        return {parts[0]: " ".join(parts[1:])}
    out = {}
    for part in parts:
        key, sep, value = part.partition("=")
        if not sep or not key:
            raise DockerfileError(f"line {line}: {part!r} is not NAME=VALUE")
        out[key] = value
    return out


_VAR = re.compile(r"\$\{(\w+)(?::-([^}]*))?\}|\$(\w+)")


def expand(text: str, env: dict[str, str]) -> str:
    return _VAR.sub(lambda m: env.get(m.group(1) or m.group(3), m.group(2) or ""), text)
