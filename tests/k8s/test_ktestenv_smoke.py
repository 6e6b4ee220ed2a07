"""Proof that the k8s tier talks to a real API server: controllers, scheduler, admission,
validation, server-side apply, CRD schemas and watches behave as in a real cluster."""

from __future__ import annotations

import json
import threading
import time
import uuid
from pathlib import Path

import pytest
import yaml
from kubernetes.client.exceptions import ApiException

from .conftest import ROOT, K8sCluster, wait_for

pytestmark = pytest.mark.k8s

RABBITMQ_CRD = ROOT / "tests" / "data" / "crds" / "rabbitmq.yaml"  # ours: the fields our renderer writes

WAIT = 60  # seconds; every wait below is bounded


def _labels(name: str) -> dict[str, str]:
    return {"app": name}


def _pod_template(name: str, restart_policy: str = "Always") -> dict:
    return {
        "metadata": {"labels": _labels(name)},
        "spec": {
            "restartPolicy": restart_policy,
            "containers": [{"name": "main", "image": "registry.invalid/dice/smoke:1",
                            "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}}}],
        },
    }


def _error_body(exc: ApiException) -> dict:
    try:
        return json.loads(exc.body or "{}")
    except ValueError:
        return {}


def test_deployment_reaches_ready_replicas(k8s_cluster: K8sCluster, k8s_namespace: str):
    ns, apps, core = k8s_namespace, k8s_cluster.apps, k8s_cluster.core
    apps.create_namespaced_deployment(ns, {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web"},
        "spec": {"replicas": 2, "selector": {"matchLabels": _labels("web")},
                 "template": _pod_template("web")},
    })

    dep = wait_for(lambda: (d := apps.read_namespaced_deployment_status("web", ns)).status.ready_replicas == 2
                   and d, WAIT, "deployment web to have 2 ready replicas")
    assert dep.status.available_replicas == 2

    pods = core.list_namespaced_pod(ns, label_selector="app=web").items
    assert len(pods) == 2
    for pod in pods:
        assert pod.status.phase == "Running"
        assert pod.spec.node_name in k8s_cluster.nodes  # placed by kube-scheduler
        assert any(c.type == "Ready" and c.status == "True" for c in pod.status.conditions)
        assert pod.status.pod_ip  # set by kwok


def test_job_completes(k8s_cluster: K8sCluster, k8s_namespace: str):
    ns, batch, core = k8s_namespace, k8s_cluster.batch, k8s_cluster.core
    batch.create_namespaced_job(ns, {
        "apiVersion": "batch/v1", "kind": "Job",
        "metadata": {"name": "once"},
        "spec": {"backoffLimit": 0, "template": _pod_template("once", restart_policy="Never")},
    })

    job = wait_for(lambda: (j := batch.read_namespaced_job_status("once", ns)).status.succeeded == 1 and j,
                   WAIT, "job once to succeed")
    wait_for(lambda: any(c.type == "Complete" and c.status == "True"
                         for c in (batch.read_namespaced_job_status("once", ns).status.conditions or [])),
             WAIT, "job once to have condition Complete")
    assert job.status.succeeded == 1
    pods = core.list_namespaced_pod(ns, label_selector="app=once").items
    assert [p.status.phase for p in pods] == ["Succeeded"]


def test_server_side_apply_conflict_and_force(k8s_cluster: K8sCluster, k8s_namespace: str):
    ns, core = k8s_namespace, k8s_cluster.core
    apply = "application/apply-patch+yaml"

    def cm(value: str) -> dict:
        return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "ssa", "namespace": ns},
                "data": {"key": value}}

    core.patch_namespaced_config_map("ssa", ns, cm("one"), field_manager="dice-a", _content_type=apply)

    with pytest.raises(ApiException) as err:
        core.patch_namespaced_config_map("ssa", ns, cm("two"), field_manager="dice-b", _content_type=apply)
    assert err.value.status == 409
    body = _error_body(err.value)
    assert body.get("reason") == "Conflict"
    assert 'conflict with "dice-a"' in body.get("message", ""), body

    got = core.patch_namespaced_config_map("ssa", ns, cm("two"), field_manager="dice-b", force=True,
                                           _content_type=apply)
    assert got.data == {"key": "two"}
    managers = {m.manager for m in got.metadata.managed_fields if m.operation == "Apply"}
    assert "dice-b" in managers


