"""Entry point of the `dice` command: builds the argument parser from the command modules."""

from __future__ import annotations

import argparse
import sys

from dice_cli import (
    alert_commands,
    api_commands,
    cluster_commands,
    console_commands,
    deploy_commands,
    env_commands,
    log_commands,
    notify_commands,
    pipeline_commands,
    release_commands,
    repo_commands,
    spec_commands,
    user_commands,
)
from dice_cli.errors import CliError

# Each module contributes its sub-commands through register(subparsers).
COMMAND_MODULES = (
    spec_commands, pipeline_commands, api_commands, release_commands, cluster_commands, deploy_commands,
    log_commands, user_commands, repo_commands, console_commands, notify_commands, alert_commands, env_commands,
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dice", description="Dice Console command line")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    subparsers.required = True
    for module in COMMAND_MODULES:
        module.register(subparsers)
    console_commands.extend({name: _actions_of(parser) for name, parser in subparsers.choices.items()})
    return parser


def _actions_of(parser: argparse.ArgumentParser):
    """The sub-command action of a command group (`dice pipeline ...`), to add commands to it."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return action
    return None


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except CliError as exc:
        print(f"dice: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
