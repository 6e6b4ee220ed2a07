"""pipeline.yml files written the way Erda's CI pipelines are (issue 26): parsed, planned and resolved.

The files here are written for these tests, in the style of the corpus in shared/conformance/erda.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import textwrap

import pytest

from apps.pipelines.expressions import Context, ResolveError, substitute
from dice_cli.main import main as dice_main
from pipelineyml import parse_pipeline_yml, plan, validate_pipeline_yml
from pipelineyml.randoms import SIMPLE_KINDS, apply_suffix, go_quote, random_value


def pipeline(body: str) -> str:
    return 'version: "1.1"\n' + textwrap.dedent(body).lstrip("\n")


def messages(text: str) -> dict[str, str]:
    return {e.path: e.message for e in validate_pipeline_yml(text)}


CI = pipeline(
    """
    on:
      push:
        branches: [master]
    stages:
      - stage:
          - git-checkout:
              alias: git-checkout
              params:
                depth: 1
      - stage:
          - release:
              alias: release
              params:
                dice_yml: ${{ dirs.git-checkout }}/dice.yml
      - stage:
          - dice:
              alias: dice
              params:
                release_id: ${{ outputs.release.releaseID }}
          - custom-script:
              alias: notify
              commands:
                - echo released ${release:OUTPUT:releaseID} as ${{ outputs.release.release_id }}
                - echo version ${{ outputs.release.version }}
    """
)


# ---- release output names ------------------------------------------------------------------------


def test_release_output_is_also_releaseID_in_both_reference_forms():
    parsed = parse_pipeline_yml(CI)
    refs = {(r.kind, r.target, r.key, r.legacy) for r in parsed.action("notify").references}
    assert ("outputs", "release", "releaseID", True) in refs and (
        "outputs",
        "release",
        "release_id",
        False,
    ) in refs
    assert parsed.dependencies["dice"] == ("release",)


def test_release_still_refuses_an_output_it_does_not_have():
    found = messages(CI.replace("outputs.release.releaseID", "outputs.release.releaseId"))
    (message,) = found.values()
    assert "has no output 'releaseId'" in message and "did you mean 'releaseID'?" in message


# ---- snippet actions -------------------------------------------------------------------------------

SNIPPET = pipeline(
    """
    stages:
      - stage:
          - snippet:
              alias: build-image
              snippet_config:
                source: local
                name: pipelines/build.yml
              params:
                service: web
      - stage:
          - custom-script:
              commands:
                - echo ${{ outputs.build-image.image }}
    """
)


def test_snippet_actions_are_accepted_and_planned():
    tasks = [t.to_dict() for t in plan(parse_pipeline_yml(SNIPPET))]
    assert tasks[0] == {"alias": "build-image", "type": "snippet", "needs": [], "stage": 0, "disabled": False}
    assert tasks[1]["needs"] == ["build-image"]


def test_a_snippet_needs_its_snippet_config():
    found = messages(SNIPPET.replace("snippet_config:", "snippet_cfg:"))
    assert found["stages.0.stage.0.snippet"].startswith("a snippet action needs snippet_config")


# ---- random values and reference suffixes -----------------------------------------------------------


def test_random_references_parse_and_unknown_kinds_are_errors():
    text = pipeline(
        """
        stages:
          - stage:
              - custom-script:
                  commands:
                    - echo ${{ random.integer }} ${{ random.datetime_hour }} ${{ random.uuid }}
                    - echo ${{ random.integer_6 }} ${{ random.datetime_custom_RFC3339 }}
        """
    )
    assert validate_pipeline_yml(text) == []
    found = messages(text.replace("random.uuid", "random.guid"))
    assert "unknown random kind 'guid'" in found["stages.0.stage.0.custom-script.commands.0"]
    found = messages(text.replace("random.integer_6", "random.integer_40"))
    assert "1 to 18 digits" in found["stages.0.stage.0.custom-script.commands.1"]


NOW = dt.datetime(2026, 3, 4, 5, 6, 7, 890123, tzinfo=dt.UTC)


@pytest.mark.parametrize(
    ("kind", "pattern"),
    [
        ("integer", r"\d{1,15}"),
        ("integer_6", r"[1-9]\d{5}"),
        ("float", r"\d+\.\d+"),
        ("boolean", r"true|false"),
        ("upper", r"[A-Z]{1,15}"),
        ("lower", r"[a-z]{1,15}"),
        ("letters", r"[A-Za-z]{1,15}"),
        ("string", r"[A-Za-z0-9]{1,15}"),
        ("character", r"[A-Za-z]"),
        ("mobile", r"1\d{10}"),
        ("uuid", r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}"),
        ("timestamp", r"1772600767"),
        ("timestamp_hour", r"1772597167"),
        ("timestamp_after_day", r"1772687167"),
        ("timestamp_ms", r"1772600767890"),
        ("timestamp_ns", r"1772600767890123000"),
        ("date", r"2026-03-04"),
        ("date_day", r"2026-03-03"),
        ("datetime", r"2026-03-04 05:06:07"),
        ("datetime_hour", r"2026-03-04 04:06:07"),
        ("datetime_custom_RFC3339", r"2026-03-04T05:06:07Z"),
        ("datetime_custom_ANSIC", r"Wed Mar  4 05:06:07 2026"),
        ("datetime_custom_20060102-150405", r"20260304-050607"),
    ],
)
def test_random_kinds(kind, pattern):
    assert re.fullmatch(pattern, random_value(kind, NOW)), random_value(kind, NOW)


def test_every_simple_kind_has_a_value():
    for kind in SIMPLE_KINDS:
        assert random_value(kind)


def test_random_values_at_run_time_are_fresh_each_time():
    ctx = Context()
    values = {substitute("${{ random.integer_12 }}", ctx) for _ in range(5)}
    assert len(values) == 5 and all(re.fullmatch(r"\d{12}", v) for v in values)
    with pytest.raises(ResolveError, match="unknown random kind 'nope'"):
        substitute("${{ random.nope }}", ctx)


@pytest.mark.parametrize(
    ("suffix", "expected"),
    [
        (None, 'say "hi" to $USER\'s\nbox'),
        ("escape", '"say \\"hi\\" to $USER\'s\\nbox"'),
        ("wrap_single_quotes", "'say \"hi\" to $USER'\\''s\nbox'"),
        ("wrap_double_quotes", '"say \\"hi\\" to \\$USER\'s\nbox"'),
    ],
)
def test_reference_suffixes(suffix, expected):
    value = 'say "hi" to $USER\'s\nbox'
    assert apply_suffix(value, suffix) == expected
    ctx = Context(outputs={"build": {"msg": value}}, aliases=("build",))
    ref = "${{ outputs.build.msg" + (f".{suffix}" if suffix else "") + " }}"
    assert substitute(ref, ctx) == expected


def test_escape_is_go_quoting():
    assert go_quote("tab\tbell\a\x01é") == '"tab\\tbell\\a\\x01é"'


def test_suffixes_parse_only_on_outputs():
    text = pipeline(
        """
        stages:
          - stage:
              - custom-script: {alias: a, commands: [echo]}
          - stage:
              - custom-script:
                  commands:
                    - echo ${{ outputs.a.x.escape }} ${{ outputs.a.x.wrap_single_quotes }}
                    - echo ${{ outputs.a.x.wrap_double_quotes }}
        """
    )
    assert validate_pipeline_yml(text) == []
    found = messages(text.replace("outputs.a.x.escape", "outputs.a.x.upper"))
    assert "malformed reference" in found["stages.1.stage.0.custom-script.commands.0"]


# ---- disabled actions in the plan ---------------------------------------------------------------------


def test_disabled_actions_show_as_disabled_in_plan_json(tmp_path, capsys):
    path = tmp_path / "pipeline.yml"
    path.write_text(
        pipeline(
            """
            stages:
              - stage:
                  - custom-script: {alias: build, commands: [make]}
              - stage:
                  - custom-script: {alias: sonar, disable: true, commands: [scan]}
                  - release: {}
            """
        )
    )
    assert dice_main(["pipeline", "plan", str(path), "--format", "json"]) == 0
    tasks = {t["alias"]: t for t in json.loads(capsys.readouterr().out)["tasks"]}
    assert tasks["sonar"]["disabled"] is True and tasks["build"]["disabled"] is False
    assert tasks["release"]["disabled"] is False
    assert dice_main(["pipeline", "plan", str(path)]) == 0
    line = next(x for x in capsys.readouterr().out.splitlines() if "sonar" in x)
    assert "disabled" in line
