"""Drift on Kubernetes against a real kube-apiserver: a runtime as applied is in sync (defaults
and fields the cluster owns are not differences); a `kubectl scale` by hand is drift naming the
field and both values; applying the release again (the sync action) puts it back."""

from __future__ import annotations

import pytest

from tests.k8s.test_k8s_driver import SIMPLE, executor, group, runtime  # noqa: F401

pytestmark = pytest.mark.k8s


def test_in_sync_after_apply_out_of_sync_after_a_manual_scale_and_back(executor, k8s_cluster):  # noqa: F811
    rt = runtime()
    release = group(rt, SIMPLE)
    executor.apply(release)
    try:
        found = executor.drift(release)
        assert found.in_sync, found.items
        k8s_cluster.apps.patch_namespaced_deployment_scale("web", rt.namespace, {"spec": {"replicas": 5}})
        found = executor.drift(release)
        assert not found.in_sync
        assert [(i.object, i.field, i.desired, i.live) for i in found.items] == [
            ("Deployment/web", "spec.replicas", 2, 5)]
        executor.apply(release)
        assert executor.drift(release).in_sync
        k8s_cluster.apps.delete_namespaced_deployment("api", rt.namespace)
        assert ("Deployment/api", "", "present", None) in [
            (i.object, i.field, i.desired, i.live) for i in executor.drift(release).items]
    finally:
        executor.destroy(rt)
