"""The step agent: runs one pipeline step and reports what happened (standard library only).

    python -m agent run --spec step.json       # local: the job's command
    python -m agent restore --spec step.json   # Kubernetes: init container
    python -m agent sidecar --spec step.json   # Kubernetes: native sidecar

What it does, in order:
1. restores the context: creates the step's working directory and checks that the directories
   of earlier steps (`dirs`) exist, and extracts each cache tarball that exists into its path;
2. runs the action: `git-checkout` (the git CLI) or the action's `commands`, as one script with
   `set -e` under `shell` (default /bin/sh), in the working directory, with `envs` plus
   METAFILE, WORKDIR and the PIPELINE_* variables;
3. streams every line it and its commands print to stdout, one JSON object per line:
       {"n": 1, "ts": 1764230400.123, "stream": "stdout", "text": "hello"}
   `n` counts from 1 per step, `ts` is unix time, `stream` is stdout, stderr or system (lines
   of the agent itself); every value listed in `mask` is replaced by ****** before printing;
4. collects outputs: `key=value` lines written to $METAFILE, and `action meta: key=value` lines
   on stdout (the later wins);
5. on success, stores each cache (a tar.gz of its path, written atomically);
6. writes the result file (atomically: a temporary file renamed into place):
       {"exit_code": 0, "outputs": {...}, "started": ts, "finished": ts, "timed_out": false,
        "caches": [{"key": ..., "archive": ..., "size": ...}], "error": ""}
7. tells the console it is done, if `notify` names an address (`udp://host:port`: one datagram
   {"task_run": id, "job": name}; `http(s)://...`: a POST of the result). The message is only a
   hint to look now: the console always reads the result itself, so a lost one costs only delay.

On the local cluster the agent is the job's command: this one, or the compiled step runner
(agent/gorunner, built into agent/bin/dice-step by `make install` where Go is installed), a port
of `run` with the same observable behaviour that reads two more fields the console renders in
Python: `script` (checkout.step_script) and `mask_forms` (masking.forms of each secret); it
execs this agent for a step with caches. A spec that is not one (check_spec) gets a result
file saying so (`bad step spec PATH: ...`), from either. On Kubernetes (agent/pod.py) the same
agent runs beside the step, so step images need only /bin/sh: an init container running
`agent restore` fills the shared context volume (earlier steps' directories and caches), the
step container runs the commands with stdout captured to the shared volume, and a native sidecar
(an init container with restartPolicy: Always) streams the lines, collects outputs, stores
caches and POSTs the result to the console when the step container ends.

The step spec (JSON) fields: task_run, job, alias, type, workdir, dirs, commands, shell, params,
envs, caches [{key, path, archive}], metafile, result, timeout (seconds or null), mask, notify.
"""

from __future__ import annotations

import os

__all__ = ["ROOT", "compile_bytecode", "main", "sources"]


ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # the directory holding the package


def sources() -> dict[str, str]:
    """The package's own modules (file name -> text): what a pod mounts to run the agent."""
    here = os.path.join(ROOT, "agent")
    out = {}
    for name in sorted(os.listdir(here)):
        if name.endswith(".py"):
            with open(os.path.join(here, name), encoding="utf-8") as fh:
                out[name] = fh.read()
    return out


def compile_bytecode() -> list[str]:
    """Write the bytecode of the package's modules beside them (agent/__pycache__), as the console
    (which may write there) before steps start; the names it could not write. A step's sandbox
    mounts the package read-only, so an agent that finds no bytecode compiles runner, checkout,
    masking and jsonlite from source at every start: 12 ms of CPU per step on this machine (21
    instead of 9 for its imports), and under load 60-90 ms of its start (bench/bench_step_start.py).
    Timestamp-checked bytecode, as the interpreter writes it: an edited source is compiled again
    in memory by the next agent, never run stale. PYTHONDONTWRITEBYTECODE does not stop this."""
    import py_compile

    here = os.path.join(ROOT, "agent")
    failed = []
    for name in sorted(os.listdir(here)):
        if not name.endswith(".py"):
            continue
        source = os.path.join(here, name)
        try:
            target = py_compile.compile(source, doraise=True) if _stale(source) else None
        except (OSError, py_compile.PyCompileError):  # a read-only installation: the agent compiles
            failed.append(name)
            continue
        if target:  # read by the tenants' uids, inside their sandboxes, whatever the umask
            os.chmod(os.path.dirname(target), 0o755)
            os.chmod(target, 0o644)
    return failed


