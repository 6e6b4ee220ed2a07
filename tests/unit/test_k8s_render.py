"""The Kubernetes renderer on our example specs (tests/data/diceyml) and, in the conformance tier,
on the Erda corpus: every workspace, without and with operators; every manifest valid for
Kubernetes 1.36 (strict) or its operator's CRD, in apply order, labelled."""

from __future__ import annotations

from pathlib import Path

import pytest

from diceyml import merge_overlay, parse_dice_yml
from diceyml.placeholders import secret_keys
from scheduler.base import ClusterRef, Overcommit, RuntimeRef, ServiceGroup
from scheduler.kubernetes.addons import generate_addon_secrets, provider_for
from scheduler.kubernetes.catalog import all_crds
from scheduler.kubernetes.meta import RenderError
from scheduler.kubernetes.render import KIND_ORDER, container_env, render_group
from speckit.errors import SpecInvalid
from tests.conftest import CONFORMANCE, DATA, SHARED_CRDS
from tests.unit.test_k8s_render_schemas import OWN_CRDS, validate_all

CORPUS = CONFORMANCE / "dice"
OWN = DATA / "diceyml"
WORKSPACES = ("DEV", "TEST", "STAGING", "PROD")
ALL_OPERATORS = all_crds()
CLUSTER = ClusterRef(
    "c1", "kubernetes", wildcard_domain="apps.example.com", ingress_class="nginx", storage_class="fast"
)
RECOMMENDED = (
    "app.kubernetes.io/name",
    "app.kubernetes.io/instance",
    "app.kubernetes.io/component",
    "app.kubernetes.io/part-of",
    "app.kubernetes.io/managed-by",
    "app.kubernetes.io/version",
    "dice.io/release",
    "dice.io/org",
    "dice.io/project",
    "dice.io/app",
    "dice.io/workspace",
    "dice.io/runtime",
)


# Overlays, each with the file it is merged onto.
OVERLAYS = {"pkg_parser_diceyml_samples_dice_test.yml": "pkg_parser_diceyml_samples_dice.yml",
            "bookshop_overlay.yml": "bookshop.yml"}


def load(name: str, workspace: str, folder: Path = CORPUS):
    path = folder / name
    if name in OVERLAYS:
        return merge_overlay((folder / OVERLAYS[name]).read_text(), path.read_text(), workspace=workspace)
    return parse_dice_yml(path.read_text(), source=str(path), workspace=workspace)


def group_for(spec, workspace: str, **kw) -> ServiceGroup:
    images = dict.fromkeys([*spec.services, *spec.jobs], "registry.example/x:1")
    # the console hands over the project configs that ((KEY)) placeholders name
    kw.setdefault("secret_configs", {key: f"value-of-{key}" for key in secret_keys(spec)})
    return ServiceGroup(
        RuntimeRef("acme", "shop", "web", workspace, "main"),
        spec,
        release="r42",
        images=images,
        addon_secrets=generate_addon_secrets(spec),
        cluster_name="c1",
        **kw,
    )


JOB_KINDS = ("Job", "CronJob", "BroadcastJob")  # one group, in the spec's order (README: apply order)


def kind_rank(obj: dict) -> int:
    kind = "Job" if obj["kind"] in JOB_KINDS else obj["kind"]
    if kind in KIND_ORDER and not (kind in ("Service", "StatefulSet") and "dice.io/addon" in obj["metadata"]["labels"]):
        return KIND_ORDER.index(kind)
    return KIND_ORDER.index("addon")


CASES = [(f.name, ws) for f in sorted(CORPUS.glob("*.yml")) for ws in WORKSPACES]
# erda_forms.yml asks for addon types no cluster here provides: test_unprovided_addon_type_is_refused.
OWN_CASES = [(f.name, ws) for f in sorted(OWN.glob("*.yml")) if f.name != "erda_forms.yml" for ws in WORKSPACES]


@pytest.mark.parametrize("operators", [frozenset(), ALL_OPERATORS], ids=["builtin", "operators"])
@pytest.mark.parametrize(("name", "workspace"), OWN_CASES, ids=[f"{n}-{w}" for n, w in OWN_CASES])
def test_examples_render_valid_manifests(name, workspace, operators):
    check_renders(name, workspace, operators, OWN, OWN_CRDS)


@pytest.mark.conformance
@pytest.mark.parametrize("operators", [frozenset(), ALL_OPERATORS], ids=["builtin", "operators"])
@pytest.mark.parametrize(("name", "workspace"), CASES, ids=[f"{n}-{w}" for n, w in CASES])
def test_conformance_renders_valid_manifests(name, workspace, operators):
    check_renders(name, workspace, operators, CORPUS, SHARED_CRDS)


