"""What the Erda fields become at deploy time (issue 26), on Kubernetes and on the local kind.

Kubernetes: endpoint policies are NGINX ingress annotations (one Ingress per set of policies),
traffic_security https is TLS from the cluster's certificate source, ${platform.X} is filled,
((KEY)) in envs is read from the runtime's `dice-configs` Secret, a sidecar's image may come
from the image map. Local: ${platform.X} and ((KEY)) are filled into the process's environment.
"""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from diceyml import parse_dice_yml
from scheduler.base import ClusterRef, ExecutorError, RuntimeRef, ServiceGroup
from scheduler.kubernetes.addons import generate_addon_secrets
from scheduler.kubernetes.meta import RenderError
from scheduler.kubernetes.render import container_env, render_group
from scheduler.local.plan import check_group, plan_group
from scheduler.local.state import PortBook
from tests.unit.test_k8s_render_schemas import validate_all

RUNTIME = RuntimeRef(org="acme", project="shop", app="web", workspace="PROD", name="main", runtime_id=7)
NGINX = "nginx.ingress.kubernetes.io/"

SHOP = """
version: 2
envs:
  CLUSTER: ${platform.DICE_CLUSTER_NAME}
services:
  web:
    image: shop/web:1
    cmd: serve
    ports:
      - {port: 8080, protocol: HTTP, expose: true}
      - {port: 53, protocol: DNS, l4_protocol: UDP}
    traffic_security:
      mode: https
    endpoints:
      - domain: shop.*
        path: /api
        policies:
          cors:
            allow_origins: any
            allow_credentials: true
          rate_limit:
            qps: 50
            burst: 120
      - domain: www.shop.example
      - domain: static.shop.example
        path: /assets
    envs:
      WHERE: ${platform.DICE_PROJECT_NAME}/${platform.DICE_APPLICATION_NAME}/${platform.DICE_WORKSPACE}
      DB_URL: mysql://shop:((DB_PASSWORD))@db/shop
    sidecars:
      filebeat:
        cmd: filebeat -e
addons:
  cache:
    plan: redis:basic
environments:
  production:
    addons:
      db:
        plan: mysql
"""


def group(text: str = SHOP, workspace: str = "PROD", **kw) -> ServiceGroup:
    spec = parse_dice_yml(text, workspace=workspace)
    kw.setdefault("images", {"web.filebeat": "elastic/filebeat:8"})
    kw.setdefault("secret_configs", {"DB_PASSWORD": "s3cret"})
    return ServiceGroup(
        runtime=RUNTIME, spec=spec, addon_secrets=generate_addon_secrets(spec), cluster_name="prod-1", **kw
    )


def render(g: ServiceGroup, **config):
    cluster = ClusterRef("prod-1", "kubernetes", config=config, wildcard_domain="apps.example.com")
    warnings: list[str] = []
    manifests = render_group(g, cluster, warnings=warnings)
    validate_all(manifests)
    return {(m["kind"], m["metadata"]["name"]): m for m in manifests}, warnings


def container(by, name="web"):
    return by[("Deployment", name)]["spec"]["template"]["spec"]["containers"]


def env_of(c, by) -> dict:
    """What the container's process sees: the shared ConfigMap (envFrom), its own env on top."""
    return container_env(c, list(by.values()))


def test_endpoint_policies_become_ingress_annotations_one_ingress_per_policy_set():
    by, _ = render(group(), cert_issuer="letsencrypt")
    first, second = by[("Ingress", "web")], by[("Ingress", "web-2")]
    notes = first["metadata"]["annotations"]
    assert notes[NGINX + "enable-cors"] == "true" and notes[NGINX + "cors-allow-origin"] == "*"
    assert notes[NGINX + "cors-allow-credentials"] == "true"
    assert notes[NGINX + "limit-rps"] == "50" and notes[NGINX + "limit-burst-multiplier"] == "3"
    assert [r["host"] for r in first["spec"]["rules"]] == ["shop.apps.example.com"]
    assert [r["host"] for r in second["spec"]["rules"]] == ["www.shop.example", "static.shop.example"]
    assert NGINX + "enable-cors" not in second["metadata"]["annotations"]


