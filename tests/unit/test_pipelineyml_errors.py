"""pipeline.yml validation: each class of error, with its dotted path and 1-based line, all at once."""

from __future__ import annotations

import textwrap

import pytest

from pipelineyml import parse_pipeline_yml, pipeline_from_data, validate_pipeline_yml
from speckit import SpecInvalid


def errors_of(text: str) -> list:
    return validate_pipeline_yml(textwrap.dedent(text).lstrip(), source="pipeline.yml")


def one_error(text: str):
    errors = errors_of(text)
    assert len(errors) == 1, [str(e) for e in errors]
    return errors[0]


def parse(text: str):
    return parse_pipeline_yml(textwrap.dedent(text).lstrip())


# -- version -------------------------------------------------------------------------------------


@pytest.mark.parametrize("version", ['"1.1"', "1.1", "'1.1'"])
def test_version_1_1_as_string_or_number(version):
    assert parse(f"version: {version}\n").version == "1.1"


@pytest.mark.parametrize("version", ['"1.0"', "1.0", "'1'", "1"])
def test_legacy_version_refused_naming_it(version):
    err = one_error(f"version: {version}\nstages:\n- name: repo\n  tasks: []\nresources: []\n")
    assert err.path == "version" and err.line == 1
    assert "legacy" in err.message and "1" in err.message


def test_other_version_refused():
    err = one_error('version: "2.0"\n')
    assert err.path == "version" and '"2.0"' in err.message


def test_missing_version():
    err = one_error("stages: []\n")
    assert "version is required" in err.message


# -- unknown keys ------------------------------------------------------------------------------------


def test_unknown_top_level_key_suggests():
    err = one_error(
        """
        version: "1.1"
        stage:
          - stage: []
        """
    )
    assert err.path == "stage" and err.line == 2
    assert "unknown key 'stage'" in err.message and "did you mean 'stages'" in err.message


def test_unknown_action_key_suggests_with_path_and_line():
    err = one_error(
        """
        version: "1.1"
        stages:
          - stage:
              - git-checkout:
                  params:
                    depth: 1
          - stage:
              - custom-script:
                  comands:
                    - echo hi
        """
    )
    assert err.path == "stages.1.stage.0.custom-script.comands"
    assert err.line == 9
    assert "did you mean 'commands'" in err.message


def test_all_errors_reported_at_once_in_file_order():
    errors = errors_of(
        """
        version: "1.1"
        nmae: x
        stages:
          - stage:
              - custom-script:
                  timeout: soon
                  resources:
                    cpu: -1
              - custom-script:
                  commands: [echo]
        cron: "61 * * * *"
        """
    )
    assert [e.path for e in errors] == [
        "nmae",
        "stages.0.stage.0.custom-script.timeout",
        "stages.0.stage.0.custom-script.resources.cpu",
        "stages.0.stage.1.custom-script",
        "cron",
    ]
    assert [e.line for e in errors] == sorted(e.line for e in errors)
    assert "alias 'custom-script' is already used" in errors[3].message


# -- aliases, types, defaults ----------------------------------------------------------------------


def test_alias_defaults_to_type_and_type_at_version_splits():
    p = parse(
        """
        version: "1.1"
        stages:
          - stage:
              - git-checkout@1.0:
                  params: {depth: 1}
        """
    )
    action = p.actions[0]
    assert (action.type, action.version, action.alias) == ("git-checkout", "1.0", "git-checkout")
    assert action.timeout == 3600 and action.disable is False and action.needs is None
    assert action.retry.max == 0 and action.resources.cpu is None


def test_duplicate_alias():
    err = one_error(
        """
        version: "1.1"
        stages:
          - stage:
              - git-checkout:
                  alias: repo
          - stage:
              - custom-script:
                  alias: repo
        """
    )
    assert err.path == "stages.1.stage.0.custom-script.alias" and err.line == 8
    assert "stages.0.stage.0.git-checkout" in err.message


def test_version_in_key_and_field_must_agree():
    err = one_error(
        """
        version: "1.1"
        stages:
          - stage:
              - echo@1.0:
                  version: "2.0"
        """
    )
    assert err.path == "stages.0.stage.0.echo@1.0.version"


def test_action_item_needs_exactly_one_key():
    err = one_error(
        """
        version: "1.1"
        stages:
          - stage:
              - custom-script:
                alias: oops
        """
    )
    assert err.path == "stages.0.stage.0" and "exactly one key" in err.message and "'alias'" in err.message


def test_empty_stage_and_bad_stage_item():
    errors = errors_of(
        """
        version: "1.1"
        stages:
          - stage: []
          - name: build
        """
    )
    assert {e.path for e in errors} == {"stages.0.stage", "stages.1", "stages.1.name"}
    errors = errors_of('version: "1.1"\nstages:\n- stag:\n  - echo: {}\n')
    assert "did you mean 'stage'" in next(e.message for e in errors if e.path == "stages.0.stag")