def test_invalid_object_is_rejected_with_validation_message(k8s_cluster: K8sCluster, k8s_namespace: str):
    ns = k8s_namespace
    with pytest.raises(ApiException) as err:
        k8s_cluster.apps.create_namespaced_deployment(ns, {
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "Bad_Name"},
            "spec": {"replicas": -1, "selector": {"matchLabels": _labels("bad")},
                     "template": _pod_template("bad")},
        })
    assert err.value.status == 422
    body = _error_body(err.value)
    assert body.get("reason") == "Invalid"
    message = body.get("message", "")
    assert 'Deployment.apps "Bad_Name" is invalid' in message
    assert "spec.replicas: Invalid value: -1: must be greater than or equal to 0" in message
    assert "a lowercase RFC 1123 subdomain" in message


def test_crd_installs_and_schema_is_enforced(k8s_cluster: K8sCluster, k8s_namespace: str):
    ns, ext, custom = k8s_namespace, k8s_cluster.apiextensions, k8s_cluster.custom
    crd = next(d for d in yaml.safe_load_all(RABBITMQ_CRD.read_text()) if d)
    name = crd["metadata"]["name"]
    group, plural = crd["spec"]["group"], crd["spec"]["names"]["plural"]
    version = next(v["name"] for v in crd["spec"]["versions"] if v.get("storage"))

    try:
        ext.create_custom_resource_definition(crd, _preload_content=False)
    except ApiException as exc:
        if exc.status != 409:  # already there from an earlier test in this session
            raise

    def established() -> bool:
        resp = ext.read_custom_resource_definition(name, _preload_content=False)
        conditions = json.loads(resp.data)["status"].get("conditions", [])
        return any(c["type"] == "Established" and c["status"] == "True" for c in conditions)

    wait_for(established, WAIT, f"CRD {name} to be Established")

    def cr(replicas) -> dict:
        return {"apiVersion": f"{group}/{version}", "kind": crd["spec"]["names"]["kind"],
                "metadata": {"name": f"rmq-{uuid.uuid4().hex[:6]}"}, "spec": {"replicas": replicas}}

    # Discovery catches up shortly after Established: retry only on 404.
    def create_valid():
        try:
            return custom.create_namespaced_custom_object(group, version, ns, plural, cr(3))
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise

    created = wait_for(create_valid, WAIT, "the custom resource endpoint")
    assert created["spec"]["replicas"] == 3

    with pytest.raises(ApiException) as err:
        custom.create_namespaced_custom_object(group, version, ns, plural, cr(-1))
    assert err.value.status == 422
    message = _error_body(err.value).get("message", "")
    assert "spec.replicas" in message and "should be greater than or equal to 0" in message, message

    with pytest.raises(ApiException) as err:
        custom.create_namespaced_custom_object(group, version, ns, plural, cr("three"))
    assert err.value.status == 422
    assert 'spec.replicas: Invalid value: "string": spec.replicas in body must be of type integer' in (
        _error_body(err.value).get("message", ""))


