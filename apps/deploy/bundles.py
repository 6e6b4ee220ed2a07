"""Release files for the local cluster: the uploaded tar.gz of the spec's folder, stored once and
unpacked once per release, or a shallow clone of the application's repository."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import shutil
import subprocess
import tarfile
import tempfile
import zlib
from pathlib import Path

from django.conf import settings
from django.core.exceptions import ValidationError

from apps.deploy.models import Release, ReleaseBundle

MAX_ARCHIVE = 50 * 1024 * 1024  # bytes, compressed
MAX_UNPACKED = 200 * 1024 * 1024  # bytes, all files together
MAX_MEMBERS = 20_000
CLONE_TIMEOUT = 120  # seconds


class WorkdirError(Exception):
    """The release's files cannot be made ready (a broken archive, a failed clone)."""


def files_root() -> Path:
    """Where bundles and per-release working directories live (DICE_DEPLOY_FILES, else DATA_DIR/deploy)."""
    return Path(getattr(settings, "DICE_DEPLOY_FILES", "") or Path(settings.DATA_DIR) / "deploy")


def _archive_path(sha256: str) -> Path:
    return files_root() / "bundles" / f"{sha256}.tar.gz"


class _Inflated(io.RawIOBase):
    """The decompressed stream of a .gz, refusing to give more than `limit` bytes: a gzip bomb
    stops costing CPU at the limit instead of after it has been inflated whole."""

    def __init__(self, data: bytes, limit: int):
        self._gz = gzip.GzipFile(fileobj=io.BytesIO(data), mode="rb")
        self.limit, self.given = limit, 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        room = self.limit + 1 - self.given
        if room <= 0:
            raise _TooLarge()
        view = memoryview(buffer)[:room]
        count = self._gz.readinto(view)
        self.given += count
        if self.given > self.limit:
            raise _TooLarge()
        return count


class _TooLarge(Exception):
    pass


# The tar stream around the files: a 512-byte header per entry, padding, the end blocks.
_TAR_OVERHEAD = 1024 * (MAX_MEMBERS + 4)


def check_archive(data: bytes) -> int:
    """The number of regular files in a valid archive; ValidationError naming what is wrong otherwise.

    Refused: over MAX_ARCHIVE, not a tar.gz, absolute paths or `..`, links, devices, more than
    MAX_MEMBERS entries or MAX_UNPACKED bytes unpacked. Read as a stream: entry sizes are added up
    as their headers arrive, and the decompressed stream itself is capped, so an archive that
    unpacks to gigabytes is refused after at most MAX_UNPACKED bytes of work."""
    if len(data) > MAX_ARCHIVE:
        raise ValidationError({"files": f"the archive is larger than {MAX_ARCHIVE // (1024 * 1024)} MiB"})
    too_big = ValidationError({"files": f"the files unpack to more than {MAX_UNPACKED // (1024 * 1024)} MiB"})
    total, files, entries = 0, 0, 0
    try:
        stream = _Inflated(data, MAX_UNPACKED + _TAR_OVERHEAD)
        with tarfile.open(fileobj=io.BufferedReader(stream, 64 * 1024), mode="r|") as tar:
            for m in tar:
                entries += 1
                if entries > MAX_MEMBERS:
                    raise ValidationError({"files": f"the archive has more than {MAX_MEMBERS} entries"})
                _check_member(m)
                if m.isfile():
                    files += 1
                    total += m.size
                    if total > MAX_UNPACKED:
                        raise too_big
    except _TooLarge:
        raise too_big from None
    except (tarfile.TarError, EOFError, OSError, zlib.error) as exc:
        raise ValidationError({"files": f"not a readable tar.gz archive: {exc}"}) from None
    return files


def _check_member(m: tarfile.TarInfo) -> None:
    name = m.name
    parts = Path(name).parts
    if name.startswith(("/", "\\")) or ".." in parts:
        raise ValidationError({"files": f"{name}: paths must stay inside the folder"})
    if m.issym() or m.islnk():
        raise ValidationError({"files": f"{name}: links are not accepted in release files"})
    if not (m.isfile() or m.isdir()):
        raise ValidationError({"files": f"{name}: only files and directories are accepted"})


def attach_bundle(release: Release, data: bytes) -> ReleaseBundle:
    """Store the archive (content-addressed) and attach it to the release; once per release."""
    if ReleaseBundle.objects.filter(release=release).exists():
        raise ValidationError({"files": f"{release} already has its files; make a new release to change them"})
    files = check_archive(data)
    digest = hashlib.sha256(data).hexdigest()
    path = _archive_path(digest)
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path.parent, delete=False) as tmp:
            tmp.write(data)
        os.replace(tmp.name, path)
    return ReleaseBundle.objects.create(release=release, sha256=digest, size=len(data), files=files)


def make_archive(folder: Path, *, exclude: tuple[str, ...] = (".git", "__pycache__", ".venv", "node_modules")) -> bytes:
    """A tar.gz of a folder's files (paths relative to it), skipping VCS and cache directories."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for path in sorted(Path(folder).rglob("*")):
            rel = path.relative_to(folder)
            if any(part in exclude for part in rel.parts) or path.is_symlink():
                continue
            if path.is_file():
                tar.add(path, arcname=str(rel), recursive=False)
    return buf.getvalue()


def _release_dir(release: Release, kind: str) -> Path:
    return files_root() / "workdirs" / f"release-{release.pk}-{kind}"


def _ready(target: Path, fill) -> Path:
    """Fill a directory once: into a temporary sibling, then renamed; a finished one is reused."""
    if target.is_dir():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}-"))
    try:
        fill(tmp)
        try:
            os.rename(tmp, target)
        except OSError:
            if not target.is_dir():  # another worker did not win the race: a real failure
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def _unpack(bundle: ReleaseBundle, into: Path) -> None:
    path = _archive_path(bundle.sha256)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise WorkdirError(f"the files of {bundle.release} are missing from {path.parent}: {exc.strerror}")
    if hashlib.sha256(data).hexdigest() != bundle.sha256:
        raise WorkdirError(f"the stored files of {bundle.release} are damaged (checksum mismatch)")
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        tar.extractall(into, filter="data")


def _clone(repo_url: str, into: Path) -> None:
    env = {**os.environ, "GIT_TERMINAL_PROMPT": "0"}
    try:
        done = subprocess.run(
            ["git", "clone", "--quiet", "--depth", "1", "--", repo_url, str(into)],
            capture_output=True, text=True, timeout=CLONE_TIMEOUT, env=env,
        )
    except FileNotFoundError:
        raise WorkdirError("git is not installed on the console's machine (apt-get install git)")
    except subprocess.TimeoutExpired:
        raise WorkdirError(f"cloning {repo_url} took longer than {CLONE_TIMEOUT}s")
    if done.returncode != 0:
        detail = (done.stderr or done.stdout).strip().splitlines()
        raise WorkdirError(f"cloning {repo_url} failed: {detail[-1] if detail else f'exit {done.returncode}'}")


def release_workdir(release: Release) -> str | None:
    """The directory the local cluster runs the release's services from: its uploaded files,
    else a shallow clone of the application's repository, else None (an empty per-runtime folder)."""
    bundle = ReleaseBundle.objects.filter(release=release).first()
    if bundle is not None:
        return str(_ready(_release_dir(release, "files"), lambda d: _unpack(bundle, d)))
    repo = release.application.repo_url.strip()
    if repo:
        return str(_ready(_release_dir(release, "git"), lambda d: _clone(repo, d)))
    return None
