"""References between actions, `needs`, cycles, and the planned task order of a pipeline.yml."""

from __future__ import annotations

import textwrap

import pytest

from pipelineyml import parse_pipeline_yml, plan, validate_pipeline_yml


def parse(text: str):
    return parse_pipeline_yml(textwrap.dedent(text).lstrip())


def errors_of(text: str) -> list:
    return validate_pipeline_yml(textwrap.dedent(text).lstrip())


def tasks_of(text: str) -> list[dict]:
    return [t.to_dict() for t in plan(parse(text))]


# -- references ----------------------------------------------------------------------------------------

REFS_OK = """
version: "1.1"
stages:
  - stage:
      - git-checkout:
          alias: repo
  - stage:
      - custom-script:
          alias: build
          commands:
            - cd ${{ dirs.repo }} && echo ${repo} ${GOPATH} ${HOME:-/root} $PATH
            - echo ${{ outputs.repo.commit }} ${repo:OUTPUT:branch}
            - echo ${{ outputs.repo.message.escape }}
          caches:
            - path: ${repo}/.m2
  - stage:
      - release:
          params:
            image: ${{ outputs.build.image }}
            dice_yml: ${build}/dice.yml
          if: ${{ outputs.build.status == 'Success' }}
"""


def test_reference_forms_are_found_and_shell_variables_left_alone():
    p = parse(REFS_OK)
    build = p.action("build")
    assert [(r.kind, r.target, r.key, r.legacy) for r in build.references] == [
        ("dirs", "repo", None, False),
        ("dirs", "repo", None, True),
        ("outputs", "repo", "commit", False),
        ("outputs", "repo", "branch", True),
        ("outputs", "repo", "message", False),
        ("dirs", "repo", None, True),
    ]
    release = p.action("release")
    assert {(r.kind, r.target, r.key) for r in release.references} == {
        ("outputs", "build", "image"),
        ("dirs", "build", None),
        ("outputs", "build", "status"),
    }
    assert build.references[0].path == ("stages", 1, "stage", 0, "custom-script", "commands", 0)


@pytest.mark.parametrize(
    ("snippet", "words"),
    [
        ("${{ secrets.token }}", "unknown namespace 'secrets'"),
        ("${{ output.repo.commit }}", "did you mean 'outputs'"),
        ("${{ outputs.rep.commit }}", "unknown action alias 'rep' (did you mean 'repo'?)"),
        ("${{ dirs.nope }}", "unknown action alias 'nope'"),
        ("${nope:OUTPUT:x}", "unknown action alias 'nope'"),
        ("${{ outputs.repo }}", "malformed reference"),
        ("${{ }}", "empty reference"),
        ("${repo:x}", "malformed reference"),
        ("${repo:GET:x}", "unknown operation 'GET'"),
        ("${{ outputs.repo.sha }}", "has no output 'sha'"),
    ],
)
def test_bad_references(snippet, words):
    errors = errors_of(
        f"""
        version: "1.1"
        stages:
          - stage:
              - git-checkout:
                  alias: repo
          - stage:
              - echo:
                  params:
                    msg: "{snippet}"
        """
    )
    assert len(errors) == 1, [str(e) for e in errors]
    assert errors[0].path == "stages.1.stage.0.echo.params.msg"
    assert errors[0].line == 9
    assert words in errors[0].message


def test_builtin_outputs_checked_but_custom_script_and_unknown_types_free():
    p = parse(
        """
        version: "1.1"
        stages:
          - stage:
              - custom-script: {alias: a}
              - java-build: {alias: b}
              - dice: {alias: c}
          - stage:
              - echo:
                  params:
                    msg: ${{ outputs.a.anything }} ${{ outputs.b.whatever }} ${{ outputs.c.runtime_id }}
        """
    )
    assert len(p.action("echo").references) == 3


def test_reference_to_parallel_or_later_action_is_an_error():
    errors = errors_of(
        """
        version: "1.1"
        stages:
          - stage:
              - custom-script:
                  alias: a
                  commands: ["echo ${{ outputs.b.x }}"]
              - custom-script:
                  alias: b
                  commands: ["echo ${c}"]
          - stage:
              - custom-script:
                  alias: c
        """
    )
    assert [e.path for e in errors] == [
        "stages.0.stage.0.custom-script.commands.0",
        "stages.0.stage.1.custom-script.commands.0",
    ]
    assert "runs in parallel" in errors[0].message
    assert "runs after this action (stage 1)" in errors[1].message


def test_self_reference_is_an_error():
    errors = errors_of(
        'version: "1.1"\nstages:\n- stage:\n  - custom-script:\n      commands: ["echo ${{ outputs.custom-script.x }}"]\n'
    )
    assert len(errors) == 1 and "cannot refer to itself" in errors[0].message


# -- planning ------------------------------------------------------------------------------------------


