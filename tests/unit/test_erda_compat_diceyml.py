"""dice.yml files written the way Erda's own files are (issue 26): each item read as Erda reads it.

The files here are written for these tests, in the style of the corpus in shared/conformance/erda.
"""

from __future__ import annotations

import json
import textwrap

import pytest

from dice_cli.main import main as dice_main
from diceyml import check_dice_yml, parse_dice_yml, validate_dice_yml
from speckit import SpecInvalid


def spec(body: str, version: str = '"2.0"') -> str:
    return f"version: {version}\n" + textwrap.dedent(body).lstrip("\n")


def errors_of(text: str, workspace: str | None = None) -> dict[str, tuple[int | None, str]]:
    return {e.path: (e.line, e.message) for e in validate_dice_yml(text, workspace=workspace)}


WEB = """
services:
  web:
    image: registry.example.com/shop/web:1.2
    ports: [8080]
"""


# ---- version ----------------------------------------------------------------------------------


@pytest.mark.parametrize("version", ["2", "2.0", '"2.0"', '"2"'])
def test_version_2_as_number_or_text_is_complete(version):
    doc = parse_dice_yml(spec(WEB, version=version))
    assert doc.version == "2.0" and "web" in doc.services


def test_other_versions_are_refused_with_the_version_named():
    found = errors_of(spec(WEB, version="3"))
    assert "unsupported version 3" in found["version"][1]


# ---- addons -----------------------------------------------------------------------------------

ERDA_ADDONS = """
addons:
  oss:
    plan: alicloud-oss:basic
  gateway:
    plan: api-gateway:basic
  logs:
    plan: log-analytics:basic
  search:
    plan: terminus-elasticsearch:professional
  monitor:
    plan: monitor:dev
  rds:
    plan: rds
  ext:
    plan: custom
    options:
      URL: https://ext.example.com
"""


def test_any_addon_type_is_valid_in_the_file():
    doc = parse_dice_yml(spec(WEB + ERDA_ADDONS))
    types = {name: (a.type, a.size) for name, a in doc.addons.items()}
    assert types == {
        "oss": ("alicloud-oss", "basic"),
        "gateway": ("api-gateway", "basic"),
        "logs": ("log-analytics", "basic"),
        "search": ("elasticsearch", "professional"),
        "monitor": ("monitor", "dev"),
        "rds": ("rds", "basic"),  # a bare type takes the default size
        "ext": ("custom", "basic"),
    }
    assert doc.addons["rds"].plan == "rds" and not doc.addons["rds"].size_given


def test_bare_plan_takes_professional_in_production_and_explicit_basic_is_refused():
    text = spec(WEB + "addons:\n  db: {plan: mysql}\n  cache: {plan: 'redis:basic'}\n")
    found = errors_of(text, workspace="PROD")
    assert (
        list(found) == ["addons.cache.plan"]
        and "basic is not allowed in production" in found["addons.cache.plan"][1]
    )
    doc = parse_dice_yml(
        text.replace("cache: {plan: 'redis:basic'}", "cache: {plan: redis}"), workspace="PROD"
    )
    assert doc.addons["db"].plan == "mysql:professional" and doc.addons["cache"].size == "professional"
    assert parse_dice_yml(text, workspace="DEV").addons["db"].size == "basic"


@pytest.mark.parametrize(
    ("plan", "words"),
    [
        ("'mysql:'", "'<type>:<size>' or '<type>'"),
        ("'My SQL'", "is not an addon type name"),
        ("'mysql:huge'", "unknown addon size 'huge'"),  # the built-in types keep their sizes
    ],
)
def test_bad_plans_are_still_errors(plan, words):
    found = errors_of(spec(WEB + f"addons:\n  db: {{plan: {plan}}}\n"))
    assert words in found["addons.db.plan"][1]


# ---- ports --------------------------------------------------------------------------------------


def test_port_protocol_is_any_application_protocol():
    doc = parse_dice_yml(
        spec(
            """
            services:
              dns:
                image: coredns:1.11
                ports:
                  - {port: 53, protocol: DNS, l4_protocol: UDP}
                  - {port: 53, protocol: DNS}
                  - {port: 9090, protocol: grpc}
                  - {port: 443, protocol: HTTPS, expose: true}
                  - {port: 5353, protocol: UDP}
            """
        )
    )
    ports = [(p.port, p.protocol, p.l4_protocol) for p in doc.services["dns"].ports]
    assert ports == [
        (53, "DNS", "UDP"),
        (53, "DNS", "TCP"),
        (9090, "GRPC", "TCP"),
        (443, "HTTPS", "TCP"),
        (5353, "UDP", "UDP"),
    ]


def test_l4_protocol_is_tcp_or_udp():
    found = errors_of(spec("services:\n  a:\n    image: a\n    ports: [{port: 1, l4_protocol: SCTP}]\n"))
    assert "'TCP' or 'UDP'" in found["services.a.ports.0.l4_protocol"][1]


