"""`dice spec ...`: offline dice.yml commands: validate, and render to Kubernetes manifests."""

from __future__ import annotations

import argparse
import sys

from dice_cli.errors import CliError
from diceyml import check_dice_yml, normalize_workspace
from speckit.report import FORMATS, render_errors

MAX_READ = 1024 * 1024 + 1  # one byte over the parser's limit, so it reports the size itself


def workspace_arg(value: str) -> str:
    """argparse type for --workspace: DEV/TEST/STAGING/PROD or development/... in any case."""
    try:
        return normalize_workspace(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc))


def read_spec_file(path: str) -> bytes:
    """The bytes of FILE ('-' is stdin); a CliError (exit 1) when it cannot be read."""
    try:
        if path == "-":
            return sys.stdin.buffer.read(MAX_READ)
        with open(path, "rb") as handle:
            return handle.read(MAX_READ)
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise CliError(f"cannot read {path}: {reason}", exit_code=1)


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

    from dice_cli import render_command

    render_command.register(commands)
