"""The engine boundary, checked: no import cycles between files (function-level imports count),
the layering contracts hold, one registry maps kinds to drivers, and apps ask capabilities."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest

from scheduler import registry
from scheduler.base import Capabilities, ClusterRef, ExecutorError, Inspector

ROOT = Path(__file__).resolve().parents[2]


def _cycles_module():
    spec = importlib.util.spec_from_file_location("import_cycles", ROOT / "tools" / "import_cycles.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_no_import_cycles_between_files():
    assert _cycles_module().import_cycles() == []


def test_the_cycle_check_sees_a_cycle_held_by_a_function_level_import(tmp_path, monkeypatch):
    package = tmp_path / "probe_pkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text("from probe_pkg import b\n")
    (package / "b.py").write_text("def later():\n    from probe_pkg import a\n    return a\n")
    (package / "c.py").write_text("from probe_pkg import a\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert _cycles_module().import_cycles(("probe_pkg",)) == [["probe_pkg.a", "probe_pkg.b", "probe_pkg.a"]]


def test_import_contracts_hold():
    done = subprocess.run([str(Path(sys.executable).with_name("lint-imports"))], cwd=ROOT, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:]
    assert "0 broken" in done.stdout


def test_no_kubernetes_and_no_kind_branches_outside_the_scheduler():
    """The grep-level facts of the boundary."""
    kube = re.compile(r"^\s*(import kubernetes|from kubernetes)", re.M)
    kind = re.compile(r"""\.kind\s*(==|!=)\s*["'](local|kubernetes|k8s|spark|flink)["']|getattr\([a-z_]+,\s*"kind"|"""
                      r"""kind\s*(==|!=)\s*ClusterKind\.""")
    internals = re.compile(r"executor\.(core|batch|kind)\b|\baccepting\(|\bjob_log_mark\b")
    found = []
    for top in ("apps", "dice_console", "dice_cli", "agent"):
        for path in (ROOT / top).rglob("*.py"):
            if "migrations" in path.parts:
                continue
            text = path.read_text(encoding="utf-8")
            found += [f"{path.relative_to(ROOT)}: kubernetes" for _ in kube.finditer(text)]
            if top == "apps":
                found += [f"{path.relative_to(ROOT)}: {m.group(0)}" for m in kind.finditer(text)]
                found += [f"{path.relative_to(ROOT)}: {m.group(0)}" for m in internals.finditer(text)]
    assert found == []


def test_one_registry_gives_each_kind_its_driver_and_capabilities(tmp_path):
    assert {"local", "kubernetes"} <= set(registry.kinds())
    local, kube = registry.capabilities("local"), registry.capabilities("kubernetes")
    assert local.release_files and local.in_memory_jobs and local.files and not local.images
    assert kube.images and kube.namespaces and kube.node_labels and kube.ingress and not kube.files
    inspector = registry.inspector_for(ClusterRef(name="local", kind="local", config={"root": str(tmp_path)}))
    assert isinstance(inspector, Inspector)
    report = inspector.check()
    assert report["reachable"] and report["features"] == local.as_dict()
    assert [n["name"] for n in inspector.snapshot()["nodes"]]  # the machine itself
    assert list(tmp_path.iterdir()) == []  # inspecting neither locked nor supervised the root
    with pytest.raises(ExecutorError, match="no driver for cluster kind 'yarn'"):
        registry.executor_for(ClusterRef(name="x", kind="yarn"))


def test_a_kind_registered_at_run_time_is_asked_like_the_others():
    caps = Capabilities(namespaces=True)
    registry.register("probe-kind", lambda cluster: "an executor", caps)
    try:
        assert registry.capabilities("probe-kind") is caps
        assert registry.executor_for(ClusterRef(name="p", kind="probe-kind")) == "an executor"
    finally:
        registry._REGISTERED.pop("probe-kind")


def test_a_kubernetes_cluster_without_credentials_is_refused_not_connected_in_cluster():
    inspector = registry.inspector_for(ClusterRef(name="bare", kind="kubernetes", config={"kubeconfig": ""}))
    report = inspector.check()
    assert not report["reachable"] and report["error"] == "cluster bare: no credentials to connect with"


@pytest.mark.parametrize("text", ["500m", "2Gi", "1e3", "4", "1.5", "100Mi", "3k", "1E", "0.5Ki", "12n", "+7M"])
def test_quantities_are_read_as_kubernetes_reads_them(text):
    from kubernetes.utils import parse_quantity as theirs

    from scheduler.resources import parse_quantity

    assert parse_quantity(text) == theirs(text)


@pytest.mark.parametrize("text", ["", "2GB", "m", "1..2", "ten"])
def test_a_bad_quantity_is_a_value_error(text):
    from scheduler.resources import parse_quantity

    with pytest.raises(ValueError, match="is not a quantity"):
        parse_quantity(text)


@pytest.mark.django_db
def test_a_kind_the_registry_knows_is_a_valid_cluster_kind_without_touching_apps():
    from apps.clusters.choices import cluster_kinds
    from apps.clusters.models import Cluster

    assert ("kubernetes", "Kubernetes") in cluster_kinds() and ("local", "Local processes") in cluster_kinds()
    with pytest.raises(Exception, match="is not a valid choice"):
        Cluster(name="p1", kind="probe-kind").full_clean()
    registry.register("probe-kind", lambda cluster: None, Capabilities(), "Probe")
    try:
        Cluster(name="p1", kind="probe-kind").full_clean()
        assert ("probe-kind", "Probe") in cluster_kinds()
    finally:
        registry._REGISTERED.pop("probe-kind")