def test_timeout_values():
    p = parse(
        """
        version: "1.1"
        stages:
          - stage:
              - custom-script: {alias: a, timeout: 14400}
              - custom-script: {alias: b, timeout: -1}
        """
    )
    assert [a.timeout for a in p.actions] == [14400, -1]
    err = one_error('version: "1.1"\nstages:\n- stage:\n  - echo: {timeout: 0}\n')
    assert err.path == "stages.0.stage.0.echo.timeout"


def test_resources_memory_is_mem_and_rules():
    p = parse(
        'version: "1.1"\nstages:\n- stage:\n  - echo: {resources: {cpu: 0.5, max_cpu: 1, memory: 512}}\n'
    )
    assert p.actions[0].resources.mem == 512 and p.actions[0].resources.max_cpu == 1.0
    errors = errors_of(
        'version: "1.1"\nstages:\n- stage:\n  - echo: {resources: {cpu: 2, max_cpu: 1, mem: 1, memory: 2}}\n'
    )
    assert {e.path for e in errors} == {
        "stages.0.stage.0.echo.resources.memory",
        "stages.0.stage.0.echo.resources.max_cpu",
    }


def test_builtin_params_checked_unknown_types_free():
    errors = errors_of(
        """
        version: "1.1"
        stages:
          - stage:
              - git-checkout:
                  params:
                    dept: 1
                    depth: deep
              - java-build:
                  params:
                    anything: goes
        """
    )
    assert [e.path for e in errors] == [
        "stages.0.stage.0.git-checkout.params.dept",
        "stages.0.stage.0.git-checkout.params.depth",
    ]
    assert "did you mean 'depth'" in errors[0].message
    assert errors[1].line == 7


def test_retry_and_needs_extensions_parse():
    p = parse(
        """
        version: "1.1"
        stages:
          - stage:
              - echo: {alias: a}
              - echo: {alias: b, needs: [a], retry: {max: 3, backoff: 2.5}}
        """
    )
    b = p.action("b")
    assert b.needs == ("a",) and b.retry.max == 3 and b.retry.backoff == 2.5
    errors = errors_of('version: "1.1"\nstages:\n- stage:\n  - echo: {retry: {max: -1, backof: 1}}\n')
    assert {e.path for e in errors} == {
        "stages.0.stage.0.echo.retry.backof",
        "stages.0.stage.0.echo.retry.max",
    }


# -- cron ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "cron",
    [
        "*/5 * * * *",
        "0 0 13,17,20 * * ?",
        "* 0 * * ? *",
        "0 30 9 ? * MON-FRI",
        "0 0 1 JAN *",
        "@daily",
        "@every 1h30m",
    ],
)
def test_cron_accepted(cron):
    assert parse(f'version: "1.1"\ncron: "{cron}"\n').cron == cron


@pytest.mark.parametrize(
    ("cron", "words"),
    [
        ("* * * *", "4 fields"),
        ("60 * * * *", "field 1 (minute)"),
        ("0 0 25 * * ?", "field 3 (hour)"),
        ("0 0 * * FOO", "field 5 (day of week)"),
        ("*/0 * * * *", "step"),
        ("5-1 * * * *", "backwards"),
        ("@sometimes", "descriptor"),
    ],
)
def test_cron_refused_clearly(cron, words):
    err = one_error(f'version: "1.1"\ncron: "{cron}"\n')
    assert err.path == "cron" and err.line == 2 and words in err.message


def test_cron_compensator_defaults():
    p = parse('version: "1.1"\ncron: "0 * * * *"\n')
    assert p.cron_compensator is not None
    assert (p.cron_compensator.enable, p.cron_compensator.latest_first) == (False, True)


# -- triggers, on, params, envs, outputs -------------------------------------------------------------


def test_on_key_and_triggers_and_params():
    p = parse(
        """
        version: "1.1"
        on:
          push:
            branches: [master, release/*]
            tags: [v*]
          merge:
            branches: [develop]
        triggers:
          - on: git_push
            filter: {branch: develop, projectID: 234}
        params:
          - name: target
            required: true
            default: dev
        envs:
          GOPROXY: https://goproxy.cn
          DEBUG: true
        stages:
          - stage:
              - echo:
                  params:
                    msg: "${{ params.target }} ${{ triggers.git_push.branch }} ${{ configs.token }}"
        """
    )
    assert p.on.push.branches == ("master", "release/*") and p.on.merge.branches == ("develop",)
    assert p.triggers[0].filter == {"branch": "develop", "projectID": "234"}
    assert p.params[0].required is True and p.params[0].type == "string"
    assert p.envs["DEBUG"] == "true"
    assert {r.kind for r in p.actions[0].references} == {"params", "triggers", "configs"}


