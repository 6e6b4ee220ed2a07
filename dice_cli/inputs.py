"""What the CLI is given: spec files (a dice.yml, a pipeline.yml; '-' is stdin) and argument values."""

from __future__ import annotations

import argparse
import sys

from dice_cli.errors import CliError
from diceyml import normalize_workspace

MAX_READ = 1024 * 1024 + 1  # one byte over the parser's limit, so it reports the size itself


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


def workspace_arg(value: str) -> str:
    """argparse type for --workspace: DEV/TEST/STAGING/PROD or development/... in any case."""
    try:
        return normalize_workspace(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc))
