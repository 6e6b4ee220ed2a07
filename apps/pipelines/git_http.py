"""Hosted repositories over git's smart HTTP protocol at /git/<org>/<project>/<app>.git, served by
Debian's `git http-backend` (the git package's own CGI program: the protocol, pack negotiation
and receive-pack as git itself implements them) behind the console's authentication.

HTTP basic auth, an API token as the password (any user name): reading needs `view` on the
application, pushing needs `change`. A run's git-checkout reads with its own credential
(apps.pipelines.repos.checkout_token), valid while the run is queued or running. Only the three
smart-protocol paths are served (no dumb-protocol file reads); the repository's path comes from
the application's id; a push is capped in size (DICE_GIT_MAX_PUSH_BYTES) and refused when the
repository is over DICE_GIT_MAX_REPO_BYTES. After a push, the updated branches start the
pipelines their commits declare (apps.pipelines.triggers.runs_for_hosted_push)."""

from __future__ import annotations

import base64
import binascii
import io
import logging
import re
import shutil
import subprocess
import tempfile

from django.http import Http404, HttpResponse, StreamingHttpResponse
from django.views.decorators.csrf import csrf_exempt

from apps.pipelines import repos, triggers
from apps.pipelines.choices import RunStatus
from apps.pipelines.context_store import console_url
from apps.pipelines.models import PipelineRun
from apps.projects import permissions as perms
from apps.projects import scope
from apps.projects.models import Application
from apps.projects.services import authenticate_token

HTTP_BACKEND = "/usr/lib/git-core/git-http-backend"
SERVICES = ("git-upload-pack", "git-receive-pack")
TIMEOUT = 600  # seconds for one request's git process
CHUNK = 64 * 1024
log = logging.getLogger(__name__)


def clone_url(application: Application, request=None) -> str:
    """The repository's URL: under DICE_CONSOLE_URL (the address steps and pods reach the console
    at) when set, else under the address the request came to."""
    path = f"/git/{application.project.organization.slug}/{application.project.slug}/{application.slug}.git"
    base = console_url()
    if base:
        return base + path
    return request.build_absolute_uri(path) if request is not None else path


def _challenge(message: str = "authentication required: an API token as the password") -> HttpResponse:
    response = HttpResponse(message + "\n", status=401, content_type="text/plain")
    response["WWW-Authenticate"] = 'Basic realm="Dice git", charset="UTF-8"'
    return response


def _credentials(request) -> tuple[str, str] | None:
    scheme, _, value = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        username, _, password = base64.b64decode(value.strip(), validate=True).decode("utf-8").partition(":")
    except (binascii.Error, ValueError):
        return None
    return username, password


def _allowed(request, application: Application | None, write: bool) -> tuple[HttpResponse | None, object, str]:
    """(refusal or None, the user, the name git records as REMOTE_USER)."""
    given = _credentials(request)
    if given is None:
        return _challenge(), None, ""
    username, password = given
    run_id = repos.run_of_credentials(username, password)
    if run_id is not None:
        ok = (application is not None and not write and PipelineRun.objects.filter(
            pk=run_id, application=application, status__in=(RunStatus.QUEUED, RunStatus.RUNNING)).exists())
        return (None if ok else HttpResponse("not found\n", status=404, content_type="text/plain")), None, username
    user = authenticate_token(password) if password else None
    if user is None:
        return _challenge("invalid or expired API token"), None, ""
    if application is None or not scope.has_perm(user, perms.VIEW, application):
        return HttpResponse("not found\n", status=404, content_type="text/plain"), user, ""
    if write and not scope.has_perm(user, perms.CHANGE, application):
        return HttpResponse(f"{user.username} may not push to {application}: pushing needs the change right\n",
                            status=403, content_type="text/plain"), user, ""
    return None, user, user.username


def _read_body(request, limit: int):
    """The request body into a temporary file, or None when it is over `limit` bytes."""
    body = tempfile.TemporaryFile()  # noqa: SIM115  (git reads it as its stdin; closed by the caller)
    total = 0
    while True:
        chunk = request.read(CHUNK)
        if not chunk:
            break
        total += len(chunk)
        if total > limit:
            body.close()
            return None, total
        body.write(chunk)
    body.seek(0)
    return body, total


def _parse_cgi(out) -> tuple[int, dict[str, str]]:
    """The CGI header block at the start of `out` (a file at 0); leaves `out` at the body."""
    head = b""
    while b"\r\n\r\n" not in head and b"\n\n" not in head:
        chunk = out.read(1024)
        if not chunk:
            break
        head += chunk
    sep = b"\r\n\r\n" if b"\r\n\r\n" in head else b"\n\n"
    header_text, _, rest = head.partition(sep)
    status, headers = 200, {}
    for line in header_text.decode("latin-1").splitlines():
        name, _, value = line.partition(":")
        if name.lower() == "status":
            status = int(value.strip().split(" ", 1)[0] or 200)
        elif name:
            headers[name.strip()] = value.strip()
    out.seek(len(header_text) + len(sep))
    return status, headers


MAX_REPORT_BYTES = 1024 * 1024  # receive-pack's answer is its report: a line per ref
_UNPRINTABLE = re.compile(r"[^\x20-\x7e\u00a0-\uffff]")


def _absolute(note: str, request) -> str:
    """A note's run page path as a URL the pusher can open."""
    head, sep, path = note.rpartition(": /")
    if not sep or " started in " not in head:
        return note
    base = console_url()
    return f"{head}: " + (base + "/" + path if base else request.build_absolute_uri("/" + path))


def _pkt(payload: bytes) -> bytes:
    return b"%04x" % (len(payload) + 4) + payload


