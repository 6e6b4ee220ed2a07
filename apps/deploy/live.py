"""A runtime as the cluster reports it now: services, replicas, health, URLs and events, as plain data
for the pages, the API and the CLI."""

from __future__ import annotations

from apps.deploy.engines import runtime_executor
from apps.deploy.models import Runtime
from apps.deploy.refs import runtime_ref
from diceyml import parse_dice_yml
from scheduler.base import ExecutorError, GroupStatus, Health, JobStatus, ServiceStatus
from speckit.errors import SpecInvalid

EVENTS_SHOWN = 50


def exposed_services(runtime: Runtime) -> set[str]:
    """Services of the current release with an exposed port or an endpoint."""
    if runtime.release is None:
        return set()
    try:
        doc = parse_dice_yml(runtime.release.spec_text, source=runtime.release.source_name,
                             workspace=runtime.workspace.kind)
    except SpecInvalid:
        return set()
    return {n for n, s in doc.services.items() if s.endpoints or any(p.expose for p in s.ports)}


def _service(status: ServiceStatus, exposed: bool) -> dict:
    return {
        "name": status.name,
        "desired": status.desired,
        "ready": status.ready,
        "updated": status.updated,
        "available": status.available,
        "health": str(status.health),
        "reason": status.reason,
        "exposed": exposed,
        "url": status.url,
        "replicas": [
            {"name": r.name, "ready": r.ready, "restarts": r.restarts, "state": r.state, "address": r.address}
            for r in status.replicas
        ],
    }


def status_dict(runtime: Runtime, status: GroupStatus) -> dict:
    exposed = exposed_services(runtime)
    return {
        "health": str(status.health),
        "reason": status.reason,
        "services": [_service(s, s.name in exposed) for s in status.services.values()],
        "addons": [_service(s, False) for s in status.addons.values()],
        # the data engines' jobs (`engine: spark|flink`): each one's latest run
        "jobs": [_job(name, s) for name, s in sorted(status.jobs.items())],
    }


def _job(name: str, status: JobStatus) -> dict:
    """A data engine's dice.yml job (`engine: spark|flink`) by its latest run: the run's name, state
    (ours: pending, running, succeeded, failed...; the engine's own, e.g. the SparkApplication's
    RUNNING or SUBMISSION_FAILED, is in the message with its error), exit code and times."""
    return {"name": name, "run": status.name if status.name != name else "", "state": str(status.state),
            "message": status.message, "exit_code": status.exit_code, "started": status.started,
            "finished": status.finished}


def live_status(runtime: Runtime) -> dict:
    """The executor's status of the runtime; a cluster that cannot be asked gives health Unknown."""
    try:
        status = runtime_executor(runtime).status(runtime_ref(runtime))
    except ExecutorError as exc:
        return {"health": str(Health.UNKNOWN), "reason": str(exc), "services": [], "addons": [], "jobs": []}
    return status_dict(runtime, status)


def live_events(runtime: Runtime, limit: int = EVENTS_SHOWN) -> list[dict]:
    try:
        events = runtime_executor(runtime).events(runtime_ref(runtime))
    except ExecutorError:
        return []
    events = sorted(events, key=lambda e: e.timestamp)[-limit:]
    return [
        {"timestamp": e.timestamp, "type": e.type, "reason": e.reason, "message": e.message, "object": e.object}
        for e in reversed(events)
    ]