class _Informer(threading.Thread):
    """List+watch ConfigMaps of a namespace like a client-go informer: on a dropped connection
    resume from the last resourceVersion; on 410 Gone re-list. Records what it saw."""

    def __init__(self, cluster: K8sCluster, namespace: str):
        super().__init__(daemon=True)
        self.cluster, self.ns = cluster, namespace
        self.stop_event = threading.Event()
        self.seen: list[tuple[str, str]] = []  # (event type, name)
        self.watches = 0
        self.resumed_with_rv = 0  # watches (after the first) started from a previously seen RV
        self.relists = 0
        self.errors: list[str] = []
        self.lock = threading.Lock()

    def names(self, event_type: str = "ADDED") -> set[str]:
        with self.lock:
            return {n for t, n in self.seen if t == event_type}

    def _list(self) -> str:
        from kubernetes import client

        lst = client.CoreV1Api(self.cluster.api_client).list_namespaced_config_map(self.ns)
        with self.lock:
            self.seen.extend(("LISTED", i.metadata.name) for i in lst.items)
        return lst.metadata.resource_version

    def run(self) -> None:
        from kubernetes import client, watch

        core = client.CoreV1Api(self.cluster.api_client)
        rv = None
        while not self.stop_event.is_set():
            try:
                if rv is None:
                    rv = self._list()
                    self.relists += 1
                elif self.watches:
                    self.resumed_with_rv += 1
                self.watches += 1
                w = watch.Watch()
                for ev in w.stream(core.list_namespaced_config_map, self.ns, resource_version=rv,
                                   timeout_seconds=5, allow_watch_bookmarks=True, _request_timeout=30):
                    if self.stop_event.is_set():
                        w.stop()
                        break
                    obj = ev["object"]
                    if ev["type"] == "ERROR":
                        code = obj.get("code") if isinstance(obj, dict) else getattr(obj, "code", None)
                        if code == 410:
                            rv = None  # too old: re-list
                            break
                        raise RuntimeError(f"watch error event: {obj}")
                    rv = obj.metadata.resource_version
                    if ev["type"] != "BOOKMARK":
                        with self.lock:
                            self.seen.append((ev["type"], obj.metadata.name))
            except ApiException as exc:
                if exc.status == 410:
                    rv = None
                else:
                    self.errors.append(f"{exc.status}")
                    time.sleep(0.1)
            except Exception as exc:
                self.errors.append(type(exc).__name__)
                time.sleep(0.1)


def test_watch_resumes_after_apiserver_restart(k8s_cluster: K8sCluster, k8s_namespace: str):
    ns, core = k8s_namespace, k8s_cluster.core
    informer = _Informer(k8s_cluster, ns)
    informer.start()
    try:
        core.create_namespaced_config_map(ns, {"metadata": {"name": "before"}})
        # The informer's first list may already include it (thread start-up races the create).
        wait_for(lambda: "before" in informer.names("ADDED") | informer.names("LISTED"), WAIT,
                 "the informer to see 'before'")

        k8s_cluster.restart_apiserver()
        core.create_namespaced_config_map(ns, {"metadata": {"name": "after"}})

        def seen_after() -> bool:
            return "after" in informer.names("ADDED") or (
                "after" in informer.names("LISTED") and informer.relists > 1)

        wait_for(seen_after, WAIT, "the informer to see 'after' (made after the restart)")
        if "after" not in informer.names():
            # Re-listed after 410 Gone: the next change must still arrive as a watch event.
            core.create_namespaced_config_map(ns, {"metadata": {"name": "after-2"}})
            wait_for(lambda: "after-2" in informer.names(), WAIT, "a watch event after the re-list")
        print(f"\nwatch after restart: watches={informer.watches} resumed_with_rv={informer.resumed_with_rv} "
              f"relists={informer.relists} errors={informer.errors[:5]}")
        assert informer.watches >= 2, "the watch was not re-established"
        assert informer.resumed_with_rv >= 1 or informer.relists >= 2
    finally:
        informer.stop_event.set()
        informer.join(timeout=15)
    # The API server that answers now is a new process: the cluster survived the restart.
    assert k8s_cluster.state()["apiserver_restarts"] >= 1
    assert core.read_namespaced_config_map("before", ns).metadata.name == "before"


def test_only_loopback_listeners(k8s_cluster: K8sCluster):
    """Every socket the control plane listens on is bound to 127.0.0.1."""
    pids = set(k8s_cluster.pids().values())
    inodes: set[str] = set()
    for pid in pids:
        fd_dir = Path(f"/proc/{pid}/fd")
        try:
            for fd in fd_dir.iterdir():
                try:
                    target = fd.readlink().as_posix()
                except OSError:
                    continue
                if target.startswith("socket:["):
                    inodes.add(target[8:-1])
        except OSError:
            continue
    listening = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            cols = line.split()
            if cols[3] == "0A" and cols[9] in inodes:  # 0A = LISTEN
                listening.append(cols[1])
    assert listening, "no listening sockets found for the control plane"
    bad = [a for a in listening if not a.startswith("0100007F:")]  # 127.0.0.1, little endian
    assert not bad, f"sockets not bound to 127.0.0.1: {bad}"