def check_renders(name: str, workspace: str, operators, folder: Path, crds: Path) -> None:
    try:
        spec = load(name, workspace, folder)
    except SpecInvalid as exc:
        # The only refusal in the corpus: basic addons are not allowed in PROD.
        assert workspace == "PROD"
        assert all("size basic is not allowed in production" in e.message for e in exc.errors)
        return
    operator_only = sorted(name for name, addon in spec.addons.items()
                           if (provider := provider_for(addon.type)) is not None and not provider.builtin)
    if operator_only and not operators:  # kafka, elasticsearch, rabbitmq: no built-in to fall back on
        with pytest.raises(RenderError, match=f"addon '({'|'.join(operator_only)})' .* needs an operator"):
            render_group(group_for(spec, workspace), CLUSTER, operators=operators)
        return
    manifests = render_group(group_for(spec, workspace), CLUSTER, operators=operators)
    validate_all(manifests, crds)
    assert manifests[0]["kind"] == "Namespace"
    ranks = [kind_rank(m) for m in manifests]
    assert ranks == sorted(ranks), [m["kind"] for m in manifests]
    names = [(m["kind"], m["metadata"]["name"]) for m in manifests]
    assert len(names) == len(set(names))
    for obj in manifests:
        labels = obj["metadata"]["labels"]
        missing = [k for k in RECOMMENDED if k not in labels]
        assert not missing, (obj["kind"], obj["metadata"]["name"], missing)
        assert labels["app.kubernetes.io/managed-by"] == "dice"
        assert labels["dice.io/release"] == "r42"
        if obj["kind"] != "Namespace":
            assert obj["metadata"]["namespace"] == manifests[0]["metadata"]["name"]
    services = {m["metadata"]["name"] for m in manifests if m["kind"] in ("Deployment", "DaemonSet")}
    assert services == set(spec.services)


@pytest.mark.conformance
def test_erda_dev_details():
    spec = load("erda.yml", "DEV")
    group = group_for(spec, "DEV", overcommit=Overcommit(cpu_ratio=2, mem_ratio=2))
    manifests = render_group(group, CLUSTER)
    by = {(m["kind"], m["metadata"]["name"]): m for m in manifests}
    ns = manifests[0]["metadata"]["name"]
    server = by[("Deployment", "erda-server")]
    container = server["spec"]["template"]["spec"]["containers"][0]
    env = container_env(container, manifests)
    # max_cpu/max_mem given: request = value, limit = max (no ratio). DEV values: cpu 1, mem 2048.
    assert container["resources"] == {
        "requests": {"cpu": "1000m", "memory": "2048Mi"},
        "limits": {"cpu": "1000m", "memory": "2048Mi"},
    }
    assert env["DICE_CPU_REQUEST"] == "1" and env["DICE_MEM_LIMIT"] == "2048"
    # Discovery: the default port first.
    assert env["ERDA_SERVER_HOST"] == f"erda-server.{ns}.svc.cluster.local"
    assert env["ERDA_SERVER_PORT"] == "9095" and env["ERDA_SERVER_PORT0"] == "9095"
    assert env["SELF_PORT"] == "9095" and env["SELF_URL"] == f"http://erda-server.{ns}.svc.cluster.local:9095"
    assert env["DICE_WORKSPACE"] == "DEV" and env["DICE_CLUSTER_NAME"] == "c1"
    # Addon mysql: password from the Secret, never inline.
    assert env["MYSQL_HOST"] == f"mysql.{ns}.svc.cluster.local" and env["MYSQL_PORT"] == "3306"
    assert env["MYSQL_PASSWORD"] == {"secretKeyRef": {"name": "mysql-credentials", "key": "password"}}
    assert env["CUSTOM_VERSION"] == "1.0.0"
    # Top-level envs, then the service's own on top.
    assert env["IAM_ADDR"] == "iam:8920" and env["ERDA_SERVER_ADDR"] == "localhost:9095"
    # Health check: startup probe bounds duration 120.
    startup = container["startupProbe"]
    assert startup["failureThreshold"] * startup["periodSeconds"] >= 120
    assert container["readinessProbe"]["httpGet"] == {"port": 9095, "path": "/api/healthy"}
    # k8s_snippet merged into the container.
    agent = by[("Deployment", "cluster-agent")]["spec"]["template"]["spec"]["containers"][0]
    assert agent["securityContext"] == {"privileged": True}
    assert agent["readinessProbe"]["exec"]["command"] == ["sh", "-c", "ls"]
    # Exposed port without endpoints: <service>-<runtime>.<wildcard domain>.
    ingress = by[("Ingress", "erda-server")]
    assert ingress["spec"]["ingressClassName"] == "nginx"
    assert ingress["spec"]["rules"][0]["host"] == "erda-server-main.apps.example.com"
    # Built-in mysql: StatefulSet + headless Service + claim template with the storage class.
    sts = by[("StatefulSet", "mysql")]
    assert sts["spec"]["volumeClaimTemplates"][0]["spec"]["storageClassName"] == "fast"
    assert by[("Service", "mysql")]["spec"]["clusterIP"] == "None"
    # Binds as hostPath volumes, read-only where asked.
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    assert mounts["/certs/etcd-ca.pem"]["readOnly"] is True and mounts["/avatars"]["readOnly"] is False
    # No password anywhere but in the Secret (base64 in data).
    password = group.addon_secrets["mysql"]["password"]
    assert all(password not in str(obj) for obj in manifests)


