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

On the local cluster the agent is the job's command. On Kubernetes (agent/pod.py) the same
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

__all__ = ["ROOT", "main", "sources"]


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


def main(argv: list[str] | None = None) -> int:
    import argparse  # here, not at the top: every step starts an agent, and most imports cost
    import json

    parser = argparse.ArgumentParser(prog="python -m agent")
    commands = parser.add_subparsers(dest="command", required=True)
    for name, text in (
        ("run", "run one step from its spec file"),
        ("restore", "on Kubernetes, as an init container: restore the step's context"),
        ("sidecar", "on Kubernetes, as a native sidecar: follow, collect, store and report"),
    ):
        commands.add_parser(name, help=text).add_argument("--spec", required=True, help="the step spec (JSON)")
    args = parser.parse_args(argv)
    with open(args.spec, encoding="utf-8") as fh:
        spec = json.load(fh)
    if args.command == "restore":
        from agent.pod import restore_context

        return restore_context(spec)
    if args.command == "sidecar":
        from agent.pod import sidecar

        sidecar(spec)
        return 0
    from agent.runner import run

    result = run(spec)
    return 0 if result["exit_code"] == 0 else 1