def test_stage_by_stage_plan():
    assert tasks_of(
        """
        version: "1.1"
        stages:
          - stage:
              - git-checkout: {alias: b}
              - git-checkout: {alias: a}
          - stage:
              - custom-script: {alias: build}
              - custom-script: {alias: lint}
          - stage:
              - release: {}
        """
    ) == [
        {"alias": "b", "type": "git-checkout", "needs": [], "stage": 0, "disabled": False},
        {"alias": "a", "type": "git-checkout", "needs": [], "stage": 0, "disabled": False},
        {"alias": "build", "type": "custom-script", "needs": ["a", "b"], "stage": 1, "disabled": False},
        {"alias": "lint", "type": "custom-script", "needs": ["a", "b"], "stage": 1, "disabled": False},
        {"alias": "release", "type": "release", "needs": ["build", "lint"], "stage": 2, "disabled": False},
    ]


def test_no_stages_plans_nothing():
    assert tasks_of('version: "1.1"\n') == []
    assert tasks_of('version: "1.1"\nstages: []\n') == []


def test_needs_makes_a_dag_with_implicit_reference_dependencies():
    tasks = tasks_of(
        """
        version: "1.1"
        stages:
          - stage:
              - git-checkout: {alias: repo}
              - custom-script:
                  alias: lint
                  needs: [repo]
              - custom-script:
                  alias: build
                  needs: []
                  commands: ["cd ${{ dirs.repo }}"]
              - custom-script:
                  alias: report
                  needs: [lint]
                  commands: ["echo ${{ outputs.build.image }}"]
          - stage:
              - release: {alias: rel, needs: [build]}
              - echo: {alias: after}
        """
    )
    assert [(t["alias"], t["needs"]) for t in tasks] == [
        ("repo", []),
        ("lint", ["repo"]),
        ("build", ["repo"]),
        ("report", ["build", "lint"]),
        ("rel", ["build"]),
        ("after", ["build", "lint", "repo", "report"]),
    ]


def test_topological_order_follows_needs_not_file_order():
    tasks = tasks_of(
        """
        version: "1.1"
        stages:
          - stage:
              - echo: {alias: c, needs: [b]}
              - echo: {alias: b, needs: [a]}
              - echo: {alias: a, needs: []}
        """
    )
    assert [t["alias"] for t in tasks] == ["a", "b", "c"]
    assert all(t["stage"] == 0 for t in tasks)


def test_needs_unknown_or_self():
    errors = errors_of(
        """
        version: "1.1"
        stages:
          - stage:
              - echo: {alias: build, needs: [biuld]}
              - echo: {alias: lint, needs: [lint, build]}
        """
    )
    assert [(e.path, e.line) for e in errors] == [
        ("stages.0.stage.0.echo.needs", 4),
        ("stages.0.stage.1.echo.needs.0", 5),
    ]
    assert "unknown action alias 'biuld' (did you mean 'build'?)" in errors[0].message
    assert "cannot need itself" in errors[1].message


def test_cycle_through_needs_is_named():
    errors = errors_of(
        """
        version: "1.1"
        stages:
          - stage:
              - echo: {alias: a, needs: [c]}
              - echo: {alias: b, needs: [a]}
              - echo: {alias: c, needs: [b]}
              - echo: {alias: d, needs: [c]}
        """
    )
    assert len(errors) == 1
    assert errors[0].path == "stages.0.stage.0.echo.needs" and errors[0].line == 4
    assert "dependency cycle: a -> c -> b -> a" in errors[0].message


def test_cycle_through_a_reference_is_named():
    errors = errors_of(
        """
        version: "1.1"
        stages:
          - stage:
              - custom-script:
                  alias: a
                  needs: []
                  commands: ["echo ${{ outputs.b.x }}"]
              - custom-script:
                  alias: b
                  needs: [a]
        """
    )
    assert len(errors) == 1 and "dependency cycle: a -> b -> a" in errors[0].message


def test_cycle_between_needs_and_stages():
    errors = errors_of(
        """
        version: "1.1"
        stages:
          - stage:
              - echo: {alias: early, needs: [late]}
          - stage:
              - echo: {alias: late}
        """
    )
    assert len(errors) == 1 and "early -> late -> early" in errors[0].message


def test_mixed_mode_reference_must_be_an_ancestor():
    # `mid` opts out of the stage chain, so `last` (stage-by-stage) no longer runs after `first`.
    errors = errors_of(
        """
        version: "1.1"
        stages:
          - stage:
              - custom-script: {alias: first}
          - stage:
              - custom-script: {alias: mid, needs: []}
          - stage:
              - custom-script:
                  alias: last
                  commands: ["echo ${{ outputs.first.x }}"]
        """
    )
    assert len(errors) == 1 and "does not run before this action" in errors[0].message


def test_plan_is_deterministic_and_keeps_actions():
    text = textwrap.dedent(REFS_OK).lstrip()
    first = plan(parse_pipeline_yml(text))
    second = plan(parse_pipeline_yml(text))
    assert first == second
    assert first[1].action is not None and first[1].action.alias == "build"


def test_disabled_actions_stay_in_the_plan():
    tasks = tasks_of('version: "1.1"\nstages:\n- stage:\n  - echo: {disable: true}\n')
    assert tasks == [{"alias": "echo", "type": "echo", "needs": [], "stage": 0, "disabled": True}]