def test_on_unknown_event():
    err = one_error('version: "1.1"\non:\n  mege:\n    branches: [x]\n')
    assert err.path == "on.mege" and err.line == 3 and "did you mean 'merge'" in err.message


def test_undeclared_param_and_trigger_event():
    errors = errors_of(
        """
        version: "1.1"
        params:
          - name: target
        triggers:
          - on: git_push
        stages:
          - stage:
              - echo:
                  params:
                    msg: ${{ params.targt }} ${{ triggers.git_pushh.branch }}
        """
    )
    assert len(errors) == 2
    assert "did you mean 'target'" in errors[0].message
    assert "did you mean 'git_push'" in errors[1].message


def test_envs_cannot_refer_to_actions():
    err = one_error(
        'version: "1.1"\nenvs:\n  X: ${{ outputs.a.b }}\nstages:\n- stage:\n  - echo: {alias: a}\n'
    )
    assert err.path == "envs.X" and err.line == 3


def test_pipeline_outputs_ref():
    p = parse(
        """
        version: "1.1"
        outputs:
          - name: rel
            ref: ${{ outputs.release.release_id }}
        stages:
          - stage:
              - release: {}
        """
    )
    assert p.outputs[0].reference.target == "release"
    err = one_error(
        'version: "1.1"\noutputs:\n- name: x\n  ref: ${{ outputs.release.id }}\nstages:\n- stage:\n  - release: {}\n'
    )
    assert err.path == "outputs.0.ref" and "has no output 'id'" in err.message


# -- YAML-level problems come through with lines -----------------------------------------------------


def test_yaml_problems_have_lines():
    err = one_error('version: "1.1"\nstages:\n  - stage: [\n')
    assert err.line is not None and "YAML" in err.message
    err = one_error('version: "1.1"\nname: a\nname: b\n')
    assert err.line == 3 and "duplicate key" in err.message


def test_parse_raises_spec_invalid_with_all_errors():
    with pytest.raises(SpecInvalid) as info:
        parse_pipeline_yml('version: "1.1"\nfoo: 1\nbar: 2\n')
    assert [e.path for e in info.value.errors] == ["foo", "bar"]


def test_pipeline_from_data_has_no_lines():
    with pytest.raises(SpecInvalid) as info:
        pipeline_from_data({"version": "1.1", "stages": [{"stage": [{"echo": {"timout": 3}}]}]})
    (err,) = info.value.errors
    assert err.path == "stages.0.stage.0.echo.timout" and err.line is None
    assert "did you mean 'timeout'" in err.message


def test_erda_fields_parse_with_explicit_defaults():
    p = parse(
        """
        version: "1.1"
        name: nightly
        storage: {context: nfs}
        lifecycle:
          - hook: before-run-check
            client: bundle
            labels: {a: 1}
        stages:
          - stage:
              - custom-script:
                  alias: build
                  shell: /bin/bash
                  labels: {team: infra}
                  policy: {type: try-latest-success-result}
                  caches:
                    - path: /root/.m2
                  loop:
                    break: task_status == 'Success'
                    strategy: {max_times: 5, decline_ratio: 2, decline_limit_sec: 60, interval_sec: 5}
                  disable: true
                  if: ${{ params.run == 'yes' }}
        params:
          - name: run
            default: "yes"
        """
    )
    build = p.action("build")
    assert p.name == "nightly" and p.storage.context == "nfs" and p.lifecycle[0].client == "bundle"
    assert build.policy.type == "try-latest-success-result" and build.caches[0].key is None
    assert build.loop.strategy.max_times == 5 and build.loop.break_condition == "task_status == 'Success'"
    assert build.disable is True and build.condition == "${{ params.run == 'yes' }}"
    assert p.cron is None and p.cron_compensator is None


def test_unknown_policy_and_loop_keys():
    errors = errors_of(
        """
        version: "1.1"
        stages:
          - stage:
              - echo:
                  policy: {type: reuse}
                  loop: {brake: x}
        """
    )
    assert [e.path for e in errors] == [
        "stages.0.stage.0.echo.policy.type",
        "stages.0.stage.0.echo.loop.brake",
    ]


def test_hostile_or_odd_documents_are_refused_cleanly():
    assert "mapping" in one_error("- a\n- b\n").message
    assert "too large" in validate_pipeline_yml(b"version: '1.1'\n" + b"#" * (1024 * 1024 + 1))[0].message
    bomb = 'a: &a ["x","x","x","x","x","x","x","x","x","x"]\n' + "".join(
        f"{c}: &{c} [*{p},*{p},*{p},*{p},*{p},*{p},*{p},*{p},*{p},*{p}]\n"
        for p, c in zip("abcdef", "bcdefg", strict=True)
    )
    assert "alias bomb" in validate_pipeline_yml(bomb)[0].message
    assert "cron expression string" in one_error('version: "1.1"\ncron: 5\n').message
