"""Health of operator-backed addons, read from their custom resources as each operator reports it.

The driver records the custom resources it applied on the runtime's Namespace (annotation
`dice.io/addon-resources`), so status() reads exactly those, one GET each, and the status watch
follows their kinds. An addon whose resource has no status yet (the operator has not reconciled
it, or is not running) is Progressing, never Healthy: a deployment is not healthy while its
database is not.

| kind (operator)                 | healthy when                                                        |
|---------------------------------|---------------------------------------------------------------------|
| Cluster (CloudNativePG)         | status.phase "Cluster in healthy state", readyInstances >= instances |
| InnoDBCluster (MySQL Operator)  | status.cluster.status ONLINE, onlineInstances >= instances           |
| Redis, RedisReplication (OT)    | the StatefulSet the operator made (same name) has every replica ready; RedisReplication also needs status.masterNode |
| Elasticsearch (ECK)             | status.phase Ready and health green or yellow (red: Degraded)        |
| Kafka (Strimzi)                 | condition Ready True (NotReady with a reason: Degraded)              |
| RabbitmqCluster (RabbitMQ)      | conditions AllReplicasReady and ReconcileSuccess True                |
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass

from scheduler.base import Health, JobStatus, ServiceStatus
from scheduler.flink.operator import deployment_health, status_of

ANNOTATION = "dice.io/addon-resources"


@dataclass(frozen=True)
class CustomKind:
    api_version: str
    kind: str
    plural: str
    # (the resource, the StatefulSet of the same name or None) -> (health, desired, ready, reason)
    judge: Callable[[dict, dict | None], tuple[Health, int, int, str]]

    @property
    def group(self) -> str:
        return self.api_version.partition("/")[0]

    @property
    def version(self) -> str:
        return self.api_version.partition("/")[2]


def _conditions(obj: dict) -> dict[str, dict]:
    return {c.get("type", ""): c for c in (obj.get("status") or {}).get("conditions") or []}


def _no_status(obj: dict) -> bool:
    return not obj.get("status")


WAITING = "waiting for the operator to report status"


def _cnpg(obj: dict, sts: dict | None) -> tuple[Health, int, int, str]:
    desired = int((obj.get("spec") or {}).get("instances") or 1)
    st = obj.get("status") or {}
    ready = int(st.get("readyInstances") or 0)
    phase = st.get("phase") or ""
    if not phase:
        return Health.PROGRESSING, desired, ready, WAITING
    if phase == "Cluster in healthy state" and ready >= desired:
        return Health.HEALTHY, desired, ready, ""
    reason = f"{phase}: {st.get('phaseReason')}" if st.get("phaseReason") else phase
    bad = any(w in phase.lower() for w in ("fail", "error", "unrecoverable", "cannot"))
    return (Health.DEGRADED if bad else Health.PROGRESSING), desired, ready, reason


def _innodb(obj: dict, sts: dict | None) -> tuple[Health, int, int, str]:
    desired = int((obj.get("spec") or {}).get("instances") or 1)
    cluster = (obj.get("status") or {}).get("cluster") or {}
    ready = int(cluster.get("onlineInstances") or 0)
    state = str(cluster.get("status") or "")
    if not state:
        return Health.PROGRESSING, desired, ready, WAITING
    if state == "ONLINE" and ready >= desired:
        return Health.HEALTHY, desired, ready, ""
    bad = state in ("OFFLINE", "NO_QUORUM", "SPLIT_BRAIN", "ERROR", "INVALID")
    return (Health.DEGRADED if bad else Health.PROGRESSING), desired, ready, f"cluster {state}"


def _statefulset_ready(sts: dict | None, desired: int) -> tuple[int, bool]:
    if sts is None:
        return 0, False
    ready = int((sts.get("status") or {}).get("readyReplicas") or 0)
    return ready, ready >= desired


def _ot_redis(obj: dict, sts: dict | None) -> tuple[Health, int, int, str]:
    desired = 1
    ready, done = _statefulset_ready(sts, desired)
    if sts is None:
        return Health.PROGRESSING, desired, ready, "waiting for the operator to make its StatefulSet"
    return (Health.HEALTHY, desired, ready, "") if done else (Health.PROGRESSING, desired, ready, "starting")


def _ot_replication(obj: dict, sts: dict | None) -> tuple[Health, int, int, str]:
    desired = int((obj.get("spec") or {}).get("clusterSize") or 1)
    ready, done = _statefulset_ready(sts, desired)
    if sts is None:
        return Health.PROGRESSING, desired, ready, "waiting for the operator to make its StatefulSet"
    if not done:
        return Health.PROGRESSING, desired, ready, "starting"
    if not (obj.get("status") or {}).get("masterNode"):
        return Health.PROGRESSING, desired, ready, "no master elected yet"
    return Health.HEALTHY, desired, ready, ""


def _eck(obj: dict, sts: dict | None) -> tuple[Health, int, int, str]:
    desired = sum(int(n.get("count") or 0) for n in (obj.get("spec") or {}).get("nodeSets") or []) or 1
    st = obj.get("status") or {}
    ready = int(st.get("availableNodes") or 0)
    if _no_status(obj):
        return Health.PROGRESSING, desired, ready, WAITING
    health, phase = str(st.get("health") or "unknown"), str(st.get("phase") or "")
    if health == "red":
        return Health.DEGRADED, desired, ready, f"health red ({phase})".replace(" ()", "")
    if phase == "Ready" and health in ("green", "yellow") and ready >= desired:
        return Health.HEALTHY, desired, ready, ""
    return Health.PROGRESSING, desired, ready, f"{phase or 'reconciling'}, health {health}"


def _strimzi(obj: dict, sts: dict | None) -> tuple[Health, int, int, str]:
    conditions = _conditions(obj)
    ready = conditions.get("Ready") or {}
    if ready.get("status") == "True":
        return Health.HEALTHY, 1, 1, ""
    not_ready = conditions.get("NotReady") or {}
    if ready.get("status") == "False" or not_ready.get("status") == "True":
        cond = ready if ready.get("status") == "False" else not_ready
        reason = ": ".join(x for x in (cond.get("reason"), cond.get("message")) if x) or "not ready"
        # Strimzi reports NotReady while it creates the cluster: only an error reason is a failure.
        bad = any(w in reason.lower() for w in ("error", "exception", "invalid", "fail"))
        return (Health.DEGRADED if bad else Health.PROGRESSING), 1, 0, reason
    return Health.PROGRESSING, 1, 0, WAITING


def _rabbitmq(obj: dict, sts: dict | None) -> tuple[Health, int, int, str]:
    desired = int((obj.get("spec") or {}).get("replicas") or 1)
    conditions = _conditions(obj)
    if not conditions:
        return Health.PROGRESSING, desired, 0, WAITING
    replicas = conditions.get("AllReplicasReady") or {}
    reconcile = conditions.get("ReconcileSuccess") or {}
    ready = desired if replicas.get("status") == "True" else 0
    if replicas.get("status") == "True" and reconcile.get("status", "True") == "True":
        return Health.HEALTHY, desired, ready, ""
    if reconcile.get("status") == "False":
        return Health.DEGRADED, desired, ready, f"reconcile failed: {reconcile.get('message', '')}".rstrip(": ")
    return Health.PROGRESSING, desired, ready, replicas.get("message") or "replicas not ready"


CUSTOM_HEALTH: dict[tuple[str, str], CustomKind] = {
    (k.api_version, k.kind): k
    for k in (
        CustomKind("postgresql.cnpg.io/v1", "Cluster", "clusters", _cnpg),
        CustomKind("mysql.oracle.com/v2", "InnoDBCluster", "innodbclusters", _innodb),
        CustomKind("redis.redis.opstreelabs.in/v1beta2", "Redis", "redis", _ot_redis),
        CustomKind("redis.redis.opstreelabs.in/v1beta2", "RedisReplication", "redisreplications", _ot_replication),
        CustomKind("elasticsearch.k8s.elastic.co/v1", "Elasticsearch", "elasticsearches", _eck),
        CustomKind("kafka.strimzi.io/v1", "Kafka", "kafkas", _strimzi),
        CustomKind("rabbitmq.com/v1beta1", "RabbitmqCluster", "rabbitmqclusters", _rabbitmq),
        # an `engine: flink` service's streaming job (scheduler/flink/operator.py): a service, not an addon
        CustomKind("flink.apache.org/v1beta1", "FlinkDeployment", "flinkdeployments", deployment_health),
        # an `engine: flink` job on a session deployment (judged as a job: status_of)
        CustomKind("flink.apache.org/v1beta1", "FlinkSessionJob", "flinksessionjobs", deployment_health),
    )
}
# Custom resources that are a service's, not an addon's: recorded as "service:<name>", and
# status.group_status puts them among the services.
SERVICE_KINDS = {("flink.apache.org/v1beta1", "FlinkDeployment")}
SERVICE_PREFIX = "service:"
# ... and those that are a dice.yml job's run (`engine: flink` jobs: label dice.io/job), recorded
# as "job:<name>": custom_status gives their JobStatus, group_status puts them among the jobs.
JOB_KINDS = {("flink.apache.org/v1beta1", "FlinkDeployment"), ("flink.apache.org/v1beta1", "FlinkSessionJob")}
JOB_PREFIX = "job:"
# Made by the renderer but judged through another resource (Strimzi's node pool: its Kafka).
JUDGED_ELSEWHERE = {("kafka.strimzi.io/v1", "KafkaNodePool")}


def addon_resources(manifests: list[dict]) -> list[list[str]]:
    """[apiVersion, kind, name, addon] of each addon custom resource among the manifests."""
    out = []
    for obj in manifests:
        key = (obj.get("apiVersion"), obj.get("kind"))
        if key in CUSTOM_HEALTH:
            meta = obj["metadata"]
            labels = meta.get("labels") or {}
            if key in JOB_KINDS and "dice.io/job" in labels:
                addon = JOB_PREFIX + labels["dice.io/job"]
            elif key in SERVICE_KINDS:
                addon = SERVICE_PREFIX + labels.get("dice.io/service", meta["name"])
            else:
                addon = labels.get("dice.io/addon", meta["name"])
            out.append([obj["apiVersion"], obj["kind"], meta["name"], addon])
    return out


def recorded(namespace: dict) -> list[tuple[CustomKind, str, str]]:
    """(kind, name, addon) of what the Namespace's annotation lists; unknown kinds are skipped."""
    text = ((namespace.get("metadata") or {}).get("annotations") or {}).get(ANNOTATION) or "[]"
    try:
        items = json.loads(text)
    except ValueError:
        return []
    out = []
    for item in items if isinstance(items, list) else []:
        if isinstance(item, list) and len(item) == 4 and (item[0], item[1]) in CUSTOM_HEALTH:
            out.append((CUSTOM_HEALTH[(item[0], item[1])], str(item[2]), str(item[3])))
    return out


def custom_status(addon: str, kind: CustomKind, obj: dict | None, sts: dict | None) -> ServiceStatus | JobStatus:
    """The addon's status from its custom resource (None: it does not exist); a job's run
    ("job:<name>") has a JobStatus, named after its resource."""
    if addon.startswith(JOB_PREFIX):
        return status_of(str(((obj or {}).get("metadata") or {}).get("name") or addon[len(JOB_PREFIX):]), obj)
    if obj is None:
        return ServiceStatus(name=addon, desired=0, health=Health.MISSING, reason=f"{kind.kind} {addon} not found")
    health, desired, ready, reason = kind.judge(obj, sts)
    if reason:
        reason = f"{kind.kind}: {reason}"
    return ServiceStatus(name=addon, desired=desired, ready=ready, available=ready,
                         updated=ready, health=health, reason=reason)
