"""The Kubernetes renderer feature by feature, on targeted specs; every manifest schema-checked."""

from __future__ import annotations

import base64

import pytest

from diceyml import parse_dice_yml
from scheduler.base import ClusterRef, Overcommit, RuntimeRef, ServiceGroup
from scheduler.kubernetes.addons import generate_addon_secrets
from scheduler.kubernetes.catalog import all_crds
from scheduler.kubernetes.meta import RenderError
from scheduler.kubernetes.render import container_env, render_group
from scheduler.resources import OvercommitRefused
from tests.unit.test_k8s_render_schemas import validate_all

CLUSTER = ClusterRef("c1", "kubernetes", wildcard_domain="apps.example.com", ingress_class="nginx", storage_class="fast")
ALL_OPERATORS = all_crds()
NO_OVERCOMMIT = Overcommit()

SPEC = """
version: "2.0"
envs: {SHARED: top, OVERRIDE: top}
services:
  web:
    image: nginx:1
    cmd: nginx -g 'daemon off;'
    ports:
      - {port: 8080, protocol: HTTP, expose: true}
      - 9090
    envs: {OVERRIDE: mine}
    hosts: ["10.0.0.1 a.example a2.example", "10.0.0.2 b.example"]
    resources: {cpu: 1, mem: 512, ephemeral_storage_size: 100}
    deployments: {replicas: 3, policies: unique, labels: {GROUP: front, bad label: x}, selectors: {disk: ssd}}
    health_check: {http: {port: 8080, path: /healthz, duration: 300}}
    binds: ["/var/log:/host-logs:ro"]
    volumes: ["cache~nfs:/cache", {type: local, size: 5, targetPath: /data, readOnly: true}]
    endpoints:
      - {domain: shop.*, path: /}
      - {domain: www.shop.example, path: /api}
    sidecars:
      logger:
        image: busybox:1
        cmd: tail -f /logs/app.log
        resources: {cpu: 0.2, mem: 64}
        shared_dirs: [{main: /var/app/logs, sidecar: /logs}]
    init:
      prepare:
        image: busybox:1
        cmd: echo ready
    annotations: {team: shop}
    labels: {tier: front}
    k8s_snippet:
      container:
        securityContext: {runAsNonRoot: true}
        lifecycle: {preStop: {exec: {command: ["sleep", "5"]}}}
  worker:
    image: worker:1
    deployments: {replicas: 2, policies: affinity}
    health_check: {exec: {cmd: test -f /tmp/ok, duration: 7}}
  agent:
    image: agent:1
    ports: [7000]
    deployments: {workload: per_node}
  api:
    ports: [{port: 8000, expose: true}, {port: 8001, expose: true, default: true}]
    resources: {cpu: 0.5, mem: 256, max_cpu: 1, max_mem: 1024}
    image_username: bot
    image_password: s3cret
jobs:
  migrate:
    image: migrate:1
    cmd: ./migrate up
    backoff_limit: 2
    active_deadline: 600
  nightly:
    image: report:1
    schedule: "0 3 * * *"
  sweep:
    image: sweep:1
    broadcast: true
    backoff_limit: 1
    active_deadline: 120
addons:
  db: {plan: "mysql:professional"}
  cache: {plan: "redis:basic", as: SESSION}
  pg: {plan: "postgresql:ultimate"}
  search: {plan: "elasticsearch:professional"}
  events: {plan: "kafka:ultimate"}
  queue: {plan: "rabbitmq:basic"}
  zk: {plan: "zookeeper:professional"}
  ext: {plan: "custom:basic", options: {url: "http://ext", api_token: t0ken}}
"""


def render(text=SPEC, *, workspace="DEV", operators=ALL_OPERATORS, overcommit=NO_OVERCOMMIT, images=None,
           cluster=CLUSTER, warnings=None, **kw):
    spec = parse_dice_yml(text, workspace=workspace)
    group = ServiceGroup(
        RuntimeRef("acme", "shop", "web", workspace, "main"),
        spec,
        release="v1.2.3",
        images={"api": "registry.example.com/team/api:7", **(images or {})},
        overcommit=overcommit,
        addon_secrets=generate_addon_secrets(spec, {"db": {"password": "pw-db"}}),
        cluster_name="c1",
        node_selectors=kw.pop("node_selectors", {}),
    )
    manifests = render_group(group, cluster, operators=operators, warnings=warnings, **kw)
    validate_all(manifests)
    return {(m["kind"], m["metadata"]["name"]): m for m in manifests}, manifests


