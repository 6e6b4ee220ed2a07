"""dice.yml typed model: short forms normalised, defaults explicit, environments merged, values filled."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

from diceyml import (
    MAX_SERVICES,
    dice_yml_json_schema,
    effective_spec,
    normalize_workspace,
    parse_dice_yml,
)
from diceyml.models import DEFAULT_CPU, DEFAULT_MEM


def spec(body: str) -> str:
    return 'version: "2.0"\n' + textwrap.dedent(body)


def test_defaults_are_explicit():
    doc = parse_dice_yml(spec("services:\n  api:\n    ports: [8080]\n"))
    api = doc.services["api"]
    assert api.deployments.replicas == 1
    assert api.deployments.policies == "shuffle" and api.deployments.workload == "default"
    assert api.resources.cpu == DEFAULT_CPU and api.resources.mem == DEFAULT_MEM
    assert api.resources.max_cpu is None and api.resources.network.mode == "container"
    port = api.ports[0]
    assert (port.port, port.protocol, port.l4_protocol, port.expose, port.default) == (
        8080,
        "TCP",
        "TCP",
        False,
        False,
    )
    assert api.default_port is port
    assert api.image == "" and api.cmd == "" and api.health_check is None


def test_short_forms_normalised():
    doc = parse_dice_yml(
        spec(
            """
            envs: {GLOBAL: 1}
            services:
              api:
                cmd: [python, -m, http.server]
                ports: ["9000/udp", {port: 80, protocol: http, default: true}]
                expose: [80]
                envs: {N: 3, F: 0.5, B: true, Z: null, S: text}
                binds: ["/data:/data", "/etc/x:/etc/x:ro", {host: /h, container: /c, type: ro}]
                volumes: ["cache~nfs:/cache", "/logs", {type: ssd, size: 10, targetPath: /db, readOnly: true}]
                health_check: {exec: {cmd: [ls, /]}}
                deployments: {policies: Unique, workload: PER_NODE, selectors: {zone: "a|b"}}
            """
        )
    )
    api = doc.services["api"]
    assert api.cmd == "python -m http.server"
    assert [(p.port, p.protocol, p.l4_protocol) for p in api.ports] == [
        (9000, "UDP", "UDP"),
        (80, "HTTP", "TCP"),
    ]
    assert api.ports[1].expose is True and api.default_port.port == 80
    assert api.envs == {"N": "3", "F": "0.5", "B": "true", "Z": "", "S": "text"}
    assert doc.service_envs("api")["GLOBAL"] == "1"
    assert [(b.host, b.container, b.type) for b in api.binds] == [
        ("/data", "/data", "rw"),
        ("/etc/x", "/etc/x", "ro"),
        ("/h", "/c", "ro"),
    ]
    v = api.volumes
    assert (v[0].name, v[0].type, v[0].target_path) == ("cache", "nfs", "/cache")
    assert (v[1].name, v[1].type, v[1].target_path) == ("vol-logs", "local", "/logs")
    assert (v[2].type, v[2].size, v[2].read_only) == ("ssd", 10, True)
    assert api.health_check.kind == "exec" and api.health_check.exec.cmd == "ls /"
    assert api.health_check.duration == 120
    assert api.deployments.policies == "unique" and api.deployments.workload == "per_node"
    assert api.deployments.selectors == {"zone": ["a", "b"]}


def test_jobs_and_addons():
    doc = parse_dice_yml(
        spec(
            """
            jobs:
              backup: {image: b, schedule: "0 3 * * *", backoff_limit: 2, active_deadline: 600}
              agent: {image: a, broadcast: true}
            addons:
              db: {plan: "MySQL:Large", as: ORDER_DB, options: {version: 5.7}}
              cache: {plan: "redis:medium"}
              pg: {plan: "postgres:basic"}
            """
        )
    )
    assert doc.jobs["backup"].schedule == "0 3 * * *" and doc.jobs["backup"].backoff_limit == 2
    assert doc.jobs["agent"].broadcast is True and doc.jobs["agent"].backoff_limit == 0
    db = doc.addons["db"]
    assert (db.plan, db.type, db.size, db.env_prefix, db.options) == (
        "mysql:ultimate",
        "mysql",
        "ultimate",
        "ORDER_DB",
        {"version": "5.7"},
    )
    assert doc.addons["cache"].size == "professional"
    assert (doc.addons["pg"].type, doc.addons["pg"].env_prefix) == ("postgresql", "POSTGRES")


def test_endpoints_and_snippet():
    doc = parse_dice_yml(
        spec(
            """
            services:
              web:
                endpoints: [{domain: "shop.*"}, {domain: Shop.Example.com, path: /api, backend_path: /}]
                k8s_snippet: {container: {securityContext: {privileged: true}}}
            """
        )
    )
    ep = doc.services["web"].endpoints
    assert ep[0].wildcard and ep[0].path == "/" and ep[0].backend_path == "/"
    assert (ep[1].domain, ep[1].path, ep[1].backend_path) == ("shop.example.com", "/api", "/")
    assert doc.services["web"].k8s_snippet.container == {"securityContext": {"privileged": True}}


MERGE = spec(
    """
    envs: {LEVEL: info, KEEP: "1"}
    services:
      api:
        image: api:1
        ports: [80, 81]
        envs: {A: a, B: b}
        resources: {cpu: 0.5, mem: 256}
        deployments:
          replicas: ${replicas:1}
        cmd: run --db ${db_host} --port ${env.PORT} <%tpl%>
    addons:
      db: {plan: "mysql:basic"}
    environments:
      production:
        envs: {LEVEL: warn}
        services:
          api:
            ports: [8080]
            envs: {B: prod}
            resources: {cpu: 2}
        addons:
          db: {plan: "mysql:ultimate"}
          extra: {plan: "redis:professional"}
    values:
      production: {replicas: 3, db_host: db.prod}
      test: {db_host: db.test}
    """
)


@pytest.mark.parametrize("workspace", ["PROD", "prod", "production", "Production"])
def test_environment_merged_for_workspace(workspace):
    doc = parse_dice_yml(MERGE, workspace=workspace)
    api = doc.services["api"]
    assert doc.environment == "production"
    assert doc.envs == {"LEVEL": "warn", "KEEP": "1"}
    assert [p.port for p in api.ports] == [8080]  # lists replaced
    assert api.envs == {"A": "a", "B": "prod"}  # maps merged deeply
    assert (api.resources.cpu, api.resources.mem) == (2, 256)
    assert api.deployments.replicas == 3
    assert api.cmd == "run --db db.prod --port ${env.PORT} <%tpl%>"
    assert doc.addons["db"].size == "ultimate" and "extra" in doc.addons


def test_base_and_other_workspaces():
    base = parse_dice_yml(MERGE)
    assert base.environment is None and base.services["api"].deployments.replicas == 1
    assert base.services["api"].cmd == "run --db ${db_host} --port ${env.PORT} <%tpl%>"
    test = parse_dice_yml(MERGE, workspace="TEST")
    assert test.services["api"].cmd.startswith("run --db db.test ")
    assert [p.port for p in test.services["api"].ports] == [80, 81]


def test_effective_spec_is_plain_data():
    data = effective_spec(MERGE, workspace="PROD")
    assert json.loads(json.dumps(data)) == data
    assert data["services"]["api"]["ports"][0]["port"] == 8080
    assert data["addons"]["db"]["type"] == "mysql"
    assert "environments" not in data and "values" not in data


def test_normalize_workspace():
    assert [normalize_workspace(w) for w in ("DEV", "test", "Staging", "PROD", "development")] == [
        "development",
        "test",
        "staging",
        "production",
        "development",
    ]
    with pytest.raises(ValueError, match="unknown workspace 'qa'"):
        normalize_workspace("qa")


def test_json_schema_describes_input_forms():
    jsonschema = pytest.importorskip("jsonschema")
    schema = dice_yml_json_schema()
    assert schema["title"] == "dice.yml"
    assert set(schema["properties"]) >= {"version", "services", "jobs", "addons", "environments", "values"}
    instance = {
        "version": "2.0",
        "services": {
            "api": {
                "ports": [8080, {"port": 80, "protocol": "HTTP"}],
                "binds": ["/a:/b:ro"],
                "volumes": ["/logs"],
                "envs": {"N": 1},
                "health_check": {"http": {"port": 80}},
            }
        },
        "addons": {"db": {"plan": "mysql:basic"}},
        "environments": {"production": {"services": {"api": {"envs": {"X": "y"}}}}},
    }
    jsonschema.validate(instance, schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"services": {"api": {"imagee": "x"}}}, schema)


def test_many_services_up_to_the_limit():
    body = "services:\n" + "".join(f"  s{i}: {{image: x}}\n" for i in range(MAX_SERVICES))
    assert len(parse_dice_yml(spec(body)).services) == MAX_SERVICES


def test_no_django_import():
    code = "import sys, diceyml, speckit, speckit.pydantic_errors; sys.exit('django' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0