def test_traffic_security_https_takes_tls_from_the_certificate_source():
    by, warnings = render(group(), cert_issuer="letsencrypt")
    ingress = by[("Ingress", "web")]
    assert ingress["spec"]["tls"] == [{"hosts": ["shop.apps.example.com"], "secretName": "web-tls"}]
    assert ingress["metadata"]["annotations"]["cert-manager.io/cluster-issuer"] == "letsencrypt"
    assert ingress["metadata"]["annotations"][NGINX + "force-ssl-redirect"] == "true"
    assert not [w for w in warnings if "traffic_security" in w]
    by, _ = render(group(), tls_secret="wildcard-cert")
    assert by[("Ingress", "web-2")]["spec"]["tls"][0]["secretName"] == "wildcard-cert"
    by, warnings = render(group())
    assert "tls" not in by[("Ingress", "web")]["spec"]
    assert any("traffic_security https: the cluster has no certificate source" in w for w in warnings)


def test_platform_placeholders_are_filled_from_the_runtime():
    by, _ = render(group())
    env = env_of(container(by)[0], by)
    assert env["WHERE"] == "shop/web/PROD" and env["CLUSTER"] == "prod-1"


def test_secret_placeholders_are_read_from_the_config_secret():
    by, _ = render(group())
    ref = env_of(container(by)[0], by)["DB_URL"]
    secret = by[("Secret", "dice-configs")]
    key = ref["secretKeyRef"]["key"]
    assert ref["secretKeyRef"]["name"] == "dice-configs"
    assert base64.b64decode(secret["data"][key]).decode() == "mysql://shop:s3cret@db/shop"
    assert "s3cret" not in str(by[("Deployment", "web")])


def test_a_missing_config_or_one_outside_envs_is_refused():
    with pytest.raises(
        ExecutorError, match=r"services.web.envs.DB_URL: '\(\(DB_PASSWORD\)\)' names no project config"
    ):
        render(group(secret_configs={}))
    with pytest.raises(ExecutorError, match=r"services.web.cmd: a project config placeholder \(\(TOKEN\)\)"):
        render(group(SHOP.replace("cmd: serve", "cmd: serve --token ((TOKEN))")))


def test_sidecar_without_image_takes_it_from_the_image_map():
    by, _ = render(group())
    assert [c["image"] for c in container(by)] == ["shop/web:1", "elastic/filebeat:8"]
    assert (
        render(group(images={"filebeat": "fb:1"}))[0][("Deployment", "web")]["spec"]["template"]["spec"][
            "containers"
        ][1]["image"]
        == "fb:1"
    )
    with pytest.raises(RenderError, match="sidecar 'filebeat' has no image"):
        render(group(images={}))


def test_port_protocol_names_render_on_their_transport():
    by, _ = render(group())
    ports = {(p["port"], p["protocol"]) for p in by[("Service", "web")]["spec"]["ports"]}
    assert ports == {(8080, "TCP"), (53, "UDP")}


def test_production_renders_only_the_environment_addons():
    by, _ = render(group())
    kinds = {name for (kind, name) in by if kind in ("StatefulSet",)}
    assert "db" in kinds and "cache" not in kinds
    dev, _ = render(group(workspace="DEV"))
    assert "cache" in {name for (kind, name) in dev if kind == "StatefulSet"}


def test_an_addon_type_the_cluster_cannot_provide_names_type_and_cluster():
    text = SHOP.replace("addons:\n  cache:", "addons:\n  oss:\n    plan: alicloud-oss:basic\n  cache:")
    with pytest.raises(RenderError, match="cluster 'prod-1' cannot provide addon type 'alicloud-oss'"):
        render(group(text, workspace="DEV"))