@pytest.fixture(scope="module")
def full():
    return render()


def pod(obj):
    return obj["spec"]["template"]["spec"]


def env_of(container, by):
    """What the container's process sees: the shared ConfigMap (envFrom), its own env on top."""
    return container_env(container, list(by.values()))


def test_stateless_service_is_deployment_and_service(full):
    by, _ = full
    dep = by[("Deployment", "web")]
    assert dep["spec"]["replicas"] == 3
    assert dep["spec"]["selector"] == {"matchLabels": {"dice.io/service": "web"}}
    svc = by[("Service", "web")]["spec"]
    assert svc["type"] == "ClusterIP"
    assert svc["ports"] == [
        {"name": "http-8080", "port": 8080, "targetPort": 8080, "protocol": "TCP"},
        {"name": "tcp-9090", "port": 9090, "targetPort": 9090, "protocol": "TCP"},
    ]
    main = pod(dep)["containers"][0]
    assert main["command"] == ["sh", "-c", "nginx -g 'daemon off;'"]
    assert main["ports"][0] == {"name": "http-8080", "containerPort": 8080, "protocol": "TCP"}
    assert ("Service", "worker") not in by  # no ports, no Service


def test_per_node_is_daemonset(full):
    by, _ = full
    assert ("DaemonSet", "agent") in by and ("Deployment", "agent") not in by
    assert "replicas" not in by[("DaemonSet", "agent")]["spec"]


def test_ingress_hosts(full):
    by, _ = full
    web = by[("Ingress", "web")]["spec"]
    assert web["ingressClassName"] == "nginx"
    hosts = {r["host"]: r["http"]["paths"] for r in web["rules"]}
    assert set(hosts) == {"shop.apps.example.com", "www.shop.example"}
    assert hosts["www.shop.example"][0]["path"] == "/api"
    assert hosts["shop.apps.example.com"][0]["backend"]["service"] == {"name": "web", "port": {"number": 8080}}
    api = {r["host"] for r in by[("Ingress", "api")]["spec"]["rules"]}
    assert api == {"api-main.apps.example.com", "api-8001-main.apps.example.com"}


def test_wildcard_endpoint_needs_a_domain():
    with pytest.raises(RenderError, match=r"shop\.\*.*wildcard domain"):
        render(cluster=ClusterRef("c1", "kubernetes"))


def test_exposed_without_domain_warns_and_skips():
    text = 'version: "2.0"\nservices:\n  a:\n    image: a:1\n    ports: [{port: 80, expose: true}]\n'
    warnings: list[str] = []
    by, _ = render(text, cluster=ClusterRef("c1", "kubernetes"), warnings=warnings)
    assert not any(k == "Ingress" for k, _ in by)
    assert "wildcard domain" in warnings[0]


def test_probes(full):
    by, _ = full
    web = pod(by[("Deployment", "web")])["containers"][0]
    assert web["readinessProbe"]["httpGet"] == {"port": 8080, "path": "/healthz"}
    assert web["livenessProbe"]["httpGet"] == {"port": 8080, "path": "/healthz"}
    startup = web["startupProbe"]
    assert startup["failureThreshold"] * startup["periodSeconds"] >= 300
    worker = pod(by[("Deployment", "worker")])["containers"][0]
    assert worker["readinessProbe"]["exec"]["command"] == ["sh", "-c", "test -f /tmp/ok"]
    assert worker["startupProbe"]["failureThreshold"] * worker["startupProbe"]["periodSeconds"] >= 7