def _stale(source: str) -> bool:
    """Whether the module's bytecode is missing or older than its source."""
    import importlib.util

    try:
        return os.stat(importlib.util.cache_from_source(source)).st_mtime < os.stat(source).st_mtime
    except OSError:
        return True


COMMANDS = {
    "run": "run one step from its spec file",
    "restore": "on Kubernetes, as an init container: restore the step's context",
    "sidecar": "on Kubernetes, as a native sidecar: follow, collect, store and report",
}
USAGE = "usage: python -m agent {run,restore,sidecar} --spec SPEC"


def parse_args(argv: list[str]) -> tuple[str, str]:
    """(command, spec path) from `COMMAND --spec PATH` (or `--spec=PATH`). Parsed by hand: every
    step starts an agent, and argparse's imports cost each start milliseconds."""
    import sys

    if not argv or argv[0] in ("-h", "--help"):
        lines = [USAGE, "", *(f"  {name:8} {text}" for name, text in COMMANDS.items())]
        print("\n".join(lines), file=sys.stdout if argv else sys.stderr)
        raise SystemExit(0 if argv else 2)
    command, rest = argv[0], argv[1:]
    if command not in COMMANDS:
        print(f"{USAGE}\npython -m agent: error: unknown command {command!r} (choose from run, restore, sidecar)",
              file=sys.stderr)
        raise SystemExit(2)
    spec = None
    while rest:
        item = rest.pop(0)
        if item == "--spec" and rest:
            spec = rest.pop(0)
        elif item.startswith("--spec="):
            spec = item[len("--spec="):]
        else:
            print(f"{USAGE}\npython -m agent {command}: error: unrecognized argument {item!r}", file=sys.stderr)
            raise SystemExit(2)
    if not spec:
        print(f"{USAGE}\npython -m agent {command}: error: the argument --spec is required", file=sys.stderr)
        raise SystemExit(2)
    return command, spec


def main(argv: list[str] | None = None) -> int:
    import sys

    from agent.jsonlite import loads  # json's own imports (re, enum) cost every step's start

    command, spec_path = parse_args(sys.argv[1:] if argv is None else list(argv))
    if command == "run":
        return _run(spec_path)
    with open(spec_path, encoding="utf-8") as fh:
        spec = loads(fh.read())
    if command == "restore":
        from agent.pod import restore_context

        return restore_context(spec)
    from agent.pod import sidecar

    sidecar(spec)
    return 0


def _run(spec_path: str) -> int:
    """`run`: a spec that cannot be read or is not one gets a result file saying so (bad_spec)."""
    from agent.jsonlite import loads
    from agent.runner import bad_spec, check_spec, run

    try:
        with open(spec_path, "rb") as fh:
            data = fh.read()
    except OSError as exc:
        return bad_spec(spec_path, "", f"cannot read it: {exc}")
    try:
        spec = loads(data.decode("utf-8", errors="replace"))
    except ValueError as exc:  # jsonlite's own, or the C scanner's JSONDecodeError
        text = str(exc)
        return bad_spec(spec_path, "", text if text.startswith("not JSON") else f"not JSON: {text}")
    problem = check_spec(spec)
    if problem:
        result = spec.get("result") if isinstance(spec, dict) else None
        return bad_spec(spec_path, result if isinstance(result, str) else "", problem)
    result = run(spec)
    return 0 if result["exit_code"] == 0 else 1
