"""Log pages (the viewer for a task run or a runtime service), the raw downloads, and the runtime
log lines for the CLI. Every object is read through the organization scope."""

from __future__ import annotations

from django.contrib.auth.views import redirect_to_login
from django.http import Http404, JsonResponse, StreamingHttpResponse
from django.shortcuts import render
from django.urls import reverse

from apps.logs import services
from apps.logs.services import task_panel_context
from apps.projects import scope
from dice_console.api_input import digits

RUNTIME_TAIL = 1000


def _user(request):
    """The session user, or the user of an `Authorization: Bearer` API token (CLI, scripts)."""
    if request.user.is_authenticated:
        return request.user
    header = request.META.get("HTTP_AUTHORIZATION", "")
    if header.lower().startswith("bearer "):
        from apps.projects.services import authenticate_token

        return authenticate_token(header[7:].strip())
    return None


def _task(user, task_id: int):
    from apps.pipelines.models import TaskRun

    task = (scope.scoped(user, TaskRun).filter(pk=task_id)
            .select_related("run__application__project__organization").first())
    if task is None:
        raise Http404("no such task run")
    return task


def _runtime(user, runtime_id: int):
    from apps.deploy.models import Runtime

    runtime = (scope.scoped(user, Runtime).filter(pk=runtime_id)
               .select_related("application__project__organization", "workspace", "cluster").first())
    if runtime is None:
        raise Http404("no such runtime")
    return runtime


def runtime_panel_context(runtime, service: str) -> dict:
    return {
        "log_stream": f"runtime:{runtime.pk}:{service}",
        "log_download": reverse("logs:runtime_raw", args=[runtime.pk, service]),
        "log_events": True,
    }


def task_log_page(request, task_id: int):
    if not request.user.is_authenticated:
        return redirect_to_login(request.get_full_path())
    task = _task(request.user, task_id)
    return render(request, "logs/viewer.html", {
        "title": f"{task.run.application} run {task.run_id} · {task.alias}", "back": task.get_log_url(),
        **task_panel_context(task),
    })


def runtime_log_page(request, runtime_id: int, service: str):
    if not request.user.is_authenticated:
        return redirect_to_login(request.get_full_path())
    runtime = _runtime(request.user, runtime_id)
    return render(request, "logs/viewer.html", {
        "title": f"{runtime} · {service}", "back": None, **runtime_panel_context(runtime, service),
    })


def _attachment(chunks, filename: str) -> StreamingHttpResponse:
    response = StreamingHttpResponse(chunks, content_type="text/plain; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    response["X-Content-Type-Options"] = "nosniff"
    return response


def task_log_raw(request, task_id: int):
    """The whole log as it was stored (secrets already masked), streamed chunk by chunk."""
    user = _user(request)
    if user is None:
        return JsonResponse({"detail": "Authentication credentials were not provided."}, status=401)
    task = _task(user, task_id)
    return _attachment((text.encode() for text in services.task_log_text(task.pk)),
                       f"run-{task.run_id}-{task.alias}.log")


def _runtime_lines(runtime, service: str, tail: int | None):
    from apps.clusters.services import cluster_executor
    from apps.deploy.refs import runtime_ref
    from apps.deploy.services import masked_lines, runtime_log_masker
    from scheduler.base import ExecutorError

    try:
        lines = cluster_executor(runtime.cluster).logs(runtime_ref(runtime), service, follow=False, tail=tail)
        return list(masked_lines(lines, runtime_log_masker(runtime)))
    except ExecutorError as exc:
        raise Http404(str(exc)) from None


def runtime_log_raw(request, runtime_id: int, service: str):
    user = _user(request)
    if user is None:
        return JsonResponse({"detail": "Authentication credentials were not provided."}, status=401)
    runtime = _runtime(user, runtime_id)
    lines = _runtime_lines(runtime, service, None)
    return _attachment((f"[{line.source}] {line.text}\n".encode() for line in lines),
                       f"{runtime.application.slug}-{runtime.name}-{service}.log")


def runtime_log_lines(request, runtime_id: int, service: str):
    """GET /api/logs/runtimes/<id>/<service>/?tail=N: the last N lines of every replica, merged in
    time order as [number, timestamp, stream, text, replica] (numbers per replica, from the executor)."""
    user = _user(request)
    if user is None:
        return JsonResponse({"detail": "Authentication credentials were not provided."}, status=401)
    runtime = _runtime(user, runtime_id)
    tail = request.GET.get("tail", str(RUNTIME_TAIL))
    if not digits(tail):
        return JsonResponse({"tail": ["a number of lines"]}, status=400)
    lines = _runtime_lines(runtime, service, int(tail))
    return JsonResponse({"runtime": runtime.pk, "service": service, "stream": f"runtime:{runtime.pk}:{service}",
                         "lines": [[ln.number, ln.timestamp, ln.stream, ln.text, ln.source] for ln in lines]})
