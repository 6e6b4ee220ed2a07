"""Where the heavy engines (Spark, Flink) are installed: one virtual environment each, made by
`make engines` (tools/engines/install.sh) under DICE_ENGINES_DIR (default: .engines/ in the
project), never the console's own."""

from __future__ import annotations

import os
from pathlib import Path

DEFAULT_DIR = Path(__file__).resolve().parent.parent / ".engines"


def engines_dir() -> Path:
    return Path(os.environ.get("DICE_ENGINES_DIR") or DEFAULT_DIR)


def engine_venv(name: str) -> Path | None:
    """The engine's virtual environment when `make engines` installed it, else None."""
    venv = engines_dir() / name
    return venv if (venv / ".installed").is_file() and (venv / "bin" / "python").exists() else None


def missing_hint(name: str) -> str:
    """What to tell a user (or a skipped test) when the engine is not installed."""
    return (f"{name} is not installed: run `make engines` (needs Java 17; installs into "
            f"{engines_dir() / name}, not the console's environment)")
