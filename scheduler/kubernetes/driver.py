"""The Kubernetes Executor: server-side apply of the rendered manifests, pruning by label, status
from watches, scale/restart/destroy, logs and events, and one-off Jobs."""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import yaml
from kubernetes import client, config, watch
from kubernetes.client.rest import ApiException
from kubernetes.dynamic import DynamicClient
from kubernetes.dynamic.exceptions import NotFoundError, ResourceNotFoundError

from scheduler.autoscale import Decision
from scheduler.base import (
    ClusterRef,
    Drift,
    DriftItem,
    Event,
    ExecutorError,
    ExecutorUnavailable,
    GroupStatus,
    JobSpec,
    JobState,
    JobStatus,
    LogLine,
    NodeUsage,
    RuntimeRef,
    RuntimeUsage,
    ServiceGroup,
    StepJob,
    StepResult,
    base_report,
    dns_label,
    no_batch,
)
from scheduler.flink.action import action_params
from scheduler.flink.operator import (
    DEPLOYMENT_CRD,
    NO_OPERATOR,
    SESSION_JOB_CRD,
    STEP_ANNOTATION,
    OperatorJobs,
    step_resource,
    step_status,
)
from scheduler.flink.operator import GROUP as FLINK_GROUP
from scheduler.flink.operator import VERSION as FLINK_VERSION
from scheduler.flink.operator import step_env as flink_step_env
from scheduler.kubernetes import autoscale as autoscale_mod
from scheduler.kubernetes import drift as drift_mod
from scheduler.kubernetes import inspect, jobrun, steps
from scheduler.kubernetes import metrics as metrics_mod
from scheduler.kubernetes.addons import health as addon_health
from scheduler.kubernetes.catalog import OPERATORS
from scheduler.kubernetes.informer import CacheChanges, NamespaceCache, cache_key, namespace_cache
from scheduler.kubernetes.jobs import engine_jobs_refused
from scheduler.kubernetes.meta import (
    ADDON_LABEL,
    CAPABILITIES,
    FIELD_MANAGER,
    JOB_LABEL,
    MANAGED_BY,
    RESTART_ANNOTATION,
    RUN_JOB_LABEL,
    SERVICE_LABEL,
)
from scheduler.kubernetes.render import render_group
from scheduler.kubernetes.status import group_status
from scheduler.spark import operator as spark_operator
from scheduler.spark.app import from_command
from scheduler.spark.operator import SparkApplications

SELECTOR = f"app.kubernetes.io/managed-by={MANAGED_BY}"
# Kinds pruned when the new release no longer has them (custom resources are added when served).
APPLIED_DIGEST = "dice.io/applied-digest"  # sha256 of the object as rendered (before this annotation)
APPLY_PARALLEL = 8  # server-side applies in flight at once
# A LIST answered with each item's metadata alone (PartialObjectMetadataList), for any kind.
METADATA_LIST = "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1,application/json"
# Applied before the rest: what the workloads read when their pods start.
FIRST_KINDS = ("ConfigMap", "Secret", "ServiceAccount", "PersistentVolumeClaim", "Role", "RoleBinding")


def cached_kind(api_version: str, kind: str) -> str | None:
    """The key under which the namespace's watch-fed cache holds objects of this kind (None: it
    does not follow them): workloads by kind, the addons' custom resources and `engine: spark`
    jobs' SparkApplications by apiVersion/kind (the Namespace's annotations name them)."""
    if kind in ("Deployment", "DaemonSet", "StatefulSet"):
        return kind
    if (api_version, kind) in addon_health.CUSTOM_HEALTH or (
            api_version, kind) == (f"{spark_operator.GROUP}/{spark_operator.VERSION}", spark_operator.KIND):
        return f"{api_version}/{kind}"
    return None


def _digest(obj: dict) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()).hexdigest()[:32]


def _unchanged(live: dict | None, digest: str) -> bool:
    """Whether applying an object of this digest again would change nothing: the live one was
    applied from the same rendering, is not being deleted, and nothing but our applies owns
    anything of it beyond metadata and status (a controller's revision annotation, its status):
    a scale, a restart or `kubectl edit` of its spec makes it be applied again, as before."""
    if not live:
        return False
    meta = live.get("metadata") or {}
    if (meta.get("annotations") or {}).get(APPLIED_DIGEST) != digest or meta.get("deletionTimestamp"):
        return False
    for entry in meta.get("managedFields") or []:
        if (entry.get("manager") == FIELD_MANAGER and entry.get("operation") == "Apply") or \
                entry.get("subresource") == "status":
            continue
        if set(entry.get("fieldsV1") or {}) - {"f:metadata", "f:status"}:
            return False
    return True


PRUNABLE = (
    ("networking.k8s.io/v1", "Ingress"),
    ("batch/v1", "CronJob"),
    ("batch/v1", "Job"),
    ("apps/v1", "Deployment"),
    ("apps/v1", "DaemonSet"),
    ("apps/v1", "StatefulSet"),
    ("autoscaling/v2", "HorizontalPodAutoscaler"),
    ("v1", "Service"),
    ("v1", "PersistentVolumeClaim"),
    ("v1", "Secret"),
    ("v1", "ConfigMap"),
)
# Custom resources the renderer makes: pruned too, when the cluster serves them.
CUSTOM_KINDS = (
    ("postgresql.cnpg.io/v1", "Cluster"),
    ("mysql.oracle.com/v2", "InnoDBCluster"),
    ("redis.redis.opstreelabs.in/v1beta2", "Redis"),
    ("redis.redis.opstreelabs.in/v1beta2", "RedisReplication"),
    ("elasticsearch.k8s.elastic.co/v1", "Elasticsearch"),
    ("kafka.strimzi.io/v1", "Kafka"),
    ("kafka.strimzi.io/v1", "KafkaNodePool"),
    ("rabbitmq.com/v1beta1", "RabbitmqCluster"),
    ("apps.kruise.io/v1alpha1", "BroadcastJob"),
    ("sparkoperator.k8s.io/v1beta2", "SparkApplication"),  # `engine: spark` jobs
    ("sparkoperator.k8s.io/v1beta2", "ScheduledSparkApplication"),
    ("flink.apache.org/v1beta1", "FlinkDeployment"),
    ("flink.apache.org/v1beta1", "FlinkSessionJob"),  # `engine: flink` jobs on a session deployment
)


