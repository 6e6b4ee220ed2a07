"""The Executor protocol and the plain value types that go in and out of every driver."""

from __future__ import annotations

import contextlib
import contextvars
import enum
import hashlib
import json
import re
import threading
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
class JobEnv:
    """The environment of one of a runtime's jobs that a data engine runs, and the names in it whose
    values are secret (an addon's password, a value filled from a project config, a secret console
    variable): an engine keeps those off command lines and redacts them where it shows its settings."""

    envs: dict[str, str] = field(default_factory=dict, repr=False)
    secret: frozenset[str] = frozenset()


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
    # The console's environment variables of the application in this workspace, plain and
    # secret. Every service, sidecar and job of the runtime sees them; they win over dice.yml
    # `envs`, discovery and addon variables, never over the platform's DICE_*/SELF_*/PORT* (the
    # console refuses those names: scheduler.envvars.variable_name_problem). Values are literal (no `((KEY))`).
    variables: dict[str, str] = field(default_factory=dict)
    secret_variables: dict[str, str] = field(default_factory=dict, repr=False)
    # A digest of both that changes when any name or value does, so workloads roll; the console
    # keys it (an unkeyed hash of a short secret could be guessed back). Empty: derived here.
    variables_digest: str = ""
    # The environment of each data engine's job (`engine: spark|flink`), by job name, and which of
    # its names hold secret values: what the runtime's own cluster gives its jobs (its addons'
    # variables and discovery, the file's envs with `((KEY))` filled, console variables, DICE_*),
    # handed by the routing executor to the data cluster that runs the job, which has neither the
    # addons nor the services. scheduler.envvars.engine_job_env reads it; a job not in it gets the
    # same computed without the runtime's cluster (no discovery, no addon variables).
    job_envs: dict[str, JobEnv] = field(default_factory=dict, repr=False)

    def console_variables(self) -> dict[str, str]:
        """Plain and secret console variables together (a secret one wins on a clash)."""
        return {**self.variables, **self.secret_variables}

    def variables_version(self) -> str:
        """`variables_digest`, or (for renders outside the console) a digest of the plain values
        and of the secret names only."""
        if self.variables_digest:
            return self.variables_digest
        if not self.variables and not self.secret_variables:
            return ""
        body = json.dumps([sorted(self.variables.items()), sorted(self.secret_variables)], sort_keys=True)
        return hashlib.sha256(body.encode()).hexdigest()[:16]


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


STEP_TIMEOUT_GRACE = 30  # seconds a cluster lets a step run beyond the agent's own timeout before killing it


@dataclass(frozen=True)
class StepJob:
    """One pipeline step as the console hands it to a cluster: the agent's spec (commands or a
    built-in action such as git-checkout, envs, params, caches, outputs), and what the cluster
    needs to run it. The driver decides how: a supervised agent process (local), or a Job with the
    agent beside the step container (Kubernetes). `name` is deterministic (run, alias, attempt):
    starting it twice is harmless.

    `folder` is the step's folder on the console's machine (the local agent reads its spec there
    and writes its result there); `context` ({"url", "token", "max_bytes"}) is where a pod reaches
    the console's context store, and `context_path` the directory earlier steps' directories live
    under (the same path inside a pod, so `${{ dirs.x }}` means the same everywhere). Values of
    `secrets` never appear in plain text in what the driver creates (a Kubernetes Secret holds them).
    """

    name: str
    namespace: str
    spec: dict[str, Any] = field(hash=False, compare=False)
    folder: str = ""
    image: str = ""
    agent_image: str = ""
    cpu: float = 0.1
    max_cpu: float = 0.0
    mem: int = 256
    timeout: int | None = None
    labels: dict[str, str] = field(default_factory=dict, hash=False, compare=False)
    secrets: tuple[str, ...] = ()
    context: dict[str, Any] | None = field(default=None, hash=False, compare=False)
    context_path: str = ""
    tenant: str = ""  # the organization whose code this is (JobSpec.tenant)
    node_selector: dict[str, str] = field(default_factory=dict, hash=False, compare=False)


@dataclass(frozen=True)
class StepResult:
    """How a step ended, as the agent reports it (its result file / termination message)."""

    exit_code: int
    outputs: dict[str, str] = field(default_factory=dict)
    started: float | None = None
    finished: float | None = None
    timed_out: bool = False
    caches: list[dict[str, Any]] = field(default_factory=list)
    lines: int = 0  # how many log lines the agent printed (the console waits for them)
    error: str = ""  # why it failed, fit to show (a termination message, "DeadlineExceeded: ...")

    def as_dict(self) -> dict[str, Any]:
        return {"exit_code": self.exit_code, "outputs": dict(self.outputs), "started": self.started,
                "finished": self.finished, "timed_out": self.timed_out, "caches": list(self.caches),
                "lines": self.lines, "error": self.error}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> StepResult:
        return cls(exit_code=int(data.get("exit_code", 1)), outputs=dict(data.get("outputs") or {}),
                   started=data.get("started"), finished=data.get("finished"),
                   timed_out=bool(data.get("timed_out")), caches=list(data.get("caches") or []),
                   lines=int(data.get("lines") or 0), error=str(data.get("error") or ""))


