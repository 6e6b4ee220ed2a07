"""The console's environment variables in the Kubernetes renderer: plain ones in a ConfigMap,
secret ones in a Secret, both through `envFrom` after the shared variables, winning over the
file's envs, never inline in a workload, and a pod annotation that rolls the pods when they change."""

from __future__ import annotations

import json

from diceyml import parse_dice_yml
from scheduler.base import ClusterRef, RuntimeRef, ServiceGroup
from scheduler.envvars import variable_name_problem
from scheduler.kubernetes.context import VARIABLES_ANNOTATION, VARIABLES_CONFIGMAP, VARIABLES_SECRET
from scheduler.kubernetes.render import container_env, render_group

SPEC = """
version: "2.0"
envs: {GREETING: from-file, SHARED: file}
services:
  web:
    image: registry.example/web:1
    ports: [8080]
    envs: {OWN: mine}
  worker:
    image: registry.example/worker:1
    cmd: ./work
jobs:
  migrate:
    image: registry.example/web:1
    cmd: ./migrate
"""
CLUSTER = ClusterRef("c1", "kubernetes", config={}, wildcard_domain="apps.example")


def render(**kw) -> list[dict]:
    spec = parse_dice_yml(SPEC, workspace="DEV")
    group = ServiceGroup(RuntimeRef("acme", "shop", "web", "DEV", "main"), spec, release="r1", cluster_name="c1", **kw)
    return render_group(group, CLUSTER)


def by(manifests, kind, name):
    return next(m for m in manifests if m["kind"] == kind and m["metadata"]["name"] == name)


def containers(manifests):
    for m in manifests:
        if m["kind"] in ("Deployment", "Job"):
            yield m, m["spec"]["template"]["spec"]["containers"][0]


def test_variables_reach_every_container_and_win_over_the_file():
    manifests = render(variables={"GREETING": "from-console", "PLAIN": "p"}, secret_variables={"TOKEN": "t0p-s3cret"},
                       variables_digest="abc123")
    assert by(manifests, "ConfigMap", VARIABLES_CONFIGMAP)["data"] == {"GREETING": "from-console", "PLAIN": "p"}
    assert set(by(manifests, "Secret", VARIABLES_SECRET)["data"]) == {"TOKEN"}
    seen = 0
    for workload, container in containers(manifests):
        seen += 1
        env = container_env(container, manifests)
        assert env["GREETING"] == "from-console" and env["PLAIN"] == "p" and env["TOKEN"] == "t0p-s3cret"
        assert env["SHARED"] == "file"
        assert container["envFrom"][-1] == {"secretRef": {"name": VARIABLES_SECRET}}
        assert "GREETING" not in {e["name"] for e in container["env"]}  # not inline: envFrom brings it
        assert workload["spec"]["template"]["metadata"]["annotations"][VARIABLES_ANNOTATION] == "abc123"
        # The secret's value is in no workload, only in the Secret (base64 there).
        assert "t0p-s3cret" not in json.dumps(workload)
    assert seen == 3
    assert "t0p-s3cret" not in json.dumps([m for m in manifests if m["kind"] != "Secret"])


def test_without_variables_nothing_changes_and_a_change_rolls_the_pods():
    plain = render()
    assert not any(m["metadata"]["name"] in (VARIABLES_CONFIGMAP, VARIABLES_SECRET) for m in plain)
    for workload, _ in containers(plain):
        assert VARIABLES_ANNOTATION not in (workload["spec"]["template"]["metadata"].get("annotations") or {})
    one = render(variables={"A": "1"})
    two = render(variables={"A": "2"})
    annotation = [w["spec"]["template"]["metadata"]["annotations"][VARIABLES_ANNOTATION] for w, _ in containers(one)]
    changed = [w["spec"]["template"]["metadata"]["annotations"][VARIABLES_ANNOTATION] for w, _ in containers(two)]
    assert annotation[0] != changed[0]
    # Without the console's key the derived digest covers secret names, never their values.
    assert (ServiceGroup(RuntimeRef("a", "b", "c", "DEV", "m"), parse_dice_yml(SPEC), secret_variables={"T": "x"})
            .variables_version() == ServiceGroup(RuntimeRef("a", "b", "c", "DEV", "m"), parse_dice_yml(SPEC),
                                                 secret_variables={"T": "y"}).variables_version())


def test_names_the_platform_sets_are_reserved():
    for name in ("DICE_WORKSPACE", "DICE_CPU_LIMIT", "SELF_HOST", "SELF_PORT", "PORT", "PORT0", "PORT12", "dice_x"):
        assert "reserved" in variable_name_problem(name), name
    for name in ("1X", "A-B", "A.B", "A B", ""):
        assert variable_name_problem(name), name
    for name in ("API_URL", "_private", "lower_case", "PORTS", "DICER", "X1"):
        assert variable_name_problem(name) is None, name
