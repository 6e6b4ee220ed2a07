"""`dice spec ...`: offline dice.yml commands: validate, and render to Kubernetes manifests."""

from __future__ import annotations

import argparse

from dice_cli import render_command
from dice_cli.inputs import read_spec_file, workspace_arg
from diceyml import check_dice_yml
from speckit.report import FORMATS, render_errors


def cmd_validate(args: argparse.Namespace) -> int:
    text = read_spec_file(args.file)
    errors, warnings = check_dice_yml(text, source=args.file, workspace=args.workspace)
    print(render_errors(errors, filename=args.file, fmt=args.format, warnings=warnings))
    return 1 if errors else 0


def register(subparsers) -> None:
    """Add the `spec` command group."""
    spec = subparsers.add_parser("spec", help="offline dice.yml tools", description="Offline dice.yml tools")
    commands = spec.add_subparsers(dest="spec_command", metavar="COMMAND")
    commands.required = True

    validate = commands.add_parser(
        "validate",
        help="check a dice.yml (exit 0 valid, 1 invalid, 2 usage)",
        description="Check a dice.yml against the format; every error with its path and line.",
    )
    validate.add_argument("file", metavar="FILE", help="the dice.yml to check ('-' reads stdin)")
    validate.add_argument(
        "--workspace",
        type=workspace_arg,
        default=None,
        metavar="W",
        help="merge environments.<W> and fill values.<W> first: DEV, TEST, STAGING, PROD (any case)",
    )
    validate.add_argument("--format", choices=FORMATS, default="text", help="text (default) or json")
    validate.set_defaults(func=cmd_validate)

    render_command.register(commands)
