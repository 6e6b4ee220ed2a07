"""Issue 17, item 11: a dice.yml job `schedule` is checked with the pipelines' cron rules
(pipelineyml/cron.py), limited to what a CronJob runs (5 fields or @hourly ... @yearly)."""

from __future__ import annotations

import json

import pytest

from dice_cli.main import main as dice_main
from diceyml import parse_dice_yml, validate_dice_yml


def job(schedule: str) -> str:
    return (
        f'version: "2.0"\njobs:\n  report:\n    image: report:1\n    cmd: run\n    schedule: "{schedule}"\n'
    )


@pytest.mark.parametrize(
    ("schedule", "words"),
    [
        ("99 99 99 99 99", "cron field 1 (minute) '99': 99 is out of range 0-59"),
        ("*/0 * * * *", "step '0' in '*/0' must be a positive number"),
        ("0 25 * * *", "cron field 2 (hour) '25': 25 is out of range 0-23"),
        ("0 0 32 * *", "day of month"),
        ("0 0 * 13 *", "month"),
        ("0 0 * * 8", "day of week"),
        ("5-1 * * * *", "runs backwards"),
        ("0 0 3 * * *", "5-field cron expression"),
        ("* * * *", "5-field cron expression"),
        ("@every 1s", "no @every"),
        ("@sometimes", "unknown cron descriptor"),
    ],
)
def test_bad_schedules_are_refused_naming_the_field(schedule, words):
    (err,) = validate_dice_yml(job(schedule))
    assert err.path == "jobs.report.schedule" and err.line == 6
    assert words in err.message


@pytest.mark.parametrize(
    "schedule", ["0 3 * * *", "*/15 * * * *", "0 9 * * MON-FRI", "0 0 1 JAN ?", "@daily"]
)
def test_good_schedules_pass(schedule):
    assert parse_dice_yml(job(schedule)).jobs["report"].schedule == schedule


def test_cli_refuses_the_schedule_with_exit_1(tmp_path, capsys):
    path = tmp_path / "dice.yml"
    path.write_text(job("99 99 99 99 99"))
    assert dice_main(["spec", "validate", str(path), "--format", "json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["valid"] is False and report["errors"][0]["path"] == "jobs.report.schedule"