def _with_messages(out, lines: list[str]):
    """receive-pack's answer with `lines` added as progress messages (sideband 2), which git shows
    the pusher as `remote: ...` lines, as it shows a server hook's output. Only when the answer is
    multiplexed (the client asked for side-band) and parses as whole pkt-lines ending with a flush;
    otherwise the answer goes unchanged. The lines are the console's own notes, cleaned of control
    characters (a branch or file name is the pusher's text)."""
    data = out.read(MAX_REPORT_BYTES + 1)
    out.close()
    answer = io.BytesIO(data)
    if not lines or len(data) > MAX_REPORT_BYTES:
        return answer
    offsets, i = [], 0
    try:
        while i < len(data):
            size = int(data[i:i + 4], 16)
            if size in (1, 2, 3) or (size and size < 4) or i + max(size, 4) > len(data):
                return answer
            offsets.append((i, size))
            i += max(size, 4)
    except ValueError:
        return answer
    first = next(((o, n) for o, n in offsets if n), None)
    last_offset, last_size = offsets[-1] if offsets else (0, -1)
    if first is None or data[first[0] + 4] not in (1, 2) or last_size != 0:
        return answer  # not multiplexed, or not ending with the flush
    messages = b"".join(_pkt(b"\x02" + _UNPRINTABLE.sub("?", f"dice: {line}").encode()[:1000] + b"\n")
                        for line in lines)
    return io.BytesIO(data[:last_offset] + messages + data[last_offset:])


def _stream(out):
    try:
        while chunk := out.read(CHUNK):
            yield chunk
    finally:
        out.close()


@csrf_exempt
def git_http(request, org: str, project: str, app: str, rest: str):
    if rest not in ("info/refs", *SERVICES):
        raise Http404("only git's smart HTTP protocol is served")
    service = request.GET.get("service", "") if rest == "info/refs" else rest
    if service not in SERVICES:
        raise Http404("only git's smart HTTP protocol is served (git 1.6.6 or later)")
    if (rest == "info/refs") != (request.method in ("GET", "HEAD")):
        return HttpResponse(status=405)
    write = service == "git-receive-pack"
    application = (Application.objects.select_related("project__organization")
                   .filter(slug=app, project__slug=project, project__organization__slug=org).first())
    refusal, user, remote_user = _allowed(request, application, write)
    if refusal is not None:
        return refusal
    if not write and not repos.exists(application.pk):
        return HttpResponse(f"{application} has no repository yet: push to create it\n", status=404,
                            content_type="text/plain")
    if write:
        repos.ensure(application.pk)
        if rest != "info/refs" and repos.size_bytes(application.pk) >= repos.max_repo_bytes():
            return HttpResponse(f"the repository is over {repos.max_repo_bytes() // (1024 * 1024)} MiB: "
                                "it takes no more pushes\n", status=413, content_type="text/plain")
    body, size = _read_body(request, repos.max_push_bytes())
    if body is None:
        return HttpResponse(f"the push is larger than {repos.max_push_bytes() // (1024 * 1024)} MiB\n",
                            status=413, content_type="text/plain")
    before = repos.refs(application.pk) if write and rest != "info/refs" else None
    env = repos.git_env({"http.receivepack": "true" if write else "false", "http.uploadpack": "true",
                         "http.getanyfile": "false"})
    env.update({
        "GIT_PROJECT_ROOT": str(repos.repos_root()),
        "PATH_INFO": f"/{application.pk}.git/{rest}",
        "GIT_HTTP_EXPORT_ALL": "1",
        "REQUEST_METHOD": request.method,
        "QUERY_STRING": f"service={service}" if rest == "info/refs" else "",
        "CONTENT_TYPE": request.headers.get("Content-Type", ""),
        "CONTENT_LENGTH": str(size),
        "REMOTE_USER": remote_user,
        "REMOTE_ADDR": request.META.get("REMOTE_ADDR", ""),
        "GIT_HTTP_MAX_REQUEST_BUFFER": str(repos.max_push_bytes()),
    })
    if request.headers.get("Content-Encoding"):
        env["HTTP_CONTENT_ENCODING"] = request.headers["Content-Encoding"]
    if request.headers.get("Git-Protocol"):
        env["GIT_PROTOCOL"] = request.headers["Git-Protocol"]
    out = tempfile.TemporaryFile()  # noqa: SIM115  (streamed to the client, closed by _stream)
    try:
        done = subprocess.run([HTTP_BACKEND], stdin=body, stdout=out, stderr=subprocess.PIPE, env=env,
                              timeout=TIMEOUT, check=False)
    except subprocess.TimeoutExpired:
        out.close()
        return HttpResponse(f"git took longer than {TIMEOUT}s\n", status=504, content_type="text/plain")
    finally:
        body.close()
    if done.returncode != 0 and done.stderr:
        log.warning("git http-backend for %s: %s", application, done.stderr.decode(errors="replace")[-500:])
    out.seek(0)
    status, headers = _parse_cgi(out)
    if before is not None and status == 200:
        after = repos.refs(application.pk)
        changed = sorted((ref, before.get(ref, repos.ZERO), after.get(ref, repos.ZERO))
                         for ref in set(before) | set(after) if before.get(ref) != after.get(ref))
        if changed:
            notes = triggers.runs_for_hosted_push(application, user, changed, clone_url(application, request))
            out = _with_messages(out, [_absolute(note, request) for note in notes])
            headers.pop("Content-Length", None)
    response = StreamingHttpResponse(_stream(out), status=status)
    for name, value in headers.items():
        response[name] = value
    return response


def available() -> bool:
    """Whether this machine has git's HTTP backend (Debian's git package)."""
    return shutil.which(HTTP_BACKEND) is not None