@dataclass(frozen=True)
class Capabilities:
    """What a cluster kind can do, as data: the console asks these questions instead of testing
    a cluster's kind. Static per kind; what depends on the cluster's contents (operators found,
    permissions) is in the capability report (Executor.check)."""

    images: bool = False  # runs container images: every service and job needs one
    hosts: bool = False  # its nodes are plain machines (the CMDB records hosts, not cluster nodes)
    release_files: bool = False  # runs services from the release's files (ServiceGroup.workdir)
    namespaces: bool = False  # each runtime gets a namespace of its own (RuntimeRef.namespace)
    credentials: bool = False  # is reached with credentials the console keeps (a kubeconfig)
    node_labels: bool = False  # node labels live on the cluster (set_node_labels); else the console keeps them
    workloads: bool = False  # snapshot() lists the runtimes' workloads and pods, so the sync can prune by it
    inspection: bool = False  # inspection_data() has something to look at
    broadcast: bool = False  # `broadcast: true`: one replica per node
    ingress: bool = False  # exposed services answer under the cluster's wildcard domain
    operators: bool = False  # addons through operators' custom resources, when the cluster has them
    files: bool = False  # JobSpec.files are placed before a job starts
    node_selectors: bool = False  # work is placed by node labels
    in_memory_jobs: bool = False  # accepting a job is an in-memory entry (cheap: submit from the worker)
    console_filesystem: bool = False  # steps run on the console's filesystem: their directories need no carrying
    drift: bool = False  # drift(group) compares what runs with the release (Executor.drift)
    # The data engine the kind's clusters run ("spark", "flink"): a workspace may bind such a cluster
    # as a data cluster, and that engine's jobs and pipeline actions run there. Empty: none.
    data_engine: str = ""
    runtimes: bool = True  # apply() runs a dice.yml's services, addons and jobs (a Flink cluster runs only `engine: flink` services)
    steps: bool = True  # start_step() runs pipeline steps (a Flink cluster takes the `flink` action's jobs instead)
    savepoints: bool = False  # stop_job() stops a streaming job with a savepoint; a job starts from one (`-s`)
    metrics: bool = False  # usage() measures replicas' CPU and memory (the check's `features` say if this cluster can)
    # Data engines whose `engine:` services and pipeline actions the kind runs itself, through the
    # engine's operator where the cluster has it (Kubernetes: flink -> FlinkDeployment); a workspace's
    # data cluster of that engine still comes first. The check's `features` say if this cluster can.
    engines: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, bool | str | tuple[str, ...]]:
        return {name: getattr(self, name) for name in self.__dataclass_fields__}


# ---- what comes back ------------------------------------------------------------------------


@dataclass(frozen=True)
class DriftItem:
    """One difference between what the release asks for and what runs: `object` (a service, a
    Kubernetes object kind/name), `field` (dotted path), the release's value and the live one
    (None: absent on that side)."""

    object: str
    field: str
    desired: Any = None
    live: Any = None

    def as_dict(self) -> dict[str, Any]:
        return {"object": self.object, "field": self.field, "desired": self.desired, "live": self.live}


@dataclass(frozen=True)
class Drift:
    """What an executor's drift(group) found: in sync when there is no item. Fields the cluster
    owns (statuses, defaults it fills in, its own annotations) are never differences."""

    items: tuple[DriftItem, ...] = ()

    @property
    def in_sync(self) -> bool:
        return not self.items


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
    # dice.yml jobs a data engine runs for the runtime (`engine: spark`): the job's name -> its
    # latest run (the run of the release deployed, or the latest scheduled run).
    jobs: dict[str, JobStatus] = field(default_factory=dict)


@dataclass(frozen=True)
class ReplicaUsage:
    """One replica's use of the machine now: CPU in millicores (averaged since the previous
    measurement, or over a short window), resident memory, restarts so far. None: not measured."""

    service: str
    replica: str
    cpu_millicores: float | None = None
    memory_bytes: int | None = None
    restarts: int = 0
    ready: bool = False


