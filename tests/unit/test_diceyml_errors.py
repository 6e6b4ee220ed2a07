"""dice.yml validation: each rule gives a clear error with its dotted path and line; hostile input is refused fast."""

from __future__ import annotations

import textwrap
import time

import pytest

from diceyml import parse_dice_yml, validate_dice_yml
from speckit import SpecInvalid


def spec(body: str) -> str:
    return 'version: "2.0"\n' + textwrap.dedent(body)


def errors_of(text: str, **kwargs) -> dict[str, tuple[int | None, str]]:
    return {e.path: (e.line, e.message) for e in validate_dice_yml(text, **kwargs)}


def one_error(text: str, **kwargs):
    errors = validate_dice_yml(text, **kwargs)
    assert len(errors) == 1, errors
    return errors[0]


def test_all_errors_at_once_with_paths_and_lines():
    text = spec(
        """
        services:
          api:
            image: x
            resources:
              cpu: 2
              max_cpu: 1
              mem: 512
              max_mem: 256
            deployments:
              replicas: -1
          web:
            imagee: nginx
            ports: [0, 70000]
        """
    )
    with pytest.raises(SpecInvalid) as info:
        parse_dice_yml(text)
    found = {e.path: (e.line, e.message) for e in info.value.errors}
    assert found["services.api.resources.max_cpu"] == (8, "max_cpu (1) must be >= cpu (2)")
    assert found["services.api.resources.max_mem"] == (10, "max_mem (256) must be >= mem (512)")
    assert found["services.api.deployments.replicas"] == (12, "must be >= 0, got -1")
    assert found["services.web.imagee"] == (14, "unknown key 'imagee' (did you mean 'image'?)")
    assert found["services.web.ports.0.port"][1] == "must be >= 1, got 0"
    assert found["services.web.ports.1.port"][1] == "must be <= 65535, got 70000"
    assert [e.line for e in info.value.errors] == sorted(e.line for e in info.value.errors)


def test_resource_rule_reported_even_when_the_service_has_other_errors():
    found = errors_of(spec("services:\n  api:\n    bogus: 1\n    resources: {cpu: 2, max_cpu: 1}\n"))
    assert "services.api.bogus" in found and "services.api.resources.max_cpu" in found


def test_depends_on_unknown_and_cycle():
    found = errors_of(
        spec(
            """
            services:
              a: {depends_on: [b]}
              b: {depends_on: [a, ghots]}
              ghost: {}
              c: {depends_on: [c]}
            """
        )
    )
    assert found["services.b.depends_on.1"][1] == "unknown service 'ghots' (did you mean 'ghost'?)"
    assert found["services.a.depends_on"] == (4, "dependency cycle: a -> b -> a")
    assert found["services.c.depends_on.0"][1] == "service 'c' depends on itself"


def test_longer_cycle_named_once():
    found = validate_dice_yml(
        spec("services:\n  x: {depends_on: [y]}\n  y: {depends_on: [z]}\n  z: {depends_on: [x]}\n")
    )
    assert [e.message for e in found] == ["dependency cycle: x -> y -> z -> x"]


@pytest.mark.parametrize(
    ("section", "name", "why"),
    [
        ("services", "Api", "uppercase"),
        ("services", "my_api", "characters other than"),
        ("jobs", "-job", "start and end"),
        ("addons", "a" * 64, "64 characters"),
    ],
)
def test_names_must_be_dns_labels(section, name, why):
    body = {"services": f"services:\n  {name}: {{}}\n", "jobs": f"jobs:\n  {name}: {{}}\n"}.get(
        section, f"services:\n  ok: {{}}\naddons:\n  {name}: {{plan: 'redis:basic'}}\n"
    )
    err = one_error(spec(body))
    assert (
        err.path == f"{section}.{name}"
        and f"'{name}' is not a valid name" in err.message
        and why in err.message
    )


