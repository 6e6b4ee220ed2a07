"""Health of a Kubernetes runtime from plain objects: healthy, progressing, and each degraded reason."""

from __future__ import annotations

from scheduler.base import Health, RuntimeRef
from scheduler.kubernetes.status import group_status, workload_status

RT = RuntimeRef("o", "p", "a", "DEV", "main")


def deployment(replicas=2, ready=2, updated=2, available=2, conditions=()):
    return {
        "kind": "Deployment",
        "metadata": {"name": "web", "generation": 2, "labels": {"dice.io/service": "web"}},
        "spec": {"replicas": replicas},
        "status": {"observedGeneration": 2, "readyReplicas": ready, "updatedReplicas": updated,
                   "availableReplicas": available, "conditions": list(conditions)},
    }


def pod(name="web-1", ready=True, waiting=None, unschedulable=False):
    conditions = [{"type": "Ready", "status": "True" if ready else "False"}]
    if unschedulable:
        conditions.append({"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                           "message": "0/2 nodes are available"})
    state = {"waiting": {"reason": waiting, "message": "back-off"}} if waiting else {"running": {}}
    return {"metadata": {"name": name, "labels": {"dice.io/service": "web"}},
            "status": {"phase": "Running" if ready else "Pending", "conditions": conditions,
                       "containerStatuses": [{"name": "web", "restartCount": 3 if waiting else 0, "state": state}]}}


def test_healthy():
    st = workload_status("web", deployment(), [pod("web-1"), pod("web-2")], [])
    assert st.health is Health.HEALTHY and (st.desired, st.ready, st.available) == (2, 2, 2)
    assert [r.name for r in st.replicas] == ["web-1", "web-2"]


def test_progressing():
    st = workload_status("web", deployment(ready=1, available=1), [pod("web-1"), pod("web-2", ready=False)], [])
    assert st.health is Health.PROGRESSING and st.reason == ""


def test_missing():
    assert workload_status("web", None, [], []).health is Health.MISSING


def test_image_pull_and_crash_loop():
    for reason in ("ImagePullBackOff", "CrashLoopBackOff"):
        st = workload_status("web", deployment(ready=1, available=1), [pod(), pod("web-2", False, reason)], [])
        assert st.health is Health.DEGRADED and st.reason.startswith(reason)


def test_unschedulable():
    st = workload_status("web", deployment(ready=0, available=0), [pod(ready=False, unschedulable=True)], [])
    assert st.health is Health.DEGRADED and st.reason.startswith("Unschedulable: 0/2")


def test_quota_from_replica_failure():
    cond = {"type": "ReplicaFailure", "status": "True", "reason": "FailedCreate",
            "message": 'pods "web-x" is forbidden: exceeded quota: q'}
    st = workload_status("web", deployment(ready=0, available=0, conditions=[cond]), [], [])
    assert st.health is Health.DEGRADED and st.reason.startswith("quota: ")


def test_probe_failure_from_events():
    ev = {"type": "Warning", "reason": "Unhealthy", "message": "Readiness probe failed: 503",
          "involvedObject": {"kind": "Pod", "name": "web-2"}, "lastTimestamp": "2026-01-01T00:00:00Z"}
    st = workload_status("web", deployment(ready=1, available=1), [pod(), pod("web-2", ready=False)], [ev])
    assert st.health is Health.DEGRADED and st.reason == "probe failed: Readiness probe failed: 503"


def test_group_health_is_the_worst_with_reason():
    addon = {"kind": "StatefulSet", "metadata": {"name": "db", "labels": {"dice.io/addon": "db"}},
             "spec": {"replicas": 1}, "status": {"readyReplicas": 1, "updatedReplicas": 1, "availableReplicas": 1}}
    g = group_status(RT, True, [deployment(ready=0, available=0), addon],
                     [pod(ready=False, waiting="ImagePullBackOff")], [])
    assert g.health is Health.DEGRADED and g.reason.startswith("service web: ImagePullBackOff")
    assert g.addons["db"].health is Health.HEALTHY
    assert group_status(RT, False, [], [], []).health is Health.MISSING
    assert group_status(RT, True, [deployment()], [pod(), pod("web-2")], []).health is Health.HEALTHY


def test_old_replicas_still_terminating_are_not_healthy():
    """Scaled 4 -> 3: ready 4 >= 3, but one old replica is still there (status.replicas 4)."""
    obj = deployment(replicas=3, ready=4, updated=3, available=4)
    obj["status"]["replicas"] = 4
    st = workload_status("web", obj, [pod("web-1"), pod("web-2"), pod("web-3")], [])
    assert st.health is Health.PROGRESSING
    obj["status"]["replicas"] = 3
    assert workload_status("web", obj, [pod("web-1"), pod("web-2"), pod("web-3")], []).health is Health.HEALTHY


def test_crash_loop_names_the_last_exit_code():
    crashing = pod("web-3", False, "CrashLoopBackOff")
    container = crashing["status"]["containerStatuses"][0]
    container["state"]["waiting"]["message"] = "back-off 10s restarting failed container=web"
    container["lastState"] = {"terminated": {"exitCode": 7, "reason": "Error"}}
    st = workload_status("web", deployment(ready=0, available=0), [crashing], [])
    assert st.reason == "CrashLoopBackOff: back-off 10s restarting failed container=web (last exit code 7, Error)"
