"""The Executor protocol and the plain value types that go in and out of every driver."""

from __future__ import annotations

import enum
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from diceyml import DiceYml

# ---- what to run ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Overcommit:
    """A cluster's ratios for one workspace (SPEC.md, "Overcommit")."""

    cpu_ratio: float = 1.0
    mem_ratio: float = 1.0
    allow_prod_mem_overcommit: bool = False


@dataclass(frozen=True)
class ClusterRef:
    """Where to run: a cluster's name and kind, plus the connection the driver needs.

    `config` is driver specific: for kubernetes {"kubeconfig": path or text, "context": ...};
    for local {"root": directory where runtimes keep their state}.
    """

    name: str
    kind: str
    config: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)
    wildcard_domain: str = ""
    ingress_class: str = ""
    storage_class: str = ""


_LABEL_BAD = re.compile(r"[^a-z0-9-]+")


def dns_label(text: str, limit: int = 63) -> str:
    """A lowercase DNS label made from text (used for namespaces and object names)."""
    label = _LABEL_BAD.sub("-", text.lower()).strip("-")
    return (label[:limit].rstrip("-")) or "x"


@dataclass(frozen=True)
class RuntimeRef:
    """One running instance of an application: app x workspace x name (e.g. the branch)."""

    org: str
    project: str
    app: str
    workspace: str  # DEV, TEST, STAGING or PROD
    name: str  # the runtime's name, e.g. "main" or "feature-x"
    runtime_id: int | None = None

    @property
    def namespace(self) -> str:
        """One namespace per runtime: stable, readable, a valid DNS label."""
        base = dns_label(f"{self.project}-{self.app}-{self.workspace}-{self.name}", 52)
        import hashlib

        digest = hashlib.sha1(
            f"{self.org}/{self.project}/{self.app}/{self.workspace}/{self.name}".encode()
        ).hexdigest()[:8]
        return f"{base}-{digest}"

    def labels(self) -> dict[str, str]:
        return {
            "dice.io/org": dns_label(self.org),
            "dice.io/project": dns_label(self.project),
            "dice.io/app": dns_label(self.app),
            "dice.io/workspace": self.workspace.lower(),
            "dice.io/runtime": dns_label(self.name),
        }


@dataclass(frozen=True)
class ServiceGroup:
    """A runtime's services, jobs and addons as the driver must make them exist.

    `spec` is the dice.yml already merged for the runtime's workspace (DiceYml.environment set).
    `images` maps service/job name to the image reference of the release (overrides spec images).
    `workdir` is where the local driver runs commands from (the release's files), if any.
    `addon_secrets` maps addon name to its generated credentials, kept by the console across deploys.
    `secret_configs` holds the project configs named by `((KEY))` in the spec's envs.
    """

    runtime: RuntimeRef
    spec: DiceYml
    release: str = ""
    images: dict[str, str] = field(default_factory=dict)
    workdir: str | None = None
    overcommit: Overcommit = Overcommit()
    addon_secrets: dict[str, dict[str, str]] = field(default_factory=dict)
    cluster_name: str = ""
    # Values of the project configs that the spec's `((KEY))` placeholders name (kept secret).
    secret_configs: dict[str, str] = field(default_factory=dict, repr=False)
    # Node labels the cluster's operators require of each kind of workload ("stateless":
    # services, "stateful": addons, "job": jobs), e.g. {"stateless": {"dice/stateless": "true"}}.
    node_selectors: dict[str, dict[str, str]] = field(default_factory=dict)


@dataclass(frozen=True)
class JobSpec:
    """One short-lived unit of work (a pipeline step or a dice.yml job run).

    `name` is deterministic (run, alias, attempt) so that creating it twice is harmless.
    """

    name: str
    image: str = ""
    command: list[str] = field(default_factory=list)
    envs: dict[str, str] = field(default_factory=dict)
    workdir: str | None = None
    cpu: float = 0.1
    mem: int = 128
    timeout: int | None = None
    labels: dict[str, str] = field(default_factory=dict)
    namespace: str = ""
    # Files the command reads, placed before it starts (absolute path -> text, mode 0600: they
    # may hold secrets), as a Secret volume is mounted before a pod's containers start; a file
    # already there is kept (a job started again reads what its first start placed). The local
    # cluster only: on Kubernetes, put them in a Secret and mount it.
    files: dict[str, str] = field(default_factory=dict)
    # Node labels the job's pods require (Kubernetes nodeSelector); ignored by the local cluster.
    node_selector: dict[str, str] = field(default_factory=dict)
    # Whose code this is (an organization): on the local cluster, the sandbox's uid. Empty: the
    # namespace is the tenant.
    tenant: str = ""
    # Host directories the job works in (absolute path -> "rw" or "ro"): on the local cluster, the
    # only host paths its sandbox shows besides the system's, its workdir and its placed files.
    mounts: dict[str, str] = field(default_factory=dict)


# ---- what comes back ------------------------------------------------------------------------