# ---- volumes: the deprecated form, with a warning -----------------------------------------------

OLD_VOLUMES = spec(
    """
    services:
      blog:
        image: blog:1
        volumes:
          - storage: nfs
            path: /data
          - {id: logs, storage: local, path: /var/log/blog}
          - cache~local:/cache
    """
)


def test_deprecated_volume_form_is_read():
    doc = parse_dice_yml(OLD_VOLUMES)
    vols = [(v.name, v.type, v.target_path) for v in doc.services["blog"].volumes]
    assert vols == [
        ("vol-data", "nfs", "/data"),
        ("logs", "local", "/var/log/blog"),
        ("cache", "local", "/cache"),
    ]


def test_deprecated_volume_form_is_a_warning_beside_errors():
    errors, warnings = check_dice_yml(OLD_VOLUMES)
    assert errors == []
    assert [(w.path, w.line) for w in warnings] == [
        ("services.blog.volumes.0", 6),
        ("services.blog.volumes.1", 8),
    ]
    assert "deprecated" in warnings[0].message


def test_validate_json_has_a_warnings_list(tmp_path, capsys):
    path = tmp_path / "dice.yml"
    path.write_text(OLD_VOLUMES)
    code = dice_main(["spec", "validate", str(path), "--format", "json"])
    report = json.loads(capsys.readouterr().out)
    assert code == 0 and report["valid"] is True and report["errors"] == []
    assert [w["path"] for w in report["warnings"]] == ["services.blog.volumes.0", "services.blog.volumes.1"]
    code = dice_main(["spec", "validate", str(path)])
    out = capsys.readouterr().out
    assert code == 0 and f"{path}: valid" in out and f"{path}:6: services.blog.volumes.0: warning: " in out


# ---- sidecars -------------------------------------------------------------------------------------


def test_sidecar_may_omit_its_image():
    doc = parse_dice_yml(
        spec("services:\n  web:\n    image: w\n    sidecars:\n      filebeat:\n        cmd: run\n")
    )
    assert doc.services["web"].sidecars["filebeat"].image == ""


# ---- environments --------------------------------------------------------------------------------

ENVIRONMENTS = spec(
    """
    envs:
      LOG_LEVEL: info
    services:
      web:
        image: web:1
    addons:
      db:
        plan: mysql:basic
      cache:
        plan: redis:basic
    environments:
      production:
        services:
          canary:
            image: web:2
            deployments: {replicas: 1}
        addons:
          db:
            plan: mysql:ultimate
      test:
        services:
          wbe:
            image: web:typo
    """
)


def test_a_service_defined_only_under_an_environment_is_added_there():
    prod = parse_dice_yml(ENVIRONMENTS, workspace="PROD")
    assert set(prod.services) == {"web", "canary"} and prod.services["canary"].image == "web:2"
    assert set(parse_dice_yml(ENVIRONMENTS, workspace="DEV").services) == {"web"}


def test_an_environment_only_service_that_looks_like_a_typo_is_a_warning():
    errors, warnings = check_dice_yml(ENVIRONMENTS)
    assert errors == []
    assert [(w.path, w.message) for w in warnings] == [
        (
            "environments.test.services.wbe",
            "service 'wbe' is defined only in this environment (did you mean 'web'?)",
        )
    ]


def test_environment_only_service_names_follow_the_name_rules():
    text = ENVIRONMENTS.replace("canary:", "Canary_1:")
    found = errors_of(text)
    assert "not a valid name" in found["environments.production.services.Canary_1"][1]


def test_an_environment_addons_replace_the_base_addons():
    prod = parse_dice_yml(ENVIRONMENTS, workspace="PROD")
    assert {n: a.plan for n, a in prod.addons.items()} == {"db": "mysql:ultimate"}  # no cache in PROD
    dev = parse_dice_yml(ENVIRONMENTS, workspace="DEV")
    assert {n: a.plan for n, a in dev.addons.items()} == {"db": "mysql:basic", "cache": "redis:basic"}


@pytest.mark.parametrize("name", ["8080port", "1X", "A B"])
def test_top_level_envs_follow_the_service_env_rules(name):
    found = errors_of(spec(WEB + f"envs:\n  '{name}': x\n"))
    assert found["envs"][1] == f"'{name}' is not a valid environment variable name"
    found = errors_of(spec(WEB + f"environments:\n  test:\n    envs:\n      '{name}': x\n"))
    assert list(found) == ["environments.test.envs"]


# ---- values without a workspace ----------------------------------------------------------------

VALUES = """
services:
  api:
    image: api:1
    cmd: serve --db ${db_host}
    deployments:
      replicas: ${replicas}
values:
  development: {replicas: 1, db_host: dev-db}
  test: {replicas: 1, db_host: test-db}
  staging: {replicas: 2, db_host: stg-db}
  production: {replicas: 3}
"""