# ---- the local kind ---------------------------------------------------------------------------------

LOCAL = """
version: 2
services:
  api:
    cmd: python3 -m http.server $PORT
    ports: [8000]
    envs:
      WHERE: ${platform.DICE_RUNTIME_NAME}@${platform.DICE_CLUSTER_NAME}
      TOKEN: ((API_TOKEN))
addons:
  ext:
    plan: custom
    options:
      URL: https://ext.example.com
"""


def local_plan(tmp_path: Path, g: ServiceGroup):
    check_group(g, [])
    return plan_group(
        g,
        ns="shop-web",
        runtime_dir=tmp_path,
        ports=PortBook(tmp_path / "ports.json"),
        search_path=[],
        addon_user="",
        cluster_name="local",
    )


def test_local_fills_platform_values_configs_and_custom_addon_values(tmp_path):
    spec = parse_dice_yml(LOCAL, workspace="DEV")
    g = ServiceGroup(
        runtime=RUNTIME,
        spec=spec,
        cluster_name="",
        secret_configs={"API_TOKEN": "t0k"},
        addon_secrets={"ext": {"API_KEY": "k-1"}},
    )
    units, _ = local_plan(tmp_path, g)
    env = units["api"]["env"]
    assert env["WHERE"] == "main@local" and env["TOKEN"] == "t0k"
    assert env["CUSTOM_URL"] == "https://ext.example.com" and env["CUSTOM_API_KEY"] == "k-1"


def test_local_refuses_a_missing_config_and_an_addon_type_it_cannot_provide(tmp_path):
    spec = parse_dice_yml(LOCAL, workspace="DEV")
    with pytest.raises(ExecutorError, match=r"'\(\(API_TOKEN\)\)' names no project config"):
        check_group(ServiceGroup(runtime=RUNTIME, spec=spec), [])
    spec = parse_dice_yml(LOCAL + "  logs:\n    plan: log-analytics:basic\n", workspace="DEV")
    g = ServiceGroup(runtime=RUNTIME, spec=spec, secret_configs={"API_TOKEN": "x"}, cluster_name="laptop")
    with pytest.raises(ExecutorError, match="cluster 'laptop' cannot provide addon type 'log-analytics'"):
        check_group(g, [])


REGISTRY = """
version: 2
services:
  web:
    image: registry.example.com/shop/web:1
    image_username: bot
    image_password: ((REGISTRY_PASSWORD))
    envs:
      EXT: ${platform.DICE_ORG_NAME}
addons:
  ext:
    plan: custom
    options:
      URL: https://ext.example.com
      TOKEN: ((EXT_TOKEN))
"""


def test_secret_placeholders_in_registry_credentials_and_addon_options_stay_in_secrets():
    configs = {"REGISTRY_PASSWORD": "reg-pw", "EXT_TOKEN": "ext-tk"}
    by, _ = render(group(REGISTRY, workspace="DEV", images={}, secret_configs=configs))
    pull = next(
        m
        for (kind, _), m in by.items()
        if kind == "Secret" and m.get("type") == "kubernetes.io/dockerconfigjson"
    )
    assert "reg-pw" in base64.b64decode(pull["data"][".dockerconfigjson"]).decode()
    ext = by[("Secret", "ext-credentials")]
    assert base64.b64decode(ext["data"]["TOKEN"]).decode() == "ext-tk"
    env = env_of(container(by)[0], by)
    assert env["CUSTOM_TOKEN"] == {"secretKeyRef": {"name": "ext-credentials", "key": "TOKEN"}}
    assert env["CUSTOM_URL"] == "https://ext.example.com" and env["EXT"] == "acme"
    assert "reg-pw" not in str(by[("Deployment", "web")]) and "ext-tk" not in str(by[("Deployment", "web")])
