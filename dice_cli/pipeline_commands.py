"""`dice pipeline validate|plan FILE`: offline checks of a pipeline.yml, no server needed;
`dice pipeline run ORG/PROJECT/APP FILE`: start a run on the console (and follow it with --wait)."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from dice_cli.errors import CliError
from pipelineyml import PlannedTask, parse_pipeline_yml, plan
from speckit import SpecInvalid, render_errors, sort_errors

FORMATS = ("text", "json")


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `pipeline` command group: `validate` and `plan`."""
    group = subparsers.add_parser("pipeline", help="check, plan and run a pipeline.yml; save, list, show, delete definitions")
    commands = group.add_subparsers(dest="pipeline_command", metavar="SUBCOMMAND")
    commands.required = True

    validate = commands.add_parser("validate", help="report every problem of a pipeline.yml")
    validate.add_argument("file", metavar="FILE", help="path of the pipeline.yml")
    validate.add_argument("--format", choices=FORMATS, default="text", help="output format (default: text)")
    validate.set_defaults(func=run_validate)

    plan_cmd = commands.add_parser("plan", help="print the tasks a run would execute, with their needs")
    plan_cmd.add_argument("file", metavar="FILE", help="path of the pipeline.yml")
    plan_cmd.add_argument("--format", choices=FORMATS, default="text", help="output format (default: text)")
    plan_cmd.set_defaults(func=run_plan)

    run_cmd = commands.add_parser("run", help="run a pipeline.yml on the console (needs `dice login`)")
    run_cmd.add_argument("app", metavar="ORG/PROJECT/APP", help="the application the run belongs to")
    run_cmd.add_argument("file", metavar="FILE", help="path of the pipeline.yml")
    run_cmd.add_argument("--workspace", default="DEV", help="DEV, TEST, STAGING or PROD (default: DEV)")
    run_cmd.add_argument("--param", action="append", default=[], metavar="KEY=VALUE", help="a run param (repeatable)")
    run_cmd.add_argument("--wait", action="store_true", help="wait for the run to finish; exit 1 unless it succeeds")
    run_cmd.add_argument("--timeout", type=float, default=3600, help="seconds --wait waits at most (default: 3600)")
    run_cmd.add_argument("--format", choices=FORMATS, default="text", help="output format (default: text)")
    run_cmd.set_defaults(func=run_run)


def _read(file: str) -> bytes:
    try:
        return Path(file).read_bytes()
    except FileNotFoundError:
        raise CliError(f"cannot read {file}: no such file")
    except IsADirectoryError:
        raise CliError(f"cannot read {file}: it is a directory")
    except OSError as exc:
        raise CliError(f"cannot read {file}: {exc.strerror or exc}")


def run_validate(args: argparse.Namespace) -> int:
    """Print `FILE: valid` or one line per problem (or the JSON report); exit 1 when invalid."""
    text = _read(args.file)
    try:
        parse_pipeline_yml(text, source=args.file)
    except SpecInvalid as exc:
        print(render_errors(sort_errors(exc.errors), filename=args.file, fmt=args.format, warnings=[]))
        return 1
    print(render_errors([], filename=args.file, fmt=args.format, warnings=[]))
    return 0


def render_plan(tasks: list[PlannedTask], *, fmt: str) -> str:
    """JSON `{"tasks": [...]}` in run order, or a table grouped by stage."""
    if fmt == "json":
        return json.dumps({"tasks": [task.to_dict() for task in tasks]}, ensure_ascii=False)
    if not tasks:
        return "no tasks: the pipeline has no stages"
    position = {task.alias: i for i, task in enumerate(tasks)}
    rows = sorted(tasks, key=lambda t: (t.stage, t.action.index if t.action else 0, position[t.alias]))
    header = ("STAGE", "ALIAS", "TYPE", "NEEDS")
    table = [header] + [
        (str(t.stage), t.alias, t.type, (", ".join(t.needs) or "-") + ("  (disabled: skipped)" if t.disabled else ""))
        for t in rows
    ]
    widths = [max(len(row[i]) for row in table) for i in range(3)]
    lines = []
    previous_stage = None
    for n, row in enumerate(table):
        if n > 1 and row[0] != previous_stage:
            lines.append("")
        previous_stage = row[0]
        lines.append("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row[:3])) + "  " + row[3])
    stages = len({t.stage for t in tasks})
    lines.append("")
    lines.append(
        f"{len(tasks)} task{'s' if len(tasks) != 1 else ''} in {stages} stage{'s' if stages != 1 else ''}"
    )
    return "\n".join(lines)


def run_plan(args: argparse.Namespace) -> int:
    """Print the planned tasks; an invalid file prints its problems (exit 1) instead."""
    text = _read(args.file)
    try:
        pipeline = parse_pipeline_yml(text, source=args.file)
    except SpecInvalid as exc:
        report = render_errors(sort_errors(exc.errors), filename=args.file, fmt=args.format)
        # JSON stays on stdout so a script always gets a document; text problems go to stderr.
        print(report, file=sys.stdout if args.format == "json" else sys.stderr)
        return 1
    print(render_plan(plan(pipeline), fmt=args.format))
    return 0


FINISHED = ("success", "failed", "cancelled", "timed-out")


def parse_params(values: list[str]) -> dict[str, str]:
    params: dict[str, str] = {}
    for value in values:
        key, sep, rest = value.partition("=")
        if not sep or not key.strip():
            raise CliError(f"--param must be KEY=VALUE, got {value!r}", 2)
        params[key.strip()] = rest
    return params


def run_summary(run: dict) -> dict:
    """The JSON shape of `dice pipeline run --format json`."""
    return {
        "id": run["id"], "status": run["status"], "reason": run.get("reason", ""),
        "tasks": [{"alias": t["alias"], "status": t["status"], "outputs": t.get("outputs") or {}}
                  for t in run.get("tasks") or []],
    }


def run_run(args: argparse.Namespace) -> int:
    """Start a run from FILE; with --wait, poll until it finishes (exit 1 unless it succeeded)."""
    from dice_cli.api_commands import find_application
    from dice_cli.client import Client

    params = parse_params(args.param)
    raw = _read(args.file)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise CliError(f"{args.file}: not UTF-8 text")
    client = Client.from_login()
    app = find_application(client, args.app)
    run = client.post("pipeline-runs/", {
        "application": app["id"], "source": text, "workspace": args.workspace, "params": params,
        "name": Path(args.file).stem,
    })
    if args.format == "text":
        print(f"Started run {run['id']} of {app.get('slug', args.app)} in {run['workspace']} ({run['status']})")
    if args.wait:
        deadline = time.monotonic() + args.timeout
        delay = 0.2
        while run["status"] not in FINISHED:
            if time.monotonic() > deadline:
                raise CliError(f"run {run['id']} did not finish within {args.timeout:g}s (still {run['status']})")
            time.sleep(delay)
            delay = min(delay * 1.5, 2.0)
            run = client.get(f"pipeline-runs/{run['id']}/")
    summary = run_summary(run)
    if args.format == "json":
        print(json.dumps(summary, ensure_ascii=False))
    else:
        for task in summary["tasks"]:
            outputs = " ".join(f"{k}={v}" for k, v in task["outputs"].items())
            print(f"  {task['alias']:<24} {task['status']:<10} {outputs}".rstrip())
        if args.wait:
            print(f"Run {run['id']}: {run['status']}" + (f" ({run['reason']})" if run.get("reason") else ""))
    if args.wait and run["status"] != "success":
        return 1
    return 0
