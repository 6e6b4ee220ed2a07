"""The spec's folder as the console takes it: a tar.gz of its files, for `dice deploy --spec` and
`dice release create --spec` alike (the local cluster runs a release's services from them)."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

from dice_cli.errors import CliError

MAX_BUNDLE = 50 * 1024 * 1024  # the console's limit for a compressed folder
SKIP_DIRS = {".git", "__pycache__", ".venv", "node_modules", ".mypy_cache", ".pytest_cache"}


def folder_archive(folder: Path) -> bytes:
    """The spec's folder as a tar.gz (paths relative to it; VCS, caches and links left out)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for path in sorted(folder.rglob("*")):
            rel = path.relative_to(folder)
            if any(part in SKIP_DIRS for part in rel.parts) or path.is_symlink() or not path.is_file():
                continue
            tar.add(path, arcname=str(rel), recursive=False)
            if buf.tell() > MAX_BUNDLE:
                raise CliError(f"{folder} is larger than {MAX_BUNDLE // (1024 * 1024)} MiB compressed; "
                               "give the application a repository instead")
    return buf.getvalue()


def spec_folder_archive(spec: str, app: dict, no_files: bool) -> bytes | None:
    """The archive to send with a dice.yml given as FILE: its folder, unless it came from stdin, the
    application clones its own repository, or --no-files was given."""
    if spec == "-" or app.get("repo_url") or no_files:
        return None
    return folder_archive(Path(spec).resolve().parent)