class Health(enum.StrEnum):
    # Every desired replica is ready and available.
    HEALTHY = "Healthy"
    # A rollout is under way and nothing is known to be wrong yet.
    PROGRESSING = "Progressing"
    # Something is wrong: crash loops, failing probes, image pulls, unschedulable pods, quota.
    DEGRADED = "Degraded"
    # The object does not exist in the cluster.
    MISSING = "Missing"
    # The cluster could not be asked.
    UNKNOWN = "Unknown"


class JobState(enum.StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    MISSING = "missing"

    @property
    def finished(self) -> bool:
        return self in (JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED)


@dataclass(frozen=True)
class ReplicaStatus:
    name: str  # pod name, or "<service>-<index>" on local
    ready: bool
    restarts: int = 0
    state: str = ""  # Running, Pending, CrashLoopBackOff, exited(1)...
    address: str = ""  # host:port where it listens, if known


@dataclass(frozen=True)
class ServiceStatus:
    name: str
    desired: int
    updated: int = 0
    ready: int = 0
    available: int = 0
    health: Health = Health.UNKNOWN
    reason: str = ""
    url: str = ""  # where an exposed service answers, if it does
    replicas: tuple[ReplicaStatus, ...] = ()


@dataclass(frozen=True)
class GroupStatus:
    runtime: RuntimeRef
    health: Health
    reason: str = ""
    services: dict[str, ServiceStatus] = field(default_factory=dict)
    addons: dict[str, ServiceStatus] = field(default_factory=dict)


@dataclass(frozen=True)
class JobStatus:
    name: str
    state: JobState
    exit_code: int | None = None
    started: float | None = None  # unix time
    finished: float | None = None
    message: str = ""


@dataclass(frozen=True)
class LogLine:
    source: str  # replica or pod the line came from
    number: int  # 1-based, per source
    timestamp: float
    text: str
    stream: str = "stdout"


@dataclass(frozen=True)
class Event:
    timestamp: float
    type: str  # Normal or Warning
    reason: str
    message: str
    object: str = ""


class ExecutorError(Exception):
    """A driver failure with a message fit to show to the user."""


class ExecutorUnavailable(ExecutorError):
    """The cluster cannot be reached or lacks what the spec needs (a binary, a CRD)."""


# ---- following changes ----------------------------------------------------------------------


class StatusChanges(Protocol):
    """A subscription to one runtime's status changes (Executor.watch_status): the follower of a
    rollout waits on it instead of polling, and reads status() after each wake-up."""

    def wait(self, timeout: float) -> bool:
        """Block until the runtime may have changed since the last wait (True) or `timeout`
        seconds passed (False). Spurious wake-ups are allowed; missed changes are not."""

    def close(self) -> None: ...


class PolledChanges:
    """StatusChanges for an executor that cannot tell: every wait is a poll interval."""

    def __init__(self, interval: float):
        self.interval = max(0.0, interval)
        self._closed = False

    def wait(self, timeout: float) -> bool:
        if self._closed:
            return False
        time.sleep(max(0.0, min(timeout, self.interval)))
        return True

    def close(self) -> None:
        self._closed = True


def status_changes(executor: Any, runtime: RuntimeRef, poll_interval: float) -> StatusChanges:
    """The executor's own subscription when it has one (watch_status), else polling."""
    watch = getattr(executor, "watch_status", None)
    if watch is None:
        return PolledChanges(poll_interval)
    return watch(runtime)


# ---- the protocol ---------------------------------------------------------------------------


@runtime_checkable
class Executor(Protocol):
    """What every cluster kind implements. Calls are idempotent: applying the same group twice,
    running a job whose name already exists, or destroying a missing runtime does no harm."""

    kind: str

    def apply(self, group: ServiceGroup) -> None:
        """Make the runtime match the group: create/update what it has, prune what it no longer has."""

    def status(self, runtime: RuntimeRef) -> GroupStatus:
        """Per-service replicas and health, and the runtime's health with a reason."""

    def watch_status(self, runtime: RuntimeRef) -> StatusChanges:
        """Subscribe to the runtime's status changes (Kubernetes: watches of its namespace; local:
        the supervisor's notifications). Optional: status_changes() polls without it."""

    def scale(self, runtime: RuntimeRef, service: str, replicas: int) -> None: ...

    def restart(self, runtime: RuntimeRef, service: str) -> None: ...

    def destroy(self, runtime: RuntimeRef) -> None:
        """Remove everything of the runtime (processes, ports, objects). Missing is fine."""

    def logs(
        self, runtime: RuntimeRef, service: str, *, follow: bool = False, tail: int | None = None
    ) -> Iterator[LogLine]:
        """Lines of every replica of the service, merged; with follow, waits for more until closed."""

    def events(self, runtime: RuntimeRef, service: str | None = None) -> list[Event]: ...

    def run_job(self, job: JobSpec) -> JobStatus:
        """Start the job unless one of that name exists; returns its status either way."""

    def job_status(self, name: str, namespace: str = "") -> JobStatus: ...

    def cancel_job(self, name: str, namespace: str = "") -> None: ...

    def job_logs(self, name: str, namespace: str = "", *, follow: bool = False) -> Iterator[LogLine]: ...