def _api_client(cluster: ClusterRef) -> client.ApiClient:
    cfg = cluster.config or {}
    kubeconfig, context = cfg.get("kubeconfig"), cfg.get("context")
    if "kubeconfig" in cfg and not kubeconfig:  # a cluster registered with credentials has lost them
        raise ExecutorUnavailable(f"cluster {cluster.name}: no credentials to connect with")
    configuration = client.Configuration()
    try:
        if kubeconfig and ("\n" in kubeconfig or kubeconfig.lstrip().startswith("apiVersion")):
            config.load_kube_config_from_dict(yaml.safe_load(kubeconfig), context=context or None,
                                              client_configuration=configuration)
        elif kubeconfig:
            config.load_kube_config(config_file=kubeconfig, context=context or None, client_configuration=configuration)
        else:
            config.load_incluster_config(client_configuration=configuration)
    except Exception as exc:
        raise ExecutorUnavailable(f"cluster {cluster.name}: cannot load its connection: {exc}")
    configuration.retries = 1  # an unreachable server is reported at once, not after a round of retries
    return client.ApiClient(configuration)


def _items(lister, *args, **kwargs) -> list[dict]:
    """A list call's items as plain JSON dicts. Reading the raw answer skips the typed models:
    with every container carrying every service's variables, building and serialising those
    objects made status() of a 200-service runtime take seconds."""
    response = lister(*args, _preload_content=False, **kwargs)
    return json.loads(response.data)["items"]


def _plain(api: client.ApiClient, obj: Any) -> dict:
    return api.sanitize_for_serialization(obj) if not isinstance(obj, dict) else obj


def _ts(value: Any) -> float:
    if not value:
        return 0.0
    if isinstance(value, dt.datetime):
        return value.timestamp()
    return dt.datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp()


