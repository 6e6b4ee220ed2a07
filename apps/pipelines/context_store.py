"""The context store: what pipeline steps on Kubernetes keep for later steps, over HTTP.

On the local cluster every step of a run works on one filesystem, so `${{ dirs.<alias> }}` and
`caches` are plain paths. A Kubernetes step has its own pod (an emptyDir), so its agent
(agent/pod.py) downloads what it needs before the step runs and uploads what it made after:

    GET|PUT  /api/pipeline-context/<run>/dirs/<alias>/      a step's directory, as tar.gz
    GET|PUT  /api/pipeline-context/<run>/caches/?key=<key>  a cache of the run's project, as tar.gz

- Reachable by pods at DICE_CONSOLE_URL (empty: steps on Kubernetes get no context, see
  pod_context). Outside the user API's session, CSRF and token checks: a request carries
  `Authorization: Bearer <token>` with token = HMAC-SHA256(SECRET_KEY, "pipeline-context:<run id>"),
  which travels only in the step's Secret. A wrong token is 403 before anything is read or written.
- A step directory is kept at run_dir(run)/context/<alias>.tar.gz and also unpacked into
  action_dir(run, alias), so that steps running on the console itself (`release` reading
  `${{ dirs.checkout }}/dice.yml`) see it as they would on local. A cache is kept at
  paths.cache_archive(project, key): where local steps keep it, so local and Kubernetes runs of
  the project share their caches (the engine records CacheEntry rows from the step's result).
- Uploads are written to a temporary file and renamed into place (a reader never sees half a
  tarball); more than DICE_PIPELINE_CONTEXT_MAX_BYTES (default 512 MiB) is 413 and keeps nothing;
  an upload to a finished run is 409; a body that is not a tar.gz is 400. Unpacking uses the
  tarfile "data" filter: entries that would land outside the directory (`../x`, absolute paths,
  links pointing out, devices) are skipped, never written.
- GET of an unknown run or alias, or of something never stored, is 404.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import shutil
import tarfile
import tempfile
import zlib
from pathlib import Path

from django.conf import settings
from django.http import FileResponse, HttpResponse, HttpResponseNotAllowed, JsonResponse
from django.urls import get_script_prefix, reverse
from django.views.decorators.csrf import csrf_exempt

from agent import archive as tar_archive
from apps.pipelines import paths, reference
from apps.pipelines.choices import FINISHED_RUN
from apps.pipelines.models import PipelineRun

DEFAULT_MAX_BYTES = 512 * 1024 * 1024
UNPACKED_FACTOR = 16  # a step directory may unpack to at most this many times the upload limit
CHUNK = 1024 * 1024
_ALIAS = re.compile(r"^\w[\w-]*$")  # as the spec allows (pipelineyml/actions.py)


# ---- settings and the token -------------------------------------------------------------------


def console_url() -> str:
    """The console's base URL as pods see it (DICE_CONSOLE_URL), without a trailing slash."""
    value = getattr(settings, "DICE_CONSOLE_URL", "") or os.environ.get("DICE_CONSOLE_URL", "")
    return str(value).strip().rstrip("/")


def max_bytes() -> int:
    value = getattr(settings, "DICE_PIPELINE_CONTEXT_MAX_BYTES", None) or os.environ.get(
        "DICE_PIPELINE_CONTEXT_MAX_BYTES", "")
    return int(value) if value else DEFAULT_MAX_BYTES


def run_token(run_id: int) -> str:
    return hmac.new(str(settings.SECRET_KEY).encode(), f"pipeline-context:{run_id}".encode(),
                    hashlib.sha256).hexdigest()


def run_url(run_id: int, base: str | None = None) -> str:
    """The run's endpoints under the console's base URL: <base>/api/pipeline-context/<run>/."""
    path = reverse("api:pipeline-context-cache", args=[run_id]).removesuffix("caches/")
    prefix = get_script_prefix()
    path = path[len(prefix):] if path.startswith(prefix) else path.lstrip("/")
    return f"{(console_url() if base is None else base).rstrip('/')}/{path}"


def pod_context(run_id: int) -> dict | None:
    """What the agent in a step's pod needs to reach the store, or None without DICE_CONSOLE_URL.
    It holds the token: it belongs in the step's Secret only."""
    base = console_url()
    if not base:
        return None
    return {"url": run_url(run_id, base), "token": run_token(run_id), "max_bytes": max_bytes()}


def context_archive(run_id: int, alias: str) -> Path:
    return paths.run_dir(run_id) / "context" / f"{alias}.tar.gz"


# ---- the endpoints ------------------------------------------------------------------------------


def _detail(message: str, status: int) -> JsonResponse:
    return JsonResponse({"detail": message}, status=status)


def _authorized(request, run_id: int) -> bool:
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer":
        given = ""
    return hmac.compare_digest(given.strip().encode(), run_token(run_id).encode())