@dataclass(frozen=True)
class RuntimeUsage:
    """What usage() found for a runtime: every replica's usage, or available=False and why (the
    cluster serves no metrics: no metrics-server, a kind that measures nothing)."""

    runtime: RuntimeRef
    available: bool
    reason: str = ""
    replicas: tuple[ReplicaUsage, ...] = ()
    # where the figures came from, as the check's `metrics.source` names it ("proc",
    # "metrics-api", "kubelet-summary"); "" when unavailable
    source: str = ""
    # service -> counters since its front proxy started, where one sees the traffic (local):
    # {"connections", "replies" (connections the backend answered), "first_byte_seconds" (their sum
    # of the time from the client's first byte to the backend's)}
    traffic: dict[str, dict[str, float]] = field(default_factory=dict)


@dataclass(frozen=True)
class NodeUsage:
    """What one node of a cluster uses now: CPU in millicores, memory in bytes."""

    name: str
    cpu_millicores: float | None = None
    memory_bytes: int | None = None


def node_usage_of(inspector: Any) -> list[NodeUsage] | None:
    """inspector.node_usage(), or None when the driver (or the cluster: no metrics API) cannot say."""
    usage = getattr(inspector, "node_usage", None)
    return None if usage is None else usage()


_SAMPLING_PASS: contextvars.ContextVar[dict | None] = contextvars.ContextVar("dice_sampling_pass", default=None)


@contextlib.contextmanager
def sampling_pass() -> Iterator[None]:
    """One round of measurements (the metrics worker measuring every runtime and node): inside it,
    what a driver fetches for one runtime and serves others too (a node's kubelet summary) is
    fetched once and shared (`pass_memo`); the next pass fetches afresh."""
    token = _SAMPLING_PASS.set({})
    try:
        yield
    finally:
        _SAMPLING_PASS.reset(token)


def pass_memo(key: Any, fetch: Any) -> Any:
    """`fetch()`, once per sampling pass and key (every call outside a pass fetches)."""
    memo = _SAMPLING_PASS.get()
    if memo is None:
        return fetch()
    if key not in memo:
        memo[key] = fetch()
    return memo[key]


def usage_of(executor: Any, runtime: RuntimeRef) -> RuntimeUsage:
    """executor.usage(runtime), or "unavailable" for a driver without the method (as
    status_changes() does for watch_status)."""
    usage = getattr(executor, "usage", None)
    if usage is None:
        return RuntimeUsage(runtime=runtime, available=False, reason="this kind of cluster reports no metrics")
    return usage(runtime)


def autoscale_of(executor: Any, runtime: RuntimeRef, usage: RuntimeUsage) -> list:
    """executor.autoscale(runtime, usage): the scaling a driver does itself from a measurement
    (Kubernetes without a metrics API, where HorizontalPodAutoscalers cannot act); [] for a
    driver without it or whose cluster scales on its own."""
    scale = getattr(executor, "autoscale", None)
    return [] if scale is None or not usage.available else scale(runtime, usage)


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


def job_log_from(executor: Any, name: str, namespace: str, position: object | None,
                 after: int = 0) -> tuple[list[LogLine], object | None]:
    """The job's lines numbered > after that were written since `position`, and the position after
    them: `executor.job_log_from(name, namespace, position, after)` where the driver can read a log
    from where it left off (local: a byte offset in its rotating files); else the whole log read
    again (job_logs), filtered, and no position (None: the next call reads it all again). A
    position is opaque, only valid for the same job on the same driver, and may be forgotten at
    any time (a restart, a takeover): None reads from the start, still filtered by `after`."""
    reader = getattr(executor, "job_log_from", None)
    if reader is not None:
        return reader(name, namespace, position, after)
    return [line for line in executor.job_logs(name, namespace) if line.number > after], None


class StartBacklog:
    """How many jobs this process has accepted and not yet handed to their processes, over every
    driver that starts processes here (local: its starter threads' queue; a Kubernetes cluster
    starts its pods elsewhere and never adds to it).

    On the local cluster the console is its own kubelet: a wide stage's hundred starts are made
    by this process, and collecting the steps that finish meanwhile (results, logs, transitions)
    competed with them for the interpreter lock and the cores. Nothing waits on a collection as
    a start does: a result waits in its file. So the step monitor yields to the starts
    (wait_clear) before it collects, for at most a bounded time."""

    def __init__(self) -> None:
        self._count = 0
        self._clear = threading.Condition()

    def add(self, count: int = 1) -> None:
        with self._clear:
            self._count += count

    def done(self, *_: Any) -> None:
        """One start handed over, failed or cancelled (usable as a Future's done callback)."""
        with self._clear:
            self._count = max(0, self._count - 1)
            if not self._count:
                self._clear.notify_all()

    def pending(self) -> int:
        return self._count

    def wait_clear(self, timeout: float) -> bool:
        """Wait until no start is pending, at most `timeout` seconds; True when none is."""
        with self._clear:
            return self._clear.wait_for(lambda: not self._count, timeout)


START_BACKLOG = StartBacklog()


