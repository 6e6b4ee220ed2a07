"""Where the Spark engine is: its virtual environment (`make engines`, .engines/spark), SPARK_HOME
in it, and the environment spark-submit and spark-class need."""

from __future__ import annotations

from pathlib import Path

from scheduler import engines
from scheduler.base import ExecutorUnavailable


def spark_home(venv: Path) -> Path:
    found = sorted(venv.glob("lib/python3*/site-packages/pyspark"))
    if not found:
        raise ExecutorUnavailable(f"no pyspark in {venv}: {engines.missing_hint('spark')}")
    return found[0]


def engine() -> tuple[Path, Path]:
    """(the Spark engine's virtual environment, SPARK_HOME in it), or ExecutorUnavailable."""
    venv = engines.engine_venv("spark")
    if venv is None:
        raise ExecutorUnavailable(engines.missing_hint("spark"))
    return venv, spark_home(venv)


def engine_env(venv: Path, home: Path) -> dict[str, str]:
    return {"SPARK_HOME": str(home), "PYSPARK_PYTHON": str(venv / "bin" / "python"),
            "PYSPARK_DRIVER_PYTHON": str(venv / "bin" / "python"), "SPARK_CONF_DIR": str(home / "conf"),
            "PATH": f"{venv / 'bin'}:/usr/local/bin:/usr/bin:/bin"}


def engine_mounts(venv: Path) -> dict[str, str]:
    """What a sandbox must show (read-only) for the engine to run: its virtual environment and the
    interpreter the environment was made from, when that lives outside the system directories
    (pyenv's under /root)."""
    mounts = {str(venv): "ro"}
    try:
        cfg = {k.strip(): v.strip() for k, _, v in (line.partition("=") for line in
               (venv / "pyvenv.cfg").read_text().splitlines())}
    except OSError:
        return mounts
    home = Path(cfg.get("home", "").strip())
    prefix = home.parent if home.name == "bin" else home
    if str(prefix) not in ("", ".") and not str(prefix).startswith(("/usr/", "/bin", "/lib", "/opt/")) \
            and prefix.is_dir():
        mounts[str(prefix)] = "ro"
    return mounts