def test_a_placeholder_every_environment_fills_is_not_an_error_without_a_workspace():
    assert validate_dice_yml(spec(VALUES)) == []
    assert parse_dice_yml(spec(VALUES), workspace="STAGING").services["api"].deployments.replicas == 2
    assert parse_dice_yml(spec(VALUES), workspace="PROD").services["api"].cmd == "serve --db ${db_host}"


def test_a_placeholder_one_environment_lacks_names_that_environment():
    text = spec(VALUES.replace("staging: {replicas: 2, db_host: stg-db}", "staging: {db_host: stg-db}"))
    (err,) = validate_dice_yml(text)
    assert err.path == "services.api.deployments.replicas" and err.line == 7
    assert "values.staging has no 'replicas'" in err.message


def test_a_value_that_breaks_one_environment_is_reported_for_it():
    text = spec(VALUES.replace("staging: {replicas: 2,", "staging: {replicas: -2,"))
    (err,) = validate_dice_yml(text)
    assert err.path == "services.api.deployments.replicas" and err.message.endswith("(with values.staging)")


# ---- endpoints, traffic security, platform and secret placeholders ------------------------------

GATEWAY = spec(
    """
    services:
      web:
        image: web:1
        ports:
          - {port: 8080, expose: true}
        traffic_security:
          mode: https
        endpoints:
          - domain: shop.*
            path: /api
            backend_path: /
            policies:
              cors:
                allow_origins: any
              rate_limit:
                qps: 100
          - domain: www.shop.example
        envs:
          PROJECT: ${platform.DICE_PROJECT_NAME}
          CLUSTER: ${platform.DICE_CLUSTER_NAME}
          DB_PASSWORD: ((DB_PASSWORD))
    """
)


def test_endpoint_policies_traffic_security_and_placeholders_are_accepted():
    web = parse_dice_yml(GATEWAY, workspace="PROD").services["web"]
    first = web.endpoints[0]
    assert first.policies.cors is not None and first.policies.cors.allow_origins == ["*"]
    assert first.policies.rate_limit is not None and first.policies.rate_limit.qps == 100
    assert web.endpoints[1].policies.cors is None and web.https
    assert (
        web.envs["PROJECT"] == "${platform.DICE_PROJECT_NAME}"
        and web.envs["DB_PASSWORD"] == "((DB_PASSWORD))"
    )


@pytest.mark.parametrize(
    ("before", "after", "path", "words"),
    [
        ("qps: 100", "qps: 0", "services.web.endpoints.0.policies.rate_limit.qps", "must be > 0"),
        ("qps: 100", "qpx: 100", "services.web.endpoints.0.policies.rate_limit.qpx", "unknown key"),
        ("mode: https", "mode: mtls", "services.web.traffic_security.mode", "'https'"),
        ("${platform.DICE_CLUSTER_NAME}", "${platform.DICE_NOPE}", "services.web.envs.CLUSTER", "DICE_NOPE"),
    ],
)
def test_bad_policies_and_platform_names_are_errors(before, after, path, words):
    found = errors_of(GATEWAY.replace(before, after))
    assert words in found[path][1], found


# ---- binds ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("bind", "path", "message"),
    [
        ("data:/data", "binds.0.host", "the host path must be absolute, got 'data'"),
        ("{host: data, container: /data}", "binds.0.host", "the host path must be absolute, got 'data'"),
        ("/a:/b:rx", "binds.0.type", "the mode must be rw or ro, got 'rx'"),
        ("/a:b:ro", "binds.0.container", "the container path must be absolute, got 'b'"),
    ],
)
def test_bind_rules(bind, path, message):
    found = errors_of(spec(f"services:\n  a:\n    image: a\n    binds:\n      - {bind}\n"))
    assert found[f"services.a.{path}"] == (6, message)


def test_good_binds():
    doc = parse_dice_yml(
        spec("services:\n  a:\n    image: a\n    binds: ['/a:/b', '/c:/d:ro', '<%$.Root%>/x:/x:rw']\n")
    )
    assert [(b.host, b.container, b.type) for b in doc.services["a"].binds] == [
        ("/a", "/b", "rw"),
        ("/c", "/d", "ro"),
        ("<%$.Root%>/x", "/x", "rw"),
    ]


# ---- duplicate keys -------------------------------------------------------------------------------


def test_duplicate_keys_stay_an_error_naming_both_lines():
    text = spec("services:\n  web:\n    image: a\n    ports: [80]\n    image: b\n")
    with pytest.raises(SpecInvalid) as info:
        parse_dice_yml(text)
    (err,) = info.value.errors
    assert "duplicate key 'image'" in err.message and "line 4" in err.message and "line 6" in err.message