class KubernetesExecutor:
    """One cluster; every call is idempotent (see scheduler.base.Executor)."""

    kind = "kubernetes"
    capabilities = CAPABILITIES

    def __init__(self, cluster: ClusterRef, api_client: client.ApiClient | None = None):
        self.cluster = cluster
        self._api = api_client
        self._dynamic: DynamicClient | None = None

    # ---- clients -------------------------------------------------------------------------

    @property
    def api(self) -> client.ApiClient:
        if self._api is None:
            self._api = _api_client(self.cluster)
        return self._api

    @property
    def core(self) -> client.CoreV1Api:
        return client.CoreV1Api(self.api)

    @property
    def apps(self) -> client.AppsV1Api:
        return client.AppsV1Api(self.api)

    @property
    def batch(self) -> client.BatchV1Api:
        return client.BatchV1Api(self.api)

    @property
    def dynamic(self) -> DynamicClient:
        if self._dynamic is None:
            self._dynamic = DynamicClient(self.api)
        return self._dynamic

    def _resource(self, api_version: str, kind: str):
        try:
            return self.dynamic.resources.get(api_version=api_version, kind=kind)
        except ResourceNotFoundError:
            # A CRD installed after our discovery cache was filled.
            self.dynamic.resources.invalidate_cache()
            return self.dynamic.resources.get(api_version=api_version, kind=kind)

    # ---- discovery -----------------------------------------------------------------------

    def operators(self) -> set[str]:
        """CRD names and group/version/kind of every served custom resource in the cluster."""
        out: set[str] = set()
        try:  # raw JSON: an operator's CRDs carry schemas of hundreds of KB, slow to build as models
            crds = _items(client.ApiextensionsV1Api(self.api).list_custom_resource_definition)
        except ApiException as exc:
            if exc.status in (401, 403):
                return out
            raise ExecutorUnavailable(f"cluster {self.cluster.name}: cannot list CRDs: {exc.reason}")
        for crd in crds:
            spec = crd.get("spec") or {}
            out.add(crd["metadata"]["name"])
            for version in spec.get("versions") or []:
                if version.get("served"):
                    out.add(f"{spec.get('group')}/{version.get('name')}/{(spec.get('names') or {}).get('kind')}")
        return out

    # ---- apply ---------------------------------------------------------------------------

    def render(
        self, group: ServiceGroup, warnings: list[str] | None = None, operators: set[str] | None = None,
        builtin: set[str] | None = None,
    ) -> list[dict]:
        if operators is None:
            operators = self.operators()
        if builtin is None:
            builtin = self.builtin_addons(group.runtime.namespace)
        return render_group(group, self.cluster, operators=operators, warnings=warnings, keep_builtin=builtin)

    def builtin_addons(self, ns: str) -> set[str]:
        """Addons of the namespace that run as our built-in StatefulSet (ours: labelled, not owned
        by an operator's resource). They stay built-in when an operator's CRD appears later: the
        operator would start an empty database beside the data (and its Secret type differs)."""
        try:
            items = _items(self.apps.list_namespaced_stateful_set, ns, label_selector=f"{SELECTOR},{ADDON_LABEL}")
        except ApiException as exc:
            if exc.status == 404:
                return set()
            raise ExecutorError(f"listing the StatefulSets of {ns}: {_reason(exc)}")
        return {item["metadata"]["labels"][ADDON_LABEL] for item in items
                if not item["metadata"].get("ownerReferences")}

    def apply(self, group: ServiceGroup) -> None:
        """Server-side apply of every rendered object, then prune. Each object carries the digest
        of what was rendered (APPLIED_DIGEST); one LIST per kind (the prune's own) shows what is
        there, and an object whose live digest matches and which no other manager changed beyond
        metadata and status is left as it is, not sent again. The rest are applied
        APPLY_PARALLEL at a time (the Namespace, then what workloads read: ConfigMaps, Secrets,
        service accounts and claims, then everything else): one round trip each, overlapped."""
        namespace = group.runtime.namespace
        _ = self.dynamic  # the client made here, not raced for by the threads below
        # What the rendering needs (the CRDs, the built-in addons) and what is there (one LIST per
        # built-in kind) are independent reads: made at once, they cost one round trip, not three.
        with ThreadPoolExecutor(max_workers=3, thread_name_prefix="dice-k8s-read") as pool:
            reading = pool.submit(self._listed, namespace, set(PRUNABLE))
            builtin = pool.submit(self.builtin_addons, namespace)
            operators = self.operators()
            if refused := engine_jobs_refused(group.spec, operators):
                raise ExecutorError(refused)
            manifests = self._to_apply(group, operators, builtin.result())
            live = reading.result()
        kinds = set(PRUNABLE) | {(o["apiVersion"], o["kind"]) for o in manifests if o["kind"] != "Namespace"}
        kinds |= {(api, kind) for api, kind in CUSTOM_KINDS if f"{api}/{kind}" in operators}
        if extra := kinds - set(PRUNABLE):  # rendered kinds beyond the built-in ones (an operator's)
            live.update(self._listed(namespace, extra))
        for api_version, kind in {(o["apiVersion"], o["kind"]) for o in manifests}:
            self._resource(api_version, kind)  # discovery here, once, not in the apply threads
        # This process's writes, for the watch-fed cache to await before its next answer. The
        # cache is joined after the applies: its watches would otherwise decode every event the
        # applies cause while they are being sent (a list afterwards carries them at once).
        written: list[tuple[str, str, str]] = [("Namespace", namespace, self._apply_one(manifests[0]))]
        applied: set[tuple[str, str, str]] = set()
        waves: list[list[dict]] = [[], []]
        for obj in manifests[1:]:
            key = (obj["apiVersion"], obj["kind"], obj["metadata"]["name"])
            applied.add(key)
            current = live.get(key)
            if _unchanged(current, obj["metadata"]["annotations"][APPLIED_DIGEST]):
                if followed := cached_kind(obj["apiVersion"], obj["kind"]):
                    written.append((followed, key[2], str(current["metadata"].get("resourceVersion", ""))))
                continue
            waves[0 if obj["kind"] in FIRST_KINDS else 1].append(obj)
        try:
            with ThreadPoolExecutor(max_workers=APPLY_PARALLEL, thread_name_prefix="dice-k8s-apply") as pool:
                for wave in waves:
                    for obj, version in zip(wave, pool.map(self._apply_one, wave), strict=True):
                        if followed := cached_kind(obj["apiVersion"], obj["kind"]):
                            written.append((followed, obj["metadata"]["name"], version))
        finally:
            cache = self._cache(namespace)
            for kind, name, version in written:
                cache.expect(kind, name, version)
        self._prune(namespace, kinds, applied, live)

    def _to_apply(self, group: ServiceGroup, operators: set[str], builtin: set[str] | None = None) -> list[dict]:
        """The rendered objects as applied: the Namespace names the addons' resources (status()
        reads them: one GET each, no discovery), every other object carries its digest."""
        manifests = self.render(group, operators=operators, builtin=builtin)
        manifests[0]["metadata"].setdefault("annotations", {})[addon_health.ANNOTATION] = json.dumps(
            addon_health.addon_resources(manifests), separators=(",", ":"))
        if spark_jobs := spark_operator.jobs_record(manifests):  # status() reads their applications
            manifests[0]["metadata"]["annotations"][spark_operator.JOBS_ANNOTATION] = json.dumps(
                spark_jobs, separators=(",", ":"), sort_keys=True)
        for obj in manifests[1:]:
            obj["metadata"].setdefault("annotations", {})[APPLIED_DIGEST] = _digest(obj)
        return manifests

    def _listed(self, namespace: str, kinds: set[tuple[str, str]]) -> dict[tuple[str, str, str], dict]:
        """Our objects of these kinds in the namespace, by (apiVersion, kind, name), metadata only
        (what the digest check and the prune read: a 200-service runtime's Deployments with spec
        and status are megabytes to send and parse): one LIST each, APPLY_PARALLEL at a time."""
        resources = []
        for api_version, kind in sorted(kinds):
            with contextlib.suppress(ResourceNotFoundError):
                resources.append((api_version, kind, self._resource(api_version, kind)))

        def listed(entry) -> list[dict]:
            api_version, kind, resource = entry
            try:
                response = resource.get(namespace=namespace, label_selector=SELECTOR, serialize=False,
                                        header_params={"Accept": METADATA_LIST})
            except NotFoundError:
                return []
            except ApiException as exc:
                raise ExecutorError(f"listing {kind} in {namespace}: {exc.status} {_reason(exc)}")
            return json.loads(response.data).get("items") or []  # a metadata list of nothing has null

        out: dict[tuple[str, str, str], dict] = {}
        with ThreadPoolExecutor(max_workers=APPLY_PARALLEL, thread_name_prefix="dice-k8s-list") as pool:
            for (api_version, kind, _), items in zip(resources, pool.map(listed, resources), strict=True):
                for item in items:
                    out[(api_version, kind, item["metadata"]["name"])] = item
        return out

    def drift(self, group: ServiceGroup) -> Drift:
        """The runtime's objects against the release's, compared by a dry-run server-side apply
        (scheduler.kubernetes.drift); extra objects with our label are drift too."""
        manifests = self._to_apply(group, self.operators())
        namespace = manifests[0]["metadata"]["name"]
        items: list[DriftItem] = []
        wanted = set()
        try:
            for obj in manifests:
                resource = self._resource(obj["apiVersion"], obj["kind"])
                meta = obj["metadata"]
                wanted.add((obj["apiVersion"], obj["kind"], meta["name"]))
                try:
                    live = json.loads(resource.get(name=meta["name"], namespace=meta.get("namespace"),
                                                   serialize=False).data)
                except NotFoundError:
                    items.append(DriftItem(drift_mod.label(obj), "", "present", None))
                    continue
                would_be = json.loads(resource.server_side_apply(
                    body=obj, name=meta["name"], namespace=meta.get("namespace"), field_manager=FIELD_MANAGER,
                    force_conflicts=True, dry_run="All", serialize=False).data)
                items += drift_mod.object_drift(drift_mod.label(obj), would_be, live)
            for api_version, kind in sorted(set(PRUNABLE) | {(o["apiVersion"], o["kind"]) for o in manifests
                                                              if o["kind"] != "Namespace"}):
                try:
                    resource = self._resource(api_version, kind)
                except ResourceNotFoundError:
                    continue
                listed = json.loads(resource.get(namespace=namespace, label_selector=SELECTOR, serialize=False).data)
                for item in listed["items"]:
                    meta = item["metadata"]
                    if ((api_version, kind, meta["name"]) in wanted or meta.get("ownerReferences")
                            or RUN_JOB_LABEL in (meta.get("labels") or {})):
                        continue
                    items.append(DriftItem(f"{kind}/{meta['name']}", "", None, "present"))
        except ApiException as exc:
            raise ExecutorError(f"comparing runtime {group.runtime.name}: {exc.status} {_reason(exc)}")
        return Drift(tuple(items))

    def _apply_one(self, obj: dict) -> str:
        """Server-side apply of one object; its resourceVersion as the server answered."""
        resource = self._resource(obj["apiVersion"], obj["kind"])
        meta = obj["metadata"]
        try:
            response = resource.server_side_apply(
                body=obj,
                name=meta["name"],
                namespace=meta.get("namespace"),
                field_manager=FIELD_MANAGER,
                force_conflicts=True,
                # The answer is the whole object; wrapping it costs more than the request itself.
                serialize=False,
            )
        except ApiException as exc:
            raise ExecutorError(f"applying {obj['kind']}/{meta['name']}: {exc.status} {_reason(exc)}")
        with contextlib.suppress(Exception):
            return str(json.loads(response.data)["metadata"]["resourceVersion"])
        return ""

    def _prune(self, namespace: str, kinds: set[tuple[str, str]], keep: set[tuple[str, str, str]],
               live: dict[tuple[str, str, str], dict]) -> None:
        """Delete our objects (by label, as listed before the apply) that the new release does not
        have. (What appeared since was made by someone else: a run's Job, a controller's child.)"""
        for (api_version, kind, name), item in sorted(live.items()):
            if (api_version, kind) not in kinds:
                continue
            meta = item["metadata"]
            if (api_version, kind, name) in keep or meta.get("ownerReferences") or RUN_JOB_LABEL in (
                meta.get("labels") or {}
            ):
                continue
            with contextlib.suppress(NotFoundError):
                self._resource(api_version, kind).delete(name=name, namespace=namespace,
                                                         body={"propagationPolicy": "Background"})
            if followed := cached_kind(api_version, kind):  # the next status() has it gone
                self._cache(namespace).expect_gone(followed, name)

    # ---- status --------------------------------------------------------------------------

    def _snapshot(self, runtime: RuntimeRef) -> GroupStatus:
        ns = runtime.namespace
        try:
            namespace = json.loads(self.core.read_namespace(ns, _preload_content=False).data)
        except ApiException as exc:
            if exc.status == 404:
                return group_status(runtime, False, [], [], [])
            raise ExecutorUnavailable(f"cluster {self.cluster.name}: {_reason(exc)}")
        workloads = self._workloads(ns)
        pods = _items(self.core.list_namespaced_pod, ns)
        events = _items(self.core.list_namespaced_event, ns)
        custom = {addon: self._custom_status(ns, kind, name, addon)
                  for kind, name, addon in addon_health.recorded(namespace)}
        ingresses = _items(client.NetworkingV1Api(self.api).list_namespaced_ingress, ns, label_selector=SELECTOR)
        jobs = None
        if recorded := spark_operator.recorded_jobs(namespace):
            jobs = spark_operator.jobs_status(recorded, self._spark_applications(ns))
        return group_status(runtime, True, workloads, pods, events, custom=custom, ingresses=ingresses, jobs=jobs)

    def _spark_applications(self, ns: str) -> list[dict]:
        """The namespace's SparkApplications of dice.yml jobs (none where the CRD has gone)."""
        custom = client.CustomObjectsApi(self.api)
        try:
            listed = custom.list_namespaced_custom_object(
                spark_operator.GROUP, spark_operator.VERSION, ns, spark_operator.PLURAL,
                label_selector=spark_operator.JOB_LABEL, _preload_content=False)
        except ApiException as exc:
            if exc.status == 404:
                return []
            raise
        return json.loads(listed.data)["items"]

    def _read(self, reader, *args) -> dict | None:
        try:
            return json.loads(reader(*args, _preload_content=False).data)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise

    def _custom_status(self, ns: str, kind: addon_health.CustomKind, name: str, addon: str):
        """An operator-backed addon's status from its resource (and, for operators that report
        nothing, the StatefulSet they made of the same name)."""
        custom = client.CustomObjectsApi(self.api)
        obj = self._read(custom.get_namespaced_custom_object, kind.group, kind.version, ns, kind.plural, name)
        sts = None
        if obj is not None and kind.kind in ("Redis", "RedisReplication"):
            sts = self._read(self.apps.read_namespaced_stateful_set, name, ns)
        return addon_health.custom_status(addon, kind, obj, sts)

    def _cache(self, namespace: str) -> NamespaceCache:
        """The process's watch-fed cache of a runtime namespace on this cluster (informer.py)."""
        return namespace_cache(self.api, cache_key(self.api, self.cluster.name, self.cluster.config, namespace),
                               namespace)

    def watch_status(self, runtime: RuntimeRef) -> CacheChanges:
        """Wake-ups on every change of what status() reads (the shared cache's watches on the
        namespace's workloads, pods, events, ingresses and the addons' custom resources)."""
        return CacheChanges(self._cache(runtime.namespace))

    def _workloads(self, ns: str) -> list[dict]:
        out = []
        for kind, lister in (
            ("Deployment", self.apps.list_namespaced_deployment),
            ("DaemonSet", self.apps.list_namespaced_daemon_set),
            ("StatefulSet", self.apps.list_namespaced_stateful_set),
        ):
            for item in _items(lister, ns, label_selector=SELECTOR):
                item["kind"] = kind
                out.append(item)
        return out

    def status(self, runtime: RuntimeRef) -> GroupStatus:
        """From the shared watch-fed cache once it has listed everything; until then (the first
        call, or while a watch is failing: the server may be gone) by listing, as the cache's
        first answer would."""
        try:
            cache = self._cache(runtime.namespace)
            if cache.ready():
                with contextlib.suppress(TimeoutError):
                    return cache.status(runtime)
            return self._snapshot(runtime)
        except ExecutorUnavailable:
            raise
        except Exception as exc:
            from scheduler.base import Health

            return GroupStatus(runtime=runtime, health=Health.UNKNOWN, reason=str(exc))

    def usage(self, runtime: RuntimeRef) -> RuntimeUsage:
        """CPU and memory per pod from the resource metrics API, else from the kubelets' summary
        API (kubernetes/metrics.py)."""
        return metrics_mod.usage(self.api, runtime)

    def autoscale(self, runtime: RuntimeRef, usage: RuntimeUsage) -> list[Decision]:
        """Do the HPAs' work when the cluster has no metrics API (kubernetes/autoscale.py)."""
        return autoscale_mod.autoscale(self.api, runtime, usage, self.scale)

    def wait_until(
        self, runtime: RuntimeRef, predicate: Callable[[GroupStatus], bool], timeout: float
    ) -> GroupStatus:
        """The first status for which predicate holds, re-evaluated whenever the shared cache of
        the namespace changes (no request per evaluation); TimeoutError after timeout seconds."""
        deadline = time.monotonic() + timeout
        cache = self._cache(runtime.namespace)
        seen = cache.changes()
        status = self.status(runtime)
        while not predicate(status):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(
                    f"runtime {runtime.name}: not there after {timeout:.0f}s: {status.health} {status.reason}"
                )
            # A periodic re-check (5 s) answers even if the cache was replaced meanwhile.
            seen = cache.wait_change(seen, min(remaining, 5.0))
            if cache.closed():
                cache = self._cache(runtime.namespace)
                seen = cache.changes()
            status = self.status(runtime)
        return status

    # ---- operations ----------------------------------------------------------------------

    def _workload_of(self, ns: str, service: str) -> str:
        for kind, reader in (("Deployment", self.apps.read_namespaced_deployment), ("DaemonSet", self.apps.read_namespaced_daemon_set)):
            try:
                reader(service, ns)
                return kind
            except ApiException as exc:
                if exc.status != 404:
                    raise ExecutorError(_reason(exc))
        raise ExecutorError(f"no service '{service}' in runtime namespace {ns}")

    def _flink_service(self, ns: str, service: str) -> bool:
        """Whether the service is an `engine: flink` one (its FlinkDeployment exists)."""
        if f"{FLINK_GROUP}/{FLINK_VERSION}/FlinkDeployment" not in self.operators():
            return False
        return OperatorJobs(client.CustomObjectsApi(self.api)).get("FlinkDeployment", service, ns) is not None

    def scale(self, runtime: RuntimeRef, service: str, replicas: int) -> None:
        ns = runtime.namespace
        if self._flink_service(ns, service):  # the job's parallelism: the operator upgrades it with a savepoint
            if replicas < 1:
                raise ExecutorError(f"service '{service}': a Flink job's parallelism is at least 1, not {replicas}")
            OperatorJobs(client.CustomObjectsApi(self.api)).patch(
                "FlinkDeployment", service, ns, {"spec": {"job": {"parallelism": int(replicas)}}})
            return
        if self._workload_of(ns, service) != "Deployment":
            raise ExecutorError(f"service '{service}' runs one pod per node; it cannot be scaled")
        answer = self.apps.patch_namespaced_deployment_scale(service, ns, {"spec": {"replicas": int(replicas)}})
        self._cache(ns).expect("Deployment", service, answer.metadata.resource_version)

    def restart(self, runtime: RuntimeRef, service: str) -> None:
        ns = runtime.namespace
        if self._flink_service(ns, service):  # a new restartNonce: the operator restarts the job
            OperatorJobs(client.CustomObjectsApi(self.api)).patch(
                "FlinkDeployment", service, ns, {"spec": {"restartNonce": int(time.time())}})
            return
        kind = self._workload_of(ns, service)
        now = dt.datetime.now(dt.UTC).isoformat()
        body = {"spec": {"template": {"metadata": {"annotations": {RESTART_ANNOTATION: now}}}}}
        patch = self.apps.patch_namespaced_deployment if kind == "Deployment" else self.apps.patch_namespaced_daemon_set
        answer = patch(service, ns, body, field_manager=f"{FIELD_MANAGER}-restart")
        self._cache(ns).expect(kind, service, answer.metadata.resource_version)

    def destroy(self, runtime: RuntimeRef) -> None:
        try:
            self.core.delete_namespace(runtime.namespace, body=client.V1DeleteOptions(propagation_policy="Background"))
        except ApiException as exc:
            if exc.status != 404:
                raise ExecutorError(f"deleting namespace {runtime.namespace}: {_reason(exc)}")

    def events(self, runtime: RuntimeRef, service: str | None = None) -> list[Event]:
        ns = runtime.namespace
        try:
            items = self.core.list_namespaced_event(ns).items
        except ApiException as exc:
            if exc.status == 404:
                return []
            raise ExecutorError(_reason(exc))
        names: set[str] | None = None
        if service is not None:
            pods = self.core.list_namespaced_pod(ns, label_selector=f"{SERVICE_LABEL}={service}").items
            names = {service, *(p.metadata.name for p in pods)}
            for p in pods:
                names |= {o.name for o in p.metadata.owner_references or []}
        out = []
        for ev in items:
            obj = ev.involved_object
            if names is not None and obj.name not in names:
                continue
            stamp = ev.last_timestamp or ev.event_time or ev.metadata.creation_timestamp
            out.append(Event(_ts(stamp), ev.type or "", ev.reason or "", ev.message or "", f"{obj.kind}/{obj.name}"))
        return sorted(out, key=lambda e: e.timestamp)

    def logs(
        self, runtime: RuntimeRef, service: str, *, follow: bool = False, tail: int | None = None
    ) -> Iterator[LogLine]:
        def names() -> list[str]:
            pods = self.core.list_namespaced_pod(runtime.namespace, label_selector=f"{SERVICE_LABEL}={service}").items
            return [p.metadata.name for p in pods]

        return jobrun.pod_logs(self.core, runtime.namespace, names(), service, follow, tail, list_pods=names)

    # ---- jobs ----------------------------------------------------------------------------

    def _job_ns(self, namespace: str) -> str:
        return namespace or self.cluster.config.get("namespace", "") or "default"

    def _spark(self) -> SparkApplications:
        return SparkApplications(self.api)

    def run_job(self, job: JobSpec) -> JobStatus:
        if job.command[:1] == ["spark-submit"]:  # a Spark application: a SparkApplication of the operator
            app = from_command(job.command, job.envs, job.name)
            return self._spark().submit(app, job.name, self._job_ns(job.namespace), image=job.image,
                                        labels={k: dns_label(v) for k, v in job.labels.items()})
        if job.files:
            raise ExecutorError(f"job {job.name!r}: files ({', '.join(sorted(job.files))}) are placed on the local "
                                "cluster only; on Kubernetes put them in a Secret and mount it")
        ns = self._job_ns(job.namespace)
        body = jobrun.job_manifest(job, ns)
        try:
            self.batch.create_namespaced_job(ns, body, field_manager=FIELD_MANAGER)
        except ApiException as exc:
            if exc.status != 409:  # 409: it exists already, which is the point of the name
                raise ExecutorError(f"creating job {body['metadata']['name']}: {_reason(exc)}")
        return self.job_status(job.name, ns)

    def job_status(self, name: str, namespace: str = "") -> JobStatus:
        ns = self._job_ns(namespace)
        name = dns_label(name)
        try:
            job = self.batch.read_namespaced_job(name, ns)
        except ApiException as exc:
            if exc.status == 404:  # no Job: a SparkApplication or a `flink` step's resource, or nothing
                found = self._spark().status(name, ns)  # MISSING without one (or without the CRD)
                return found if found.state is not JobState.MISSING else self._flink_step_status(name, ns)
            raise ExecutorError(_reason(exc))
        pods = self.core.list_namespaced_pod(ns, label_selector=f"batch.kubernetes.io/job-name={name}").items
        return jobrun.job_status(_plain(self.api, job), [_plain(self.api, p) for p in pods])

    def wait_job(self, name: str, namespace: str = "", timeout: float = 300) -> JobStatus:
        """The job's status once it has finished (watching the Job); TimeoutError otherwise."""
        ns, name = self._job_ns(namespace), dns_label(name)
        deadline = time.monotonic() + timeout
        status = self.job_status(name, ns)
        while not status.state.finished:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"job {name}: still {status.state} after {timeout:.0f}s")
            w = watch.Watch()
            for _ in w.stream(
                self.batch.list_namespaced_job, ns, field_selector=f"metadata.name={name}",
                timeout_seconds=max(1, int(min(remaining, 30))),
            ):
                status = self.job_status(name, ns)
                if status.state.finished:
                    w.stop()
                    break
            status = self.job_status(name, ns)
        return status

    def cancel_job(self, name: str, namespace: str = "") -> None:
        ns, name = self._job_ns(namespace), dns_label(name)
        body = {"metadata": {"annotations": {jobrun.CANCELLED: "true"}}, "spec": {"suspend": True}}
        try:
            self.batch.patch_namespaced_job(name, ns, body)
        except ApiException as exc:
            if exc.status != 404:
                raise ExecutorError(_reason(exc))
            if not self._spark().cancel(name, ns):  # the operator kills its driver and executors
                found = self._flink_step(name, ns)
                if found is not None:  # suspended: the operator stops the job
                    self._flink_jobs().cancel(found[0], name, ns)

    def job_logs(self, name: str, namespace: str = "", *, follow: bool = False) -> Iterator[LogLine]:
        ns, name = self._job_ns(namespace), dns_label(name)
        found = self._flink_step(name, ns) if not self._has_job(name, ns) else None
        if found is not None:  # a `flink` step: what the operator says of its job
            status = self._flink_step_status(name, ns)
            return iter([LogLine(source=name, number=1, timestamp=time.time(),
                                 text=f"{found[0]} {name}: {status.message or status.state.value}")])
        pods = self.core.list_namespaced_pod(ns, label_selector=f"batch.kubernetes.io/job-name={name}").items
        # A pod may name the container whose log is the job's (pipeline steps: the agent sidecar,
        # as the step container's output goes to files the agent numbers and streams).
        container = next((p.metadata.annotations.get(jobrun.LOG_CONTAINER) for p in pods
                          if p.metadata.annotations and p.metadata.annotations.get(jobrun.LOG_CONTAINER)), None)
        def names() -> list[str]:
            found = self.core.list_namespaced_pod(ns, label_selector=f"batch.kubernetes.io/job-name={name}").items
            return [p.metadata.name for p in found]

        return jobrun.pod_logs(self.core, ns, [p.metadata.name for p in pods], container, follow, None,
                               list_pods=names)


    def job_log_version(self, name: str, namespace: str = "") -> None:
        return None  # a pod's log has no cheap version: every read is a read

    def job_batch(self):
        return no_batch()

    # ---- pipeline steps ------------------------------------------------------------------

    def _create(self, fn, *args) -> Any:
        """Create an object unless it exists (409: the point of deterministic names); None then."""
        try:
            return fn(*args, field_manager=FIELD_MANAGER)
        except ApiException as exc:
            if exc.status != 409:
                body = args[-1]
                raise ExecutorError(f"creating {body['kind']} {body['metadata'].get('name')}: {_reason(exc)}") from None
            return None

    # ---- the `flink` action through the Flink operator -------------------------------------

    def _flink_jobs(self) -> OperatorJobs:
        return OperatorJobs(client.CustomObjectsApi(self.api))

    def _has_job(self, name: str, ns: str) -> bool:
        try:
            self.batch.read_namespaced_job(name, ns)
            return True
        except ApiException as exc:
            if exc.status == 404:
                return False
            raise ExecutorError(_reason(exc))

    def _flink_step(self, name: str, ns: str) -> tuple[str, dict] | None:
        """(kind, resource) of a `flink` step's FlinkDeployment or FlinkSessionJob, or of a run of
        an `engine: flink` dice.yml job (labelled with its job), or None."""
        jobs = self._flink_jobs()
        for kind in ("FlinkDeployment", "FlinkSessionJob"):
            obj = jobs.get(kind, name, ns)
            meta = (obj or {}).get("metadata") or {}
            if obj is not None and (STEP_ANNOTATION in (meta.get("annotations") or {})
                                    or JOB_LABEL in (meta.get("labels") or {})):
                return kind, obj
        return None

    def _flink_step_status(self, name: str, ns: str) -> JobStatus:
        found = self._flink_step(name, ns)
        if found is None:
            return JobStatus(name=name, state=JobState.MISSING)
        status, expired = step_status(name, found[1])
        if expired:
            self._flink_jobs().cancel(found[0], name, ns)
        return status

    def _start_flink_step(self, step: StepJob) -> JobStatus:
        """The `flink` action where the workspace has no Flink data cluster: the operator's
        resource in the step's namespace (scheduler.flink.operator.step_resource), or refused
        naming the missing CRD."""
        action = action_params(step.spec.get("params") or {}, f"step {step.spec.get('alias') or step.name}")
        run_dirs = [d for d in [step.spec.get("workdir"), *(step.spec.get("dirs") or {}).values()] if d]
        if any(action.resource == d or action.resource.startswith(d.rstrip("/") + "/") for d in run_dirs):
            raise ExecutorError(f"the flink action {step.spec.get('alias') or step.name!r}: {action.resource!r} is in the "
                                "run's directories, which the Flink operator's pods never see: give the jar as a URL "
                                "or a path in the image, or bind a Flink data cluster to the workspace (its steps "
                                "read the run's directories)")
        crd = SESSION_JOB_CRD if action.kind == "FlinkSession" else DEPLOYMENT_CRD
        if crd not in self.operators():
            raise ExecutorUnavailable(f"the flink action {step.spec.get('alias') or step.name!r}: "
                                      + NO_OPERATOR.format(crd=crd))
        secret = f"{dns_label(step.name)[:58]}-env"
        env, data = flink_step_env(step.spec, tuple(step.secrets) + tuple(step.spec.get("mask") or ()), secret)
        body = step_resource(step.name, step.namespace, action, timeout=step.timeout,
                             labels={k: dns_label(v) for k, v in step.labels.items()}, env=env)
        self._create(self.core.create_namespace, {"apiVersion": "v1", "kind": "Namespace", "metadata": {
            "name": step.namespace, "labels": {"app.kubernetes.io/managed-by": MANAGED_BY, "dice.io/pipelines": "true"}}})
        jobs = self._flink_jobs()
        jobs.submit(body)
        if data and body["kind"] == "FlinkDeployment":  # the secret values, owned by the resource that reads them
            created = jobs.get(body["kind"], body["metadata"]["name"], step.namespace) or {}
            owner = {"apiVersion": body["apiVersion"], "kind": body["kind"], "name": body["metadata"]["name"],
                     "uid": (created.get("metadata") or {}).get("uid", ""), "blockOwnerDeletion": False}
            self._create(self.core.create_namespaced_secret, step.namespace, {
                "apiVersion": "v1", "kind": "Secret", "type": "Opaque",
                "metadata": {"name": secret, "namespace": step.namespace, "ownerReferences": [owner],
                             "labels": {"app.kubernetes.io/managed-by": MANAGED_BY}},
                "stringData": data})
        return self._flink_step_status(dns_label(step.name), step.namespace)

    def start_step(self, step: StepJob) -> JobStatus:
        """Create the step's namespace, Job and Secret (owned by the Job), each only if absent;
        then read the Job. A `flink` action is the Flink operator's resource instead."""
        if step.spec.get("type") == "flink":
            return self._start_flink_step(step)
        job, secret = steps.step_objects(step)
        ns, name = step.namespace, job["metadata"]["name"]
        self._create(self.core.create_namespace, {"apiVersion": "v1", "kind": "Namespace", "metadata": {
            "name": ns, "labels": {"app.kubernetes.io/managed-by": MANAGED_BY, "dice.io/pipelines": "true"}}})
        created = self._create(self.batch.create_namespaced_job, ns, job)
        try:
            uid = created.metadata.uid if created is not None else self.batch.read_namespaced_job(name, ns).metadata.uid
        except ApiException as exc:
            raise ExecutorError(f"reading job {name}: {_reason(exc)}") from None
        secret["metadata"]["ownerReferences"] = [{"apiVersion": "batch/v1", "kind": "Job", "name": name,
                                                  "uid": uid, "blockOwnerDeletion": False}]
        self._create(self.core.create_namespaced_secret, ns, secret)
        return self.job_status(step.name, ns)

    def step_result(self, name: str, namespace: str, status: JobStatus) -> StepResult | None:
        if status.state not in (JobState.SUCCEEDED, JobState.FAILED):
            return None
        ns = self._job_ns(namespace)
        if not self._has_job(dns_label(name), ns):
            found = self._flink_step(dns_label(name), ns)
            if found is not None:  # a `flink` step: its job's final state is its result
                return StepResult(exit_code=status.exit_code if status.exit_code is not None else 1,
                                  outputs={"kind": found[0], "state": status.message.split(" ")[0] or status.state.value},
                                  finished=time.time(), timed_out=status.exit_code == 124,
                                  error="" if status.state is JobState.SUCCEEDED else status.message)
        try:
            pods = self.core.list_namespaced_pod(
                self._job_ns(namespace), label_selector=f"batch.kubernetes.io/job-name={dns_label(name)}").items
        except Exception:
            pods = []
        return steps.result_from(status, pods)

    # ---- inspection ----------------------------------------------------------------------

    def check(self) -> dict[str, Any]:
        try:
            api = self.api
        except ExecutorUnavailable as exc:
            return base_report(False, error=str(exc))
        report = inspect.check(api)
        features = CAPABILITIES.as_dict()
        installed = {o["key"] for o in report["operators"] if o.get("installed")}
        features["broadcast_jobs"] = "kruise" in installed  # BroadcastJob through OpenKruise
        features["operator_addons"] = sorted(OPERATORS[k].makes for k in installed if k != "kruise")
        report["metrics"] = metrics_mod.report(api)  # which source usage() reads
        features["metrics"] = bool(report["metrics"]["source"])
        # `engine: flink` services and the flink action (FlinkDeployment / FlinkSessionJob): only with
        # the Flink operator's CRDs; without them they are refused naming the missing CRD
        features["engines"] = ["flink"] if "flink-operator" in installed else []
        report["features"] = features
        return report

    def snapshot(self) -> dict[str, Any]:
        return inspect.snapshot(self.api)

    def set_node_labels(self, node: str, labels: dict[str, str | None]) -> dict[str, str]:
        return inspect.set_node_labels(self.api, node, labels)

    def inspection_data(self) -> dict[str, Any]:
        return inspect.inspection_data(self.api)

    def node_usage(self) -> list[NodeUsage] | None:
        return metrics_mod.node_usage(self.api)


def _reason(exc: ApiException) -> str:
    try:
        import json

        return json.loads(exc.body).get("message") or exc.reason
    except Exception:
        return str(exc.reason)