def _check(request, run_id: int) -> tuple[PipelineRun | None, HttpResponse | None]:
    """The method, the token, the run and (for uploads) that it is not finished."""
    if request.method not in ("GET", "PUT"):
        return None, HttpResponseNotAllowed(["GET", "PUT"])
    if not _authorized(request, run_id):
        return None, _detail("a valid context token of this run is required", 403)
    run = PipelineRun.objects.select_related("application").filter(pk=run_id).first()
    if run is None:
        return None, _detail(f"no run {run_id}", 404)
    if request.method == "PUT" and run.status in FINISHED_RUN:
        return None, _detail(f"run {run_id} is {run.status}: it takes no more uploads", 409)
    return run, None


def _send(path: Path) -> HttpResponse:
    try:
        handle = path.open("rb")
    except FileNotFoundError:
        return _detail("nothing stored", 404)
    return FileResponse(handle, content_type="application/gzip")


class _Refused(Exception):
    def __init__(self, message: str, status: int):
        super().__init__(message)
        self.status = status


def _receive(request, folder: Path, name: str) -> Path:
    """The request body in a temporary file in `folder`, within the size limit."""
    limit = max_bytes()
    try:
        length = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        raise _Refused("bad Content-Length", 400)
    if length > limit:
        raise _Refused(f"{length} bytes is more than the limit of {limit} (DICE_PIPELINE_CONTEXT_MAX_BYTES)", 413)
    folder.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=folder, prefix=f".{name}.", suffix=".tmp")
    tmp, total = Path(tmp_name), 0
    try:
        with os.fdopen(fd, "wb") as fh:
            while chunk := request.read(CHUNK):
                total += len(chunk)
                if total > limit:
                    raise _Refused(f"more than the limit of {limit} bytes (DICE_PIPELINE_CONTEXT_MAX_BYTES)", 413)
                fh.write(chunk)
        if total == 0:
            raise _Refused("the body is empty: send a tar.gz", 400)
        if length and total != length:
            raise _Refused(f"the body ended after {total} of {length} bytes", 400)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return tmp


_BAD_TAR = (tarfile.TarError, EOFError, zlib.error, OSError)


def _unpack_dir(tarball: Path, target: Path) -> tar_archive.Unpacker:
    """Unpack into a fresh directory beside target, then swap it into place."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fresh = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.new."))
    try:
        with tarfile.open(tarball, "r:gz") as tar:
            unpacker = tar_archive.unpack(tar, fresh, limit=max_bytes() * UNPACKED_FACTOR)
    except tar_archive.TooLarge as exc:
        shutil.rmtree(fresh, ignore_errors=True)
        raise _Refused(str(exc), 413)
    except _BAD_TAR as exc:
        shutil.rmtree(fresh, ignore_errors=True)
        raise _Refused(f"not a tar.gz: {exc}", 400)
    fresh.chmod(0o755)
    old = None
    if target.exists():
        old = target.with_name(f".{target.name}.old.{os.getpid()}.{fresh.name[-8:]}")
        os.replace(target, old)
    os.replace(fresh, target)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
    return unpacker


def _check_tar(archive: Path) -> int:
    """Read a cache tarball through: refuse what is not a tar.gz. Returns its number of entries."""
    try:
        with tarfile.open(archive, "r:gz") as tar:
            return sum(1 for _ in tar)
    except _BAD_TAR as exc:
        raise _Refused(f"not a tar.gz: {exc}", 400)


@csrf_exempt
def step_dir_view(request, run_id: int, alias: str):
    """A step's directory `${{ dirs.<alias> }}` of the run."""
    run, refused = _check(request, run_id)
    if refused is not None:
        return refused
    if not _ALIAS.match(alias) or alias not in {a.alias for a in reference.pipeline_of(run).actions}:
        return _detail(f"run {run_id} has no step {alias!r}", 404)
    archive = context_archive(run_id, alias)
    if request.method != "PUT":
        return _send(archive)
    stored = _store(request, archive, lambda tmp: _unpack_dir(tmp, paths.action_dir(run_id, alias)))
    if isinstance(stored, HttpResponse):
        return stored
    size, unpacked = stored
    return JsonResponse({"alias": alias, "size": size, "files": unpacked.files, "bytes": unpacked.bytes,
                         "skipped": unpacked.skipped[:20]})


@csrf_exempt
def cache_view(request, run_id: int):
    """A cache of the run's project, by key (?key=...)."""
    run, refused = _check(request, run_id)
    if refused is not None:
        return refused
    key = request.GET.get("key", "")
    if not key or len(key) > 300:
        return _detail("give the cache's key: ?key=... (at most 300 characters)", 400)
    archive = paths.cache_archive(run.application.project_id, key)
    if request.method != "PUT":
        return _send(archive)
    stored = _store(request, archive, _check_tar)
    if isinstance(stored, HttpResponse):
        return stored
    size, entries = stored
    return JsonResponse({"key": key, "size": size, "entries": entries})


def _store(request, archive: Path, check):
    """Receive the upload, check it (`check(tmp)` may refuse it), then rename it into place.
    Returns (size, what check returned), or the refusal's response; a refused upload leaves nothing."""
    tmp = None
    try:
        tmp = _receive(request, archive.parent, archive.name)
        checked = check(tmp)
        size = tmp.stat().st_size
        os.replace(tmp, archive)
    except _Refused as exc:
        if tmp is not None:
            tmp.unlink(missing_ok=True)
        return _detail(str(exc), exc.status)
    return size, checked
