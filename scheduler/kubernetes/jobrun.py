"""One-off Jobs (run_job) and pod logs: manifests, status from a Job and its pods, merged log lines."""

from __future__ import annotations

import datetime as dt
import queue
import threading
from collections.abc import Iterator
from typing import Any

from kubernetes.client.rest import ApiException

from scheduler.base import JobSpec, JobState, JobStatus, LogLine, dns_label
from scheduler.kubernetes.meta import MANAGED_BY, RUN_JOB_LABEL, is_label_key, is_label_value
from scheduler.resources import cpu_quantity

CANCELLED = "dice.io/cancelled"


def job_manifest(job: JobSpec, namespace: str) -> dict[str, Any]:
    name = dns_label(job.name)
    labels = {k: v for k, v in job.labels.items() if is_label_key(k) and is_label_value(v)}
    labels |= {
        "app.kubernetes.io/name": name,
        "app.kubernetes.io/component": "job",
        "app.kubernetes.io/managed-by": MANAGED_BY,
        RUN_JOB_LABEL: "true",
    }
    container: dict[str, Any] = {
        "name": "job",
        "image": job.image,
        "env": [{"name": k, "value": v} for k, v in job.envs.items()],
        "resources": {
            "requests": {"cpu": cpu_quantity(job.cpu), "memory": f"{job.mem}Mi"},
            "limits": {"cpu": cpu_quantity(job.cpu), "memory": f"{job.mem}Mi"},
        },
    }
    if job.command:
        container["command"] = list(job.command)
    if job.workdir:
        container["workingDir"] = job.workdir
    pod: dict[str, Any] = {"restartPolicy": "Never", "containers": [container], "enableServiceLinks": False}
    if job.node_selector:
        pod["nodeSelector"] = dict(job.node_selector)
    spec: dict[str, Any] = {"backoffLimit": 0, "template": {"metadata": {"labels": labels}, "spec": pod}}
    if job.timeout:
        spec["activeDeadlineSeconds"] = int(job.timeout)
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "namespace": namespace, "labels": labels},
        "spec": spec,
    }


def _ts(value: Any) -> float | None:
    if not value:
        return None
    return dt.datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp()


def job_status(job: dict, pods: list[dict]) -> JobStatus:
    meta, spec, st = job.get("metadata") or {}, job.get("spec") or {}, job.get("status") or {}
    name = meta.get("name", "")
    exit_code = None
    for pod in pods:
        for c in (pod.get("status") or {}).get("containerStatuses") or []:
            term = (c.get("state") or {}).get("terminated")
            if term is not None:
                exit_code = term.get("exitCode")
    started = _ts(st.get("startTime"))
    conditions = {c.get("type"): c for c in st.get("conditions") or [] if c.get("status") == "True"}
    if "Complete" in conditions or "SuccessCriteriaMet" in conditions:
        return JobStatus(name, JobState.SUCCEEDED, exit_code if exit_code is not None else 0, started,
                         _ts(st.get("completionTime")) or _ts(conditions.get("Complete", {}).get("lastTransitionTime")))
    if "Failed" in conditions or "FailureTarget" in conditions:
        cond = conditions.get("Failed") or conditions["FailureTarget"]
        message = f"{cond.get('reason', '')}: {cond.get('message', '')}".strip(": ")
        return JobStatus(name, JobState.FAILED, exit_code, started, _ts(cond.get("lastTransitionTime")), message)
    if (meta.get("annotations") or {}).get(CANCELLED) == "true":
        return JobStatus(name, JobState.CANCELLED, exit_code, started, None, "cancelled")
    if int(st.get("active") or 0) > 0 and any(
        (p.get("status") or {}).get("phase") == "Running" for p in pods
    ):
        return JobStatus(name, JobState.RUNNING, None, started)
    if spec.get("suspend"):
        return JobStatus(name, JobState.PENDING, None, started, None, "suspended")
    return JobStatus(name, JobState.PENDING if not started else JobState.RUNNING, None, started)


def _parse_line(raw: str) -> tuple[float, str]:
    stamp, _, text = raw.partition(" ")
    try:
        return dt.datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp(), text
    except ValueError:
        return 0.0, raw


LOG_CONTAINER = "dice.io/log-container"  # pod annotation: the container whose log is the job's


def pod_logs(core, namespace: str, pods: list[str], container: str | None, follow: bool, tail: int | None) -> Iterator[LogLine]:
    """Lines of every pod, tagged with the pod's name: sorted by time, or as they come with follow."""
    kwargs: dict[str, Any] = {"timestamps": True}
    if container:
        kwargs["container"] = container
    if tail is not None:
        kwargs["tail_lines"] = tail
    if not follow:
        lines: list[tuple[float, str, str]] = []
        for pod in pods:
            try:
                text = core.read_namespaced_pod_log(pod, namespace, **kwargs)
            except ApiException:
                continue
            for raw in text.splitlines():
                stamp, line = _parse_line(raw)
                lines.append((stamp, pod, line))
        counters: dict[str, int] = {}
        for stamp, pod, line in sorted(lines, key=lambda x: x[0]):
            counters[pod] = counters.get(pod, 0) + 1
            yield LogLine(pod, counters[pod], stamp, line)
        return
    out: queue.Queue = queue.Queue()
    done = object()

    def read(pod: str) -> None:
        number, buffer = 0, ""
        try:
            resp = core.read_namespaced_pod_log(pod, namespace, follow=True, _preload_content=False, **kwargs)
            for raw in resp.stream():
                buffer += raw.decode(errors="replace")
                *complete, buffer = buffer.split("\n")
                for part in complete:
                    number += 1
                    stamp, line = _parse_line(part)
                    out.put(LogLine(pod, number, stamp, line))
            if buffer:
                number += 1
                out.put(LogLine(pod, number, *_parse_line(buffer)))
        except Exception:
            pass
        finally:
            out.put(done)

    for pod in pods:
        threading.Thread(target=read, args=(pod,), daemon=True).start()
    open_streams = len(pods)
    while open_streams:
        item = out.get()
        if item is done:
            open_streams -= 1
            continue
        yield item