@pytest.mark.parametrize(
    ("body", "path", "words"),
    [
        ("health_check: {http: {port: 80}, exec: {cmd: ls}}", "health_check", "either http or exec"),
        ("health_check: {http: {path: /x}}", "health_check.http.port", "'port' is required"),
        ("health_check: {http: {port: 80, path: x}}", "health_check.http.path", "start with '/'"),
        ("health_check: {exec: {duration: 5}}", "health_check.exec.cmd", "'cmd' is required"),
        ("binds: [nocolon]", "binds.0", "host:container[:rw|ro]"),
        ("binds: ['/a:b']", "binds.0.container", "must be absolute"),
        ("binds: [{host: /a, container: /b, type: rx}]", "binds.0.type", "the mode must be rw or ro, got 'rx'"),
        ("volumes: ['relative']", "volumes.0", "[name~storage:]/path"),
        ("volumes: [{targetPath: x}]", "volumes.0.targetPath", "must be absolute"),
        ("endpoints: [{domain: 'no such'}]", "endpoints.0.domain", "not a valid domain"),
        ("endpoints: [{path: /}]", "endpoints.0.domain", "'domain' is required"),
        ("ports: [{port: 80, protocol: 'h t'}]", "ports.0.protocol", "is not a protocol name"),
        ("ports: [{port: 53, l4_protocol: icmp}]", "ports.0.l4_protocol", "'TCP' or 'UDP'"),
        ("ports: [80, 80]", "ports.1", "listed twice"),
        ("ports: [abc]", "ports.0", "must be a number"),
        ("expose: [0]", "expose.0", "must be >= 1"),
        ("resources: {cpu: -1}", "resources.cpu", "must be > 0"),
        ("resources: {mem: 1.5}", "resources.mem", "expected a whole number, got 1.5"),
        ("resources: {cpu: lots}", "resources.cpu", "expected a number, got 'lots'"),
        (
            "deployments: {policies: random}",
            "deployments.policies",
            "must be 'shuffle', 'affinity' or 'unique'",
        ),
        ("envs: {A: [1]}", "envs.A", "expected text, a number or a boolean, got a list"),
        ("envs: {'1X': a}", "envs", "not a valid environment variable name"),
        ("hosts: ['foo bar']", "hosts.0", "'ip name...'"),
        ("k8s_snippet: {container: {image: x}}", "k8s_snippet.container", "cannot be set"),
        ("sidecars: {Log: {image: x}}", "sidecars.Log", "not a valid name"),
        ("resources: {netwrk: {}}", "resources.netwrk", "did you mean 'network'?"),
        ("ports: {a: 1}", "ports", "expected a list, got a mapping"),
    ],
)
def test_service_rules(body, path, words):
    err = one_error(spec(f"services:\n  api:\n    {body}\n"))
    assert err.path == f"services.api.{path}"
    assert words in err.message
    assert err.line is not None and err.line >= 3


@pytest.mark.parametrize(
    ("body", "path", "words"),
    [
        ("plan: 'mysql:'", "plan", "'<type>:<size>' or '<type>'"),
        ("plan: 'My SQL:basic'", "plan", "is not an addon type name"),
        ("plan: 'mysql:huge'", "plan", "unknown addon size 'huge'"),
        ("options: {}", "plan", "'plan' is required"),
        ("plan: 'redis:basic'\n    as: 'my-redis'", "as", "variable-name prefix"),
    ],
)
def test_addon_rules(body, path, words):
    err = one_error(spec(f"services:\n  api: {{}}\naddons:\n  db:\n    {body}\n"))
    assert err.path == f"addons.db.{path}" and words in err.message


def test_job_rules():
    found = errors_of(
        spec("jobs:\n  j:\n    schedule: '* * *'\n    backoff_limit: -1\n    active_deadline: 0\n")
    )
    assert "5-field cron" in found["jobs.j.schedule"][1]
    assert set(found) == {"jobs.j.schedule", "jobs.j.backoff_limit", "jobs.j.active_deadline"}
    err = one_error(spec("services:\n  x: {}\njobs:\n  x: {}\n"))
    assert err.path == "jobs.x" and "name of a service too" in err.message


def test_basic_addon_refused_only_in_production():
    text = spec("services:\n  api: {}\naddons:\n  db: {plan: 'mysql:small'}\n  own: {plan: 'custom:basic'}\n")
    assert validate_dice_yml(text, workspace="STAGING") == []
    err = one_error(text, workspace="PROD")
    assert err.path == "addons.db.plan" and err.line == 5
    assert "'mysql:small': size basic is not allowed in production" in err.message


