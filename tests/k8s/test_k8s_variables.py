"""The console's environment variables applied to a real kube-apiserver (ktestenv): the ConfigMap
and the Secret exist with the values, every Deployment reads them through `envFrom` and holds no
secret value, a changed value rolls the pods (a new template annotation), and removing every
variable prunes both objects."""

from __future__ import annotations

import base64
import json

import pytest

from scheduler.kubernetes.context import VARIABLES_ANNOTATION, VARIABLES_CONFIGMAP, VARIABLES_SECRET
from tests.k8s.conftest import wait_for
from tests.k8s.test_k8s_driver import executor, group, healthy, runtime  # noqa: F401 (the module's fixture)

pytestmark = pytest.mark.k8s

SPEC = """
version: "2.0"
envs: {GREETING: from-file}
services:
  web:
    image: registry.example/web:1
    ports: [8080]
"""


def test_variables_become_a_configmap_and_a_secret_read_through_env_from(executor, k8s_cluster):  # noqa: F811
    import dataclasses

    rt = runtime()
    ns = rt.namespace
    base = group(rt, SPEC)
    first = dataclasses.replace(base, variables={"GREETING": "from-console"}, secret_variables={"API_KEY": "k3y-1"},
                                variables_digest="d1")
    executor.apply(first)
    executor.wait_until(rt, healthy, timeout=90)
    cm = k8s_cluster.core.read_namespaced_config_map(VARIABLES_CONFIGMAP, ns)
    assert cm.data == {"GREETING": "from-console"}
    secret = k8s_cluster.core.read_namespaced_secret(VARIABLES_SECRET, ns)
    assert base64.b64decode(secret.data["API_KEY"]).decode() == "k3y-1"
    deployment = k8s_cluster.apps.read_namespaced_deployment("web", ns)
    container = deployment.spec.template.spec.containers[0]
    sources = [(s.config_map_ref.name if s.config_map_ref else None, s.secret_ref.name if s.secret_ref else None)
               for s in container.env_from]
    assert (VARIABLES_CONFIGMAP, None) in sources and sources[-1] == (None, VARIABLES_SECRET)
    assert "GREETING" not in {e.name for e in container.env}
    as_json = json.dumps(k8s_cluster.api_client.sanitize_for_serialization(deployment))
    assert "k3y-1" not in as_json
    before = deployment.spec.template.metadata.annotations[VARIABLES_ANNOTATION]

    # A new value: the Secret has it and the template changes, so the pods roll.
    executor.apply(dataclasses.replace(first, secret_variables={"API_KEY": "k3y-2"}, variables_digest="d2"))
    secret = k8s_cluster.core.read_namespaced_secret(VARIABLES_SECRET, ns)
    assert base64.b64decode(secret.data["API_KEY"]).decode() == "k3y-2"
    after = k8s_cluster.apps.read_namespaced_deployment("web", ns).spec.template.metadata.annotations
    assert after[VARIABLES_ANNOTATION] != before

    # No variables any more: both objects are pruned, the file's value is inline again.
    executor.apply(base)

    def gone():
        names = {c.metadata.name for c in k8s_cluster.core.list_namespaced_config_map(ns).items}
        names |= {s.metadata.name for s in k8s_cluster.core.list_namespaced_secret(ns).items}
        return not names & {VARIABLES_CONFIGMAP, VARIABLES_SECRET}

    wait_for(gone, 30, "the variables' objects pruned")
    container = k8s_cluster.apps.read_namespaced_deployment("web", ns).spec.template.spec.containers[0]
    assert {e.name: e.value for e in container.env}["GREETING"] == "from-file"
    executor.destroy(rt)