def test_policies_and_selectors(full):
    by, _ = full
    web = pod(by[("Deployment", "web")])["affinity"]
    required = web["podAntiAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"][0]
    assert required["labelSelector"] == {"matchLabels": {"dice.io/service": "web"}}
    assert required["topologyKey"] == "kubernetes.io/hostname"
    terms = web["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
    assert terms == [{"matchExpressions": [{"key": "disk", "operator": "In", "values": ["ssd"]}]}]
    worker = pod(by[("Deployment", "worker")])["affinity"]
    assert "preferredDuringSchedulingIgnoredDuringExecution" in worker["podAffinity"]
    api = pod(by[("Deployment", "api")])["affinity"]  # shuffle is the default
    assert "preferredDuringSchedulingIgnoredDuringExecution" in api["podAntiAffinity"]


def test_hosts_binds_volumes(full):
    by, _ = full
    spec = pod(by[("Deployment", "web")])
    assert spec["hostAliases"] == [
        {"ip": "10.0.0.1", "hostnames": ["a.example", "a2.example"]},
        {"ip": "10.0.0.2", "hostnames": ["b.example"]},
    ]
    volumes = {v["name"]: v for v in spec["volumes"]}
    assert volumes["bind-0"]["hostPath"] == {"path": "/var/log"}
    claims = {v["persistentVolumeClaim"]["claimName"] for v in spec["volumes"] if "persistentVolumeClaim" in v}
    assert claims == {"web-cache", "web-vol-data"}
    pvc = by[("PersistentVolumeClaim", "web-vol-data")]["spec"]
    assert pvc["storageClassName"] == "fast" and pvc["resources"]["requests"]["storage"] == "5Gi"
    mounts = {m["mountPath"]: m for m in spec["containers"][0]["volumeMounts"]}
    assert mounts["/host-logs"]["readOnly"] is True and mounts["/data"]["readOnly"] is True


def test_sidecars_init_shared_dirs_and_snippet(full):
    by, _ = full
    spec = pod(by[("Deployment", "web")])
    main, logger = spec["containers"]
    assert logger["name"] == "logger" and logger["command"] == ["sh", "-c", "tail -f /logs/app.log"]
    # The dependency wait (web uses the addons) runs before the file's own init containers.
    assert [c["name"] for c in spec["initContainers"]] == ["wait-for-dependencies", "prepare"]
    shared = next(v["name"] for v in spec["volumes"] if "emptyDir" in v)
    assert {"name": shared, "mountPath": "/var/app/logs"} in main["volumeMounts"]
    assert logger["volumeMounts"] == [{"name": shared, "mountPath": "/logs"}]
    # Merged last, deep: our fields stay, the snippet's are added.
    assert main["securityContext"] == {"runAsNonRoot": True}
    assert main["lifecycle"]["preStop"]["exec"]["command"] == ["sleep", "5"]
    assert main["readinessProbe"]["httpGet"]["path"] == "/healthz"


def test_labels_and_annotations(full):
    by, _ = full
    dep = by[("Deployment", "web")]
    labels = dep["spec"]["template"]["metadata"]["labels"]
    assert labels["GROUP"] == "front" and labels["tier"] == "front"
    assert labels["app.kubernetes.io/version"] == "v1.2.3" and labels["dice.io/release"] == "v1.2.3"
    # Not a valid label key: kept as an annotation rather than dropped silently... when the key allows.
    assert "bad label" not in labels
    assert dep["metadata"]["annotations"]["team"] == "shop"


def test_overcommit_resources_and_variables():
    by, _ = render(overcommit=Overcommit(cpu_ratio=4, mem_ratio=2))
    web = pod(by[("Deployment", "web")])["containers"][0]
    assert web["resources"] == {"requests": {"cpu": "250m", "memory": "256Mi"}, "limits": {"cpu": "1000m", "memory": "512Mi"}}
    env = env_of(web, by)
    assert (env["DICE_CPU_REQUEST"], env["DICE_CPU_LIMIT"], env["DICE_MEM_REQUEST"], env["DICE_MEM_LIMIT"]) == (
        "0.25", "1", "256", "512")
    api = pod(by[("Deployment", "api")])["containers"][0]
    # max_* given: no ratio.
    assert api["resources"] == {"requests": {"cpu": "500m", "memory": "256Mi"}, "limits": {"cpu": "1000m", "memory": "1024Mi"}}
    worker = pod(by[("Deployment", "worker")])["containers"][0]
    # Floors: 0.1 / 4 -> 100m; 128 / 2 = 64 stays.
    assert worker["resources"]["requests"] == {"cpu": "100m", "memory": "64Mi"}


def test_prod_memory_overcommit_refused():
    text = 'version: "2.0"\nservices:\n  a:\n    image: a:1\n'
    with pytest.raises(OvercommitRefused, match="PROD"):
        render(text, workspace="PROD", overcommit=Overcommit(mem_ratio=1.5))
    render(text, workspace="PROD", overcommit=Overcommit(mem_ratio=1.5, allow_prod_mem_overcommit=True))
    render(text, workspace="PROD", overcommit=Overcommit(cpu_ratio=3))


def test_service_variables(full):
    by, manifests = full
    ns = manifests[0]["metadata"]["name"]
    env = env_of(pod(by[("Deployment", "web")])["containers"][0], by)
    assert env["API_HOST"] == f"api.{ns}.svc.cluster.local"
    assert (env["API_PORT"], env["API_PORT0"], env["API_PORT1"]) == ("8001", "8001", "8000")
    assert env["AGENT_PORT"] == "7000" and "WORKER_HOST" not in env
    assert env["SELF_HOST"] == f"web.{ns}.svc.cluster.local" and env["SELF_PORT"] == "8080"
    assert env["DICE_WORKSPACE"] == "DEV" and env["DICE_RUNTIME_NAME"] == "main"
    assert env["DICE_PROJECT_NAME"] == "shop" and env["DICE_APPLICATION_NAME"] == "web"
    assert env["SHARED"] == "top" and env["OVERRIDE"] == "mine"
    names = [e["name"] for e in pod(by[("Deployment", "web")])["containers"][0]["env"]]
    assert len(names) == len(set(names))


def test_addon_variables_from_secrets(full):
    by, manifests = full
    ns = manifests[0]["metadata"]["name"]
    env = env_of(pod(by[("Deployment", "web")])["containers"][0], by)
    ref = lambda name, key: {"secretKeyRef": {"name": name, "key": key}}  # noqa: E731
    assert env["MYSQL_HOST"] == f"db.{ns}.svc.cluster.local" and env["MYSQL_USERNAME"] == "root"
    assert env["MYSQL_DATABASE"] == "db" and env["MYSQL_PASSWORD"] == ref("db-credentials", "password")
    assert env["SESSION_HOST"] == f"cache.{ns}.svc.cluster.local" and env["SESSION_PORT"] == "6379"
    assert env["SESSION_PASSWORD"] == ref("cache-credentials", "password") and "REDIS_HOST" not in env
    assert env["POSTGRES_HOST"] == f"pg-rw.{ns}.svc.cluster.local" and env["POSTGRES_USER"] == "dice"
    assert env["POSTGRES_PASSWORD"] == ref("pg-credentials", "password") and env["POSTGRES_DATABASE"] == "pg"
    assert env["ELASTICSEARCH_HOST"] == f"search-es-http.{ns}.svc.cluster.local"
    assert env["ELASTICSEARCH_PASSWORD"] == ref("search-credentials", "password")
    assert env["KAFKA_SERVERS"] == f"events-kafka-bootstrap.{ns}.svc.cluster.local:9092"
    assert env["RABBITMQ_USERNAME"] == "dice" and env["RABBITMQ_PASSWORD"] == ref("queue-credentials", "password")
    assert env["ZOOKEEPER_HOST"] == f"zk.{ns}.svc.cluster.local" and env["ZOOKEEPER_PORT"] == "2181"
    assert env["CUSTOM_URL"] == "http://ext" and env["CUSTOM_API_TOKEN"] == ref("ext-credentials", "api_token")
    secret = by[("Secret", "db-credentials")]
    assert base64.b64decode(secret["data"]["password"]).decode() == "pw-db"
    assert all("pw-db" not in str(m) for m in manifests)
    assert all("t0ken" not in str(m) for m in manifests)
    # One Secret per addon instance (kafka and zookeeper have no password).
    secrets = {name for kind, name in by if kind == "Secret" and name.endswith("-credentials")}
    assert secrets == {f"{n}-credentials" for n in ("db", "cache", "pg", "search", "queue", "ext")}


def test_operator_resources(full):
    by, _ = full
    assert by[("InnoDBCluster", "db")]["spec"]["instances"] == 3
    assert by[("InnoDBCluster", "db")]["spec"]["secretName"] == "db-credentials"
    assert by[("Redis", "cache")]["spec"]["kubernetesConfig"]["redisSecret"] == {"name": "cache-credentials", "key": "password"}
    cluster = by[("Cluster", "pg")]["spec"]
    assert cluster["instances"] == 3 and cluster["storage"] == {"size": "200Gi", "storageClass": "fast"}
    assert cluster["bootstrap"]["initdb"]["secret"] == {"name": "pg-credentials"}
    assert by[("Secret", "pg-credentials")]["type"] == "kubernetes.io/basic-auth"
    assert by[("Elasticsearch", "search")]["spec"]["nodeSets"][0]["count"] == 3
    assert by[("Kafka", "events")]["spec"]["kafka"]["listeners"][0]["port"] == 9092
    assert by[("KafkaNodePool", "events-pool")]["spec"]["replicas"] == 5
    assert by[("KafkaNodePool", "events-pool")]["metadata"]["labels"]["strimzi.io/cluster"] == "events"
    assert by[("RabbitmqCluster", "queue")]["spec"]["replicas"] == 1
    assert by[("StatefulSet", "zk")]["spec"]["replicas"] == 3  # no operator: the built-in ensemble


def test_redis_replication_for_larger_sizes():
    text = 'version: "2.0"\nservices:\n  a:\n    image: a:1\naddons:\n  r: {plan: "redis:professional"}\n'
    by, manifests = render(text)
    assert by[("RedisReplication", "r")]["spec"]["clusterSize"] == 2
    env = env_of(pod(by[("Deployment", "a")])["containers"][0], by)
    assert env["REDIS_HOST"].startswith("r-master.")


def test_builtin_addons_without_operators():
    text = ('version: "2.0"\nservices:\n  a:\n    image: a:1\naddons:\n  m: {plan: "mysql:basic"}\n'
            '  r: {plan: "redis:basic"}\n  p: {plan: "postgresql:basic", options: {version: "15"}}\n')
    by, _ = render(text, operators=frozenset())
    images = {n: pod(by[("StatefulSet", n)])["containers"][0]["image"] for n in "mrp"}
    assert images == {"m": "mysql:8", "r": "redis:7", "p": "postgres:15"}
    for name in "mrp":
        assert by[("Service", name)]["spec"]["clusterIP"] == "None"
        assert by[("StatefulSet", name)]["spec"]["volumeClaimTemplates"][0]["metadata"]["name"] == "data"
    redis = pod(by[("StatefulSet", "r")])["containers"][0]
    assert redis["args"][:2] == ["--requirepass", "$(REDIS_PASSWORD)"]


@pytest.mark.parametrize(("plan", "crd"), [
    ("elasticsearch:basic", "elasticsearches.elasticsearch.k8s.elastic.co"),
    ("kafka:basic", "kafkas.kafka.strimzi.io"),
    ("rabbitmq:basic", "rabbitmqclusters.rabbitmq.com"),
])
def test_type_without_operator_names_the_crd(plan, crd):
    text = f'version: "2.0"\nservices:\n  a:\n    image: a:1\naddons:\n  x: {{plan: "{plan}"}}\n'
    with pytest.raises(RenderError, match=crd.replace(".", r"\.")):
        render(text, operators=frozenset())


def test_jobs(full):
    by, _ = full
    job = next(m for (k, n), m in by.items() if k == "Job" and n.startswith("migrate-"))
    assert job["spec"]["backoffLimit"] == 2 and job["spec"]["activeDeadlineSeconds"] == 600
    assert job["spec"]["template"]["spec"]["restartPolicy"] == "Never"
    cron = by[("CronJob", "nightly")]["spec"]
    assert cron["schedule"] == "0 3 * * *" and cron["concurrencyPolicy"] == "Forbid"
    bj = next(m for (k, n), m in by.items() if k == "BroadcastJob")
    assert bj["apiVersion"] == "apps.kruise.io/v1alpha1"
    assert bj["spec"]["failurePolicy"]["restartLimit"] == 1
    assert bj["spec"]["completionPolicy"]["activeDeadlineSeconds"] == 120


def test_job_name_is_deterministic_and_changes_with_the_job():
    text = 'version: "2.0"\njobs:\n  j:\n    image: j:1\n'
    a = [n for k, n in render(text)[0] if k == "Job"]
    b = [n for k, n in render(text)[0] if k == "Job"]
    c = [n for k, n in render(text.replace("j:1", "j:2"))[0] if k == "Job"]
    assert a == b and a != c


def test_broadcast_without_kruise_falls_back_to_a_daemonset():
    text = 'version: "2.0"\njobs:\n  j:\n    image: j:1\n    cmd: ./sweep\n    broadcast: true\n'
    warnings: list[str] = []
    by, manifests = render(text, operators=frozenset(), warnings=warnings)
    assert not [m for m in manifests if m["kind"] == "BroadcastJob"]
    (name, ds), = [(n, m) for (k, n), m in by.items() if k == "DaemonSet"]
    assert name.startswith("j-") and ds["metadata"]["annotations"]["dice.io/broadcast-of"] == "j"
    spec = ds["spec"]["template"]["spec"]
    assert spec["restartPolicy"] == "Always"
    assert spec["initContainers"][-1]["image"] == "j:1" and spec["initContainers"][-1]["command"] == ["sh", "-c", "./sweep"]
    assert spec["containers"][0]["image"].startswith("registry.k8s.io/pause:")
    labels = ds["spec"]["template"]["metadata"]["labels"]
    assert all(labels[k] == v for k, v in ds["spec"]["selector"]["matchLabels"].items())
    assert any("DaemonSet" in w and "OpenKruise" in w for w in warnings)
    # A changed job is a new DaemonSet (runs again on every node); the same one keeps its name.
    again = [n for k, n in render(text, operators=frozenset())[0] if k == "DaemonSet"]
    changed = [n for k, n in render(text.replace("j:1", "j:2"), operators=frozenset())[0] if k == "DaemonSet"]
    assert again == [name] and changed != [name]


def test_node_selectors_reach_every_kind_of_workload():
    text = """version: "2.0"
services:
  web: {image: web:1, ports: [80]}
  agent: {image: agent:1, deployments: {workload: per_node}}
addons:
  cache: {plan: "redis:basic"}
jobs:
  once: {image: j:1}
  nightly: {image: j:1, schedule: "0 3 * * *"}
  sweep: {image: j:1, broadcast: true}
"""
    selectors = {"stateless": {"dice/stateless-service": "true", "dice/workspace-dev": "true"},
                 "stateful": {"dice/stateful-service": "true"}, "job": {"dice/job": "true"}}
    for operators in (frozenset(), ALL_OPERATORS):
        by, manifests = render(text, operators=operators, node_selectors=selectors)

        def pod_of(m):
            spec = m["spec"]
            if m["kind"] == "CronJob":
                spec = spec["jobTemplate"]["spec"]
            return spec["template"]["spec"]

        assert pod_of(by[("Deployment", "web")])["nodeSelector"] == selectors["stateless"]
        assert pod_of(by[("DaemonSet", "agent")])["nodeSelector"] == selectors["stateless"]
        assert pod_of(by[("CronJob", "nightly")])["nodeSelector"] == selectors["job"]
        job = next(m for m in manifests if m["kind"] == "Job")
        assert pod_of(job)["nodeSelector"] == selectors["job"]
        sweep = next(m for m in manifests if m["kind"] in ("BroadcastJob", "DaemonSet")
                     and m["metadata"]["name"].startswith("sweep"))
        assert pod_of(sweep)["nodeSelector"] == selectors["job"]
        if not operators:
            assert pod_of(by[("StatefulSet", "cache")])["nodeSelector"] == selectors["stateful"]
    by, _ = render(text, operators=frozenset())
    assert "nodeSelector" not in by[("Deployment", "web")]["spec"]["template"]["spec"]


def test_erda_location_selector_asks_for_dice_location_labels():
    text = 'version: "2.0"\nservices:\n  web: {image: w:1, deployments: {selectors: {location: "gpu|edge", disk: ssd}}}\n'
    by, _ = render(text)
    terms = by[("Deployment", "web")]["spec"]["template"]["spec"]["affinity"]["nodeAffinity"][
        "requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
    assert terms == [
        {"matchExpressions": [{"key": "disk", "operator": "In", "values": ["ssd"]},
                              {"key": "dice/location-gpu", "operator": "In", "values": ["true"]}]},
        {"matchExpressions": [{"key": "disk", "operator": "In", "values": ["ssd"]},
                              {"key": "dice/location-edge", "operator": "In", "values": ["true"]}]},
    ]
    with pytest.raises(RenderError, match="selectors.location: 'no good'"):
        render(text.replace("gpu|edge", "no good"))


def test_an_addon_that_runs_built_in_stays_built_in_when_the_operator_appears():
    text = 'version: "2.0"\nservices:\n  web: {image: w:1}\naddons:\n  db: {plan: "postgresql:basic"}\n'
    by, _ = render(text, operators=ALL_OPERATORS)
    assert ("Cluster", "db") in by and by[("Secret", "db-credentials")]["type"] == "kubernetes.io/basic-auth"
    warnings: list[str] = []
    by, _ = render(text, operators=ALL_OPERATORS, keep_builtin={"db"}, warnings=warnings)
    assert ("StatefulSet", "db") in by and ("Cluster", "db") not in by
    assert by[("Secret", "db-credentials")]["type"] == "Opaque"
    assert any("keeps its built-in StatefulSet" in w for w in warnings)


def test_missing_image_names_the_service():
    text = 'version: "2.0"\nservices:\n  lonely: {ports: [80]}\n'
    with pytest.raises(RenderError, match="service 'lonely': no image: give one in dice.yml or the release's image map"):
        render(text)
    by, _ = render(text, images={"lonely": "lonely:2"})
    assert pod(by[("Deployment", "lonely")])["containers"][0]["image"] == "lonely:2"


def test_pull_secret_from_image_credentials(full):
    by, _ = full
    secret = by[("Secret", "api-registry")]
    assert secret["type"] == "kubernetes.io/dockerconfigjson"
    config = base64.b64decode(secret["data"][".dockerconfigjson"]).decode()
    assert '"registry.example.com"' in config
    assert pod(by[("Deployment", "api")])["imagePullSecrets"] == [{"name": "api-registry"}]


def test_namespace_override():
    _, manifests = render(namespace="custom-ns")
    assert manifests[0]["metadata"]["name"] == "custom-ns"
    assert {m["metadata"].get("namespace") for m in manifests[1:]} == {"custom-ns"}


def test_addon_name_clash_with_service():
    text = 'version: "2.0"\nservices:\n  db:\n    image: a:1\naddons:\n  db: {plan: "redis:basic"}\n'
    with pytest.raises(RenderError, match="addon 'db'"):
        render(text)


DEPENDENT = """
version: "2.0"
services:
  front:
    image: front:1
    ports: [8080]
    depends_on: [api]
  api:
    image: api:1
    ports: [8000, 8001]
  lone:
    image: lone:1
addons:
  cache: {plan: "redis:basic"}
"""


def test_services_wait_for_addons_and_dependencies():
    by_name, _ = render(DEPENDENT, operators=())
    ns = by_name[("Deployment", "front")]["metadata"]["namespace"]
    front = pod(by_name[("Deployment", "front")])["initContainers"][0]
    assert front["name"] == "wait-for-dependencies"
    script = front["command"][-1]
    assert f"api.{ns}.svc.cluster.local:8000" in script
    redis_host = env_of(pod(by_name[("Deployment", "api")])["containers"][0], by_name)["REDIS_HOST"]
    assert f"{redis_host}:6379" in script
    # api waits only for the addon; order in the script: addons first, then dependencies.
    api_script = pod(by_name[("Deployment", "api")])["initContainers"][0]["command"][-1]
    assert "svc.cluster.local:8000" not in api_script and f"{redis_host}:6379" in api_script
    assert script.index(redis_host) < script.index(f"api.{ns}")


def test_no_wait_container_without_dependencies():
    by_name, _ = render(DEPENDENT.replace("addons:\n  cache: {plan: \"redis:basic\"}\n", ""), operators=())
    assert "initContainers" not in pod(by_name[("Deployment", "lone")])
    assert pod(by_name[("Deployment", "front")])["initContainers"][0]["name"] == "wait-for-dependencies"


def _many(n: int, extra: str = "") -> str:
    services = "".join(f"  svc-{i}:\n    image: app:1\n    ports: [{8000 + i}, 9000]\n" for i in range(n))
    return f'version: "2.0"\nservices:\n{services}{extra}'


def test_shared_variables_are_rendered_once_per_runtime_and_objects_grow_linearly():
    """Discovery is one ConfigMap read through envFrom: a Deployment's size does not depend on how
    many services the runtime has (inline, each carried ~4n variables: n^2 in total)."""
    sizes = {}
    for n in (10, 80):
        by, manifests = render(_many(n), operators=())
        deployment = by[("Deployment", "svc-0")]
        sizes[n] = len(str(deployment))
        env = container_env(pod(deployment)["containers"][0], manifests)
        ns = manifests[0]["metadata"]["name"]
        last = n - 1
        assert env[f"SVC_{last}_HOST"] == f"svc-{last}.{ns}.svc.cluster.local"
        assert (env[f"SVC_{last}_PORT"], env[f"SVC_{last}_PORT0"], env[f"SVC_{last}_PORT1"]) == (
            str(8000 + last), str(8000 + last), "9000")
        shared = by[("ConfigMap", "dice-env")]["data"]
        assert len(shared) == 4 * n
        # No container repeats the shared variables inline.
        inline = [e["name"] for m in manifests if m["kind"] == "Deployment"
                  for e in pod(m)["containers"][0]["env"]]
        assert not [name for name in inline if name in shared]
        kinds = [m["kind"] for m in manifests]
        assert kinds.index("ConfigMap") < kinds.index("Deployment")  # applied before its readers
    assert sizes[80] < sizes[10] * 1.1, sizes


def test_own_variables_win_over_shared_ones_and_a_change_rolls_the_pods():
    by, manifests = render(_many(3, extra="envs: {SVC_1_HOST: mine}\n"), operators=())
    container = pod(by[("Deployment", "svc-0")])["containers"][0]
    # env wins over envFrom in Kubernetes: the file's value is inline, so it is what svc-0 sees.
    assert {"name": "SVC_1_HOST", "value": "mine"} in container["env"]
    assert container_env(container, manifests)["SVC_1_HOST"] == "mine"
    before = by[("Deployment", "svc-0")]["spec"]["template"]["metadata"]["annotations"]["dice.io/shared-env"]
    again, _ = render(_many(3, extra="envs: {SVC_1_HOST: mine}\n"), operators=())
    added, _ = render(_many(4, extra="envs: {SVC_1_HOST: mine}\n"), operators=())
    template = lambda b: b[("Deployment", "svc-0")]["spec"]["template"]  # noqa: E731
    assert template(again)["metadata"]["annotations"]["dice.io/shared-env"] == before  # stable
    # A new service's variables reach the running services as they did inline: the pods roll.
    assert template(added)["metadata"]["annotations"]["dice.io/shared-env"] != before


def test_jobs_and_sidecars_read_the_shared_variables_too(full):
    by, manifests = full
    sidecar = pod(by[("Deployment", "web")])["containers"][1]
    job = next(m for m in manifests if m["kind"] == "Job")
    for container in (sidecar, job["spec"]["template"]["spec"]["containers"][0]):
        env = container_env(container, manifests)
        assert env["API_PORT"] == "8001" and env["MYSQL_PORT"] == "3306"
