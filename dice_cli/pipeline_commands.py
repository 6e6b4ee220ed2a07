"""`dice pipeline validate|plan FILE`: offline checks of a pipeline.yml, no server needed."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from apps.pipelines.spec import PlannedTask, parse_pipeline_yml, plan
from dice_cli.errors import CliError
from speckit import SpecInvalid, render_errors, sort_errors

FORMATS = ("text", "json")


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `pipeline` command group: `validate` and `plan`."""
    group = subparsers.add_parser("pipeline", help="check and plan a pipeline.yml offline")
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
        print(render_errors(sort_errors(exc.errors), filename=args.file, fmt=args.format))
        return 1
    print(render_errors([], filename=args.file, fmt=args.format))
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
    table = [header] + [(str(t.stage), t.alias, t.type, ", ".join(t.needs) or "-") for t in rows]
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
