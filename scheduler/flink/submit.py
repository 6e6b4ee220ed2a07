"""What a Flink job is, read from JobSpec.command: the arguments of `flink run`.

A job on a Flink cluster is given the way a user types it, so a pipeline step, a dice.yml job
and the CLI all say the same thing:

    flink run [-c CLASS] [-p N] [-s SAVEPOINT [-n]] [-D key=value]... JAR [ARGS...]
    flink run [-p N] [-s SAVEPOINT [-n]] [-D key=value]... -py FILE [ARGS...]

(the leading `flink run` is optional). Anything else is refused with the option named.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field

from scheduler.base import ExecutorError

_VALUE_OPTIONS = {
    "-c": "entry_class", "--class": "entry_class",
    "-p": "parallelism", "--parallelism": "parallelism",
    "-s": "savepoint", "--fromSavepoint": "savepoint",
    "-py": "python", "--python": "python",
}
_FLAGS = {"-n": "allow_non_restored", "--allowNonRestoredState": "allow_non_restored",
          "-d": "", "--detached": ""}
MAX_PARALLELISM = 1024


@dataclass(frozen=True)
class Submission:
    """One job to submit: a jar (entry class, arguments) or a PyFlink program."""

    jar: str = ""
    python: str = ""
    entry_class: str = ""
    args: tuple[str, ...] = ()
    parallelism: int | None = None
    savepoint: str = ""
    allow_non_restored: bool = False
    conf: dict[str, str] = field(default_factory=dict)

    @property
    def kind(self) -> str:
        return "python" if self.python else "jar"


def parse_command(command: list[str], where: str = "command") -> Submission:
    """A Submission from `flink run` arguments; ExecutorError naming the bad one otherwise."""
    argv = list(command)
    if argv[:2] == ["flink", "run"]:
        argv = argv[2:]
    elif argv[:1] == ["run"]:
        argv = argv[1:]
    values: dict = {"conf": {}}
    rest: list[str] = []
    i = 0
    while i < len(argv):
        arg = argv[i]
        if rest or not arg.startswith("-"):
            rest.append(arg)
        elif arg in _VALUE_OPTIONS:
            if i + 1 >= len(argv):
                raise ExecutorError(f"{where}: {arg} needs a value")
            values[_VALUE_OPTIONS[arg]] = argv[i + 1]
            i += 1
            if _VALUE_OPTIONS[arg] == "python":  # the program's own arguments follow it
                rest.extend(argv[i + 1:])
                break
        elif arg in _FLAGS:
            if _FLAGS[arg]:
                values[_FLAGS[arg]] = True
        elif arg == "-D" or arg.startswith("-D"):
            pair = arg[2:] if arg != "-D" else (argv[i + 1] if i + 1 < len(argv) else "")
            if arg == "-D":
                i += 1
            key, sep, value = pair.partition("=")
            if not sep or not key:
                raise ExecutorError(f"{where}: -D takes key=value, not {pair!r}")
            values["conf"][key] = value
        else:
            raise ExecutorError(f"{where}: unknown option {arg!r} (flink run options: -c, -p, -s, -n, -D, -py)")
        i += 1
    parallelism = values.get("parallelism")
    if parallelism is not None:
        if not str(parallelism).isdigit() or not 1 <= int(parallelism) <= MAX_PARALLELISM:
            raise ExecutorError(f"{where}: parallelism must be 1-{MAX_PARALLELISM}, not {parallelism!r}")
        parallelism = int(parallelism)
    python = values.get("python", "")
    if python:
        args, jar = tuple(rest), ""
        if values.get("entry_class"):
            raise ExecutorError(f"{where}: -c names a jar's class; a Python job (-py) has none")
    else:
        if not rest:
            raise ExecutorError(f"{where}: names no jar file (flink run [options] JAR [ARGS]) and no -py program")
        jar, args = rest[0], tuple(rest[1:])
        if not jar.endswith(".jar"):
            raise ExecutorError(f"{where}: {jar!r} is not a .jar file (a Python program is given with -py)")
    for key in values["conf"]:
        if key.startswith("$internal"):
            raise ExecutorError(f"{where}: -D {key} is the cluster's own setting")
    return Submission(jar=jar, python=python, entry_class=values.get("entry_class", ""), args=args,
                      parallelism=parallelism, savepoint=values.get("savepoint", ""),
                      allow_non_restored=bool(values.get("allow_non_restored")), conf=values["conf"])


def flink_job_id(cluster: str, namespace: str, name: str) -> str:
    """The Flink job id of a job name: deterministic, so submitting twice finds the first one."""
    return hashlib.md5(f"{cluster}/{namespace}/{name}".encode()).hexdigest()


def confined(path: str, workdir: str | None, allowed: list[str], where: str) -> str:
    """`path` (relative to workdir) as a real path inside workdir or one of `allowed`: a job's
    jar or program is the tenant's own file, never one of the console's."""
    if not path:
        raise ExecutorError(f"{where}: no file given")
    base = workdir or ""
    full = os.path.realpath(os.path.join(base, path)) if base or os.path.isabs(path) else ""
    if not full:
        raise ExecutorError(f"{where}: {path!r} is relative and the job has no working directory")
    roots = [os.path.realpath(p) for p in [*([workdir] if workdir else []), *allowed]]
    if not any(full == root or full.startswith(root.rstrip("/") + "/") for root in roots):
        raise ExecutorError(f"{where}: {path!r} is outside the job's working directory and mounts")
    if not os.path.isfile(full):
        raise ExecutorError(f"{where}: {path!r} does not exist")
    return full