def test_version_and_completeness():
    assert "version" in one_error("version: 1.0\nservices: {a: {}}\n").message
    err = one_error("services:\n  api: {}\n")
    assert err.message == 'not a complete spec (an overlay?): it needs version "2.0"'
    err = one_error('version: "2.0"\n')
    assert err.message == "not a complete spec (an overlay?): it needs at least one service or job"
    assert one_error("envs: {A: 1}\n").message.endswith(
        'it needs version "2.0" and at least one service or job'
    )
    found = errors_of("version: 2.0\nservicse: {a: {}}\n")
    assert found["servicse"] == (2, "unknown key 'servicse' (did you mean 'services'?)")
    assert "at least one service or job" in found[""][1]


def test_unknown_top_level_key_suggests():
    errors = validate_dice_yml("version: 2.0\nservices: {a: {}}\naddon: {}\n")
    assert errors[0].to_dict() == {
        "path": "addon",
        "line": 3,
        "message": "unknown key 'addon' (did you mean 'addons'?)",
    }


def test_environment_errors_point_into_the_environment():
    text = spec(
        """
        services:
          api: {resources: {cpu: 1}}
        environments:
          PROD:
            services:
              api: {resources: {cpu: many}}
            extra: {}
          qa: {}
        """
    )
    found = errors_of(text)
    assert found["environments.PROD.services.api.resources.cpu"] == (8, "expected a number, got 'many'")
    assert found["environments.PROD.extra"][1].startswith("unknown key 'extra'")
    assert found["environments.qa"][1].startswith("unknown environment 'qa'")


def test_environment_that_breaks_a_base_rule_says_so():
    text = spec(
        """
        services:
          api: {resources: {cpu: 1, max_cpu: 1}}
        environments:
          test:
            services:
              api: {resources: {cpu: 2}}
        """
    )
    assert validate_dice_yml(text, workspace="DEV") == []
    err = one_error(text, workspace="TEST")
    assert err.path == "services.api.resources.max_cpu" and err.message == "max_cpu (1) must be >= cpu (2)"
    err = one_error(text)
    assert err.message.endswith("(with environments.test merged)")


def test_unfilled_placeholder_in_a_number():
    text = spec(
        "services:\n  api:\n    deployments:\n      replicas: ${replicas}\nvalues:\n  production: {replicas: 2}\n"
    )
    assert "validate with a workspace" in one_error(text).message
    assert parse_dice_yml(text, workspace="PROD").services["api"].deployments.replicas == 2
    err = one_error(text, workspace="DEV")
    assert err.path == "services.api.deployments.replicas" and err.line == 5
    assert "values.development has no 'replicas'" in err.message


# ---- hostile input: each a clear error, each in well under a second ----


def refused_fast(text, words: str):
    # CPU time of this process, not wall time: a bomb costs work, while a loaded machine only delays
    start = time.process_time()
    with pytest.raises(SpecInvalid) as info:
        parse_dice_yml(text)
    assert time.process_time() - start < 1.0
    assert words in str(info.value.errors[0].message)
    return info.value.errors[0]


def test_hostile_oversize():
    refused_fast(spec("services:\n  a: {}\n") + "#" * (1024 * 1024), "too large")


def test_hostile_too_many_services():
    body = "services:\n" + "".join(f"  s{i}: {{image: x}}\n" for i in range(501))
    err = refused_fast(spec(body), "too many services: 501 (at most 500)")
    assert err.path == "services"


def test_hostile_alias_bomb():
    text = 'version: "2.0"\nservices:\n  a:\n    envs:\n      L0: &l0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n'
    for i in range(1, 10):
        text += f"      L{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * 9) + "]\n"
    refused_fast(text, "alias")


def test_hostile_non_mapping():
    refused_fast("- services\n- jobs\n", "must be a mapping")


def test_hostile_tabs():
    assert refused_fast('version: "2.0"\nservices:\n\tapi: {}\n', "tab").line == 3


def test_hostile_duplicate_keys():
    err = refused_fast(spec("services:\n  api: {}\n  api: {image: x}\n"), "duplicate key 'api'")
    assert err.path == "services.api" and err.line == 4