def test_bookshop_dev_details():
    spec = load("bookshop.yml", "DEV", OWN)
    group = group_for(spec, "DEV", overcommit=Overcommit(cpu_ratio=2, mem_ratio=2))
    manifests = render_group(group, CLUSTER, operators=ALL_OPERATORS)
    by = {(m["kind"], m["metadata"]["name"]): m for m in manifests}
    ns = manifests[0]["metadata"]["name"]
    pod = by[("Deployment", "storefront")]["spec"]["template"]["spec"]
    container = pod["containers"][0]
    env = container_env(container, manifests)
    # max_cpu/max_mem given: request = value, limit = max (no ratio).
    assert container["resources"]["requests"] == {"cpu": "500m", "memory": "512Mi"}
    assert container["resources"]["limits"]["cpu"] == "1000m" and container["resources"]["limits"]["memory"] == "1024Mi"
    # Values of the workspace, the service's own envs over the top-level ones, environment envs.
    assert env["DB_HOST"] == "db.dev.internal" and env["PAGE_SIZE"] == "50" and env["LOG_LEVEL"] == "debug"
    assert env["FEATURE_REVIEWS"] == "true"
    # Discovery (the default port first) and addons with `as`, passwords from Secrets.
    assert env["CATALOG_HOST"] == f"catalog.{ns}.svc.cluster.local" and env["CATALOG_PORT"] == "7070"
    assert env["SEARCH_PORT1"] == "9300"
    assert env["SHOP_DB_HOST"] == f"db.{ns}.svc.cluster.local"
    assert env["SHOP_DB_PASSWORD"] == {"secretKeyRef": {"name": "db-credentials", "key": "password"}}
    assert env["ORDERS_HOST"].startswith("orders-rw.")
    # Health check, init container, sidecar, k8s_snippet, hosts.
    assert container["readinessProbe"]["httpGet"] == {"port": 8080, "path": "/healthz"}
    assert "migrate" in [c["name"] for c in pod["initContainers"]]
    assert any(c["name"] == "log-shipper" for c in pod["containers"] + pod.get("initContainers", []))
    assert container["securityContext"] == {"runAsNonRoot": True}
    assert pod["hostAliases"] == [{"ip": "10.0.0.5", "hostnames": ["books.internal", "cache.internal"]}]
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    assert mounts["/covers"]["readOnly"] is True and mounts["/index"]["readOnly"] is True
    # Endpoints: the wildcard domain, and a path rewritten to its backend path.
    hosts = {rule["host"] for rule in by[("Ingress", "storefront")]["spec"]["rules"]}
    assert {"books.apps.example.com", "shop.example.com"} <= hosts
    # per_node is a DaemonSet; jobs: cron, broadcast, plain.
    assert ("DaemonSet", "node-agent") in by
    assert by[("CronJob", "reindex")]["spec"]["schedule"] == "30 2 * * *"
    assert any(kind == "BroadcastJob" for kind, _ in by) and any(kind == "Job" for kind, _ in by)
    # No password anywhere but in the Secrets.
    for name, secret in group.addon_secrets.items():
        if "password" in secret:
            assert all(secret["password"] not in str(obj) for obj in manifests if obj["kind"] != "Secret"), name


def test_registry_credentials_take_project_configs_into_the_pull_secret_only():
    import base64
    import json

    spec = load("bookshop.yml", "DEV", OWN)
    manifests = render_group(group_for(spec, "DEV", secret_configs={"REGISTRY_PASSWORD": "s3cr3t-pw",
                                                                    "PAYMENTS_KEY": "pk"}), CLUSTER, operators=ALL_OPERATORS)
    pull = [m for m in manifests if m["kind"] == "Secret" and m.get("type") == "kubernetes.io/dockerconfigjson"]
    assert pull, "the storefront's registry credentials make a pull secret"
    config = json.loads(base64.b64decode(pull[0]["data"][".dockerconfigjson"]))
    assert [a["password"] for a in config["auths"].values()] == ["s3cr3t-pw"]
    others = json.dumps([m for m in manifests if m is not pull[0]])
    assert "s3cr3t-pw" not in others and "((REGISTRY_PASSWORD))" not in others


def test_unprovided_addon_type_is_refused_naming_it():
    spec = load("erda_forms.yml", "DEV", OWN)
    with pytest.raises(RenderError, match="alicloud-oss"):
        render_group(group_for(spec, "DEV"), CLUSTER, operators=ALL_OPERATORS)