def job_log_watch(executor: Any) -> Any | None:
    """`executor.job_log_watch()`: an object telling a reader of many jobs' logs which of them
    grew, so that it waits instead of polling (local: inotify on the jobs' folders). It has
    fileno() (readable when some watched log changed, for select), watch(name, namespace) -> bool
    (False: not yet, try again later), forget(name, namespace), watched() -> [(name, namespace)],
    changed() -> {(name, namespace)} since the last call, and close(). None for a driver without
    one: its reader polls (job_log_version tells it which logs to read)."""
    make = getattr(executor, "job_log_watch", None)
    return make() if make is not None else None


# ---- the protocol ---------------------------------------------------------------------------


@runtime_checkable
class Inspector(Protocol):
    """What the console asks a cluster about itself (the connectivity check, the sync, node
    labels, the inspection). Every Executor is one; scheduler.registry.inspector_for gives one
    without what running work costs (the local kind's supervision)."""

    capabilities: Capabilities

    def check(self) -> dict[str, Any]:
        """The capability report: reachable, server_version, error, permissions and
        missing_permissions, operators (each installed only when every CRD it needs is there) and
        missing_operators, and `features` (Capabilities.as_dict() refined by what was found)."""

    def snapshot(self) -> dict[str, Any]:
        """Nodes (capacity, allocatable, requests, labels, conditions), namespaces with usage and
        quota, and the runtimes' workloads and pods, as plain dicts (what the periodic sync records)."""

    def node_usage(self) -> list[NodeUsage] | None:
        """Each node's CPU and memory use now, or None when the cluster cannot measure them
        (optional: node_usage_of() answers None for a driver without it)."""
        ...

    def set_node_labels(self, node: str, labels: dict[str, str | None]) -> dict[str, str]:
        """Patch a node's labels (None removes one); returns its labels afterwards."""

    def inspection_data(self) -> dict[str, Any]:
        """What the inspection looks at, live: nodes, pods, certificates, volumes, quotas."""


@runtime_checkable
class Executor(Inspector, Protocol):
    """What every cluster kind implements. Calls are idempotent: applying the same group twice,
    running a job whose name already exists, or destroying a missing runtime does no harm."""

    kind: str
    capabilities: Capabilities

    # ---- a runtime (a service group) ---------------------------------------------------------

    def apply(self, group: ServiceGroup) -> None:
        """Make the runtime match the group: create/update what it has, prune what it no longer has."""

    def status(self, runtime: RuntimeRef) -> GroupStatus:
        """Per-service replicas and health, and the runtime's health with a reason."""

    def usage(self, runtime: RuntimeRef) -> RuntimeUsage:
        """CPU, memory and restarts of the runtime's replicas now (optional: usage_of() answers
        "unavailable" for a driver without it)."""
        ...

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

    # ---- jobs and pipeline steps ---------------------------------------------------------------

    def run_job(self, job: JobSpec) -> JobStatus:
        """Start the job unless one of that name exists; returns its status either way."""

    def job_status(self, name: str, namespace: str = "") -> JobStatus: ...

    def cancel_job(self, name: str, namespace: str = "") -> None: ...

    def job_logs(self, name: str, namespace: str = "", *, follow: bool = False) -> Iterator[LogLine]: ...

    def job_log_version(self, name: str, namespace: str = "") -> object | None:
        """A value that changes whenever the job's log does, so a reader polling many jobs reads
        only the logs that grew; None when the cluster cannot tell (then every read is a read).

    Optional, found with getattr (see job_log_from and job_log_watch above):
    job_log_from(name, namespace, position, after) reads a log on from where the last read left
    it, and job_log_watch() tells a reader which logs grew without polling them."""

    def job_batch(self) -> contextlib.AbstractContextManager[None]:
        """A block of run_job/start_step calls the driver may start together when it ends."""

    def start_step(self, step: StepJob) -> JobStatus:
        """Start the step unless a job of its name exists; returns its status either way."""

    def step_result(self, name: str, namespace: str, status: JobStatus) -> StepResult | None:
        """The result of a finished step as the cluster holds it (Kubernetes: the step container's
        termination message, else what the Job says); None where the agent delivers its result
        to the step's folder itself (local)."""


def base_report(reachable: bool, *, version: str = "", error: str = "",
                capabilities: Capabilities | None = None) -> dict[str, Any]:
    """A capability report with nothing found yet (the shape Executor.check returns)."""
    return {"reachable": reachable, "server_version": version, "error": error, "permissions": [],
            "missing_permissions": [], "operators": [], "missing_operators": [],
            "features": (capabilities or Capabilities()).as_dict()}


@contextlib.contextmanager
def no_batch() -> Iterator[None]:
    """Executor.job_batch of a driver that starts each job as it is asked."""
    yield
