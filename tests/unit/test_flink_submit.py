"""`flink run` arguments as the Flink kind reads them (JobSpec.command), and dice.yml's
`engine: flink` services: no Flink needed."""

from __future__ import annotations

import pytest

from diceyml import parse_dice_yml
from scheduler import registry
from scheduler.base import ExecutorError
from scheduler.flink.services import service_argv
from scheduler.flink.submit import confined, flink_job_id, parse_command
from speckit.errors import SpecInvalid


def test_jar_and_python_commands():
    sub = parse_command(["flink", "run", "-c", "Main", "-p", "3", "-s", "file:/sp/1", "-n", "-Da=b", "job.jar", "x", "-y"])
    assert (sub.kind, sub.jar, sub.entry_class, sub.parallelism) == ("jar", "job.jar", "Main", 3)
    assert sub.args == ("x", "-y") and sub.savepoint == "file:/sp/1" and sub.allow_non_restored
    assert sub.conf == {"a": "b"}
    py = parse_command(["-py", "count.py", "--rate", "5"])
    assert (py.kind, py.python, py.args) == ("python", "count.py", ("--rate", "5"))


@pytest.mark.parametrize("argv, error", [
    (["flink", "run"], "names no jar file"),
    (["run", "-p", "x", "a.jar"], "parallelism must be"),
    (["-c", "Main", "-py", "a.py"], "a Python job"),
    (["-q", "a.jar"], "unknown option '-q'"),
    (["a.py"], "is not a .jar file"),
    (["-D", "novalue", "a.jar"], "-D takes key=value"),
])
def test_bad_commands_name_the_problem(argv, error):
    with pytest.raises(ExecutorError, match=error):
        parse_command(argv)


def test_job_ids_are_deterministic_and_distinct():
    assert flink_job_id("c", "ns", "a") == flink_job_id("c", "ns", "a")
    assert flink_job_id("c", "ns", "a") != flink_job_id("c", "ns2", "a")
    assert len(flink_job_id("c", "ns", "a")) == 32


def test_files_stay_inside_the_jobs_directories(tmp_path):
    (tmp_path / "work").mkdir()
    (tmp_path / "work" / "a.jar").write_text("x")
    (tmp_path / "secret.jar").write_text("x")
    (tmp_path / "work" / "link.jar").symlink_to(tmp_path / "secret.jar")
    assert confined("a.jar", str(tmp_path / "work"), [], "jar").endswith("/work/a.jar")
    for bad in ("../secret.jar", "link.jar", str(tmp_path / "secret.jar")):
        with pytest.raises(ExecutorError, match="outside the job's working directory"):
            confined(bad, str(tmp_path / "work"), [], "jar")
    with pytest.raises(ExecutorError, match="does not exist"):
        confined("b.jar", str(tmp_path / "work"), [], "jar")


def test_service_commands_leave_parallelism_and_savepoints_to_the_deployment():
    assert service_argv("flink run -py count.py", "s") == ["-py", "count.py"]
    with pytest.raises(ExecutorError, match="deployments.replicas"):
        service_argv("-p 2 -py count.py", "s")


def test_engine_flink_services_in_dice_yml():
    spec = parse_dice_yml("version: '2.0'\nservices:\n  c:\n    engine: flink\n    cmd: -py count.py\n")
    assert spec.services["c"].engine == "flink"
    assert parse_dice_yml("version: '2.0'\nservices:\n  w:\n    cmd: run\n").services["w"].engine == ""
    for bad, error in [("engine: spark\n    cmd: x", "must be '' or 'flink'"),
                       ("engine: flink", "needs a cmd"),
                       ("engine: flink\n    cmd: -py a.py\n    ports: [80]", "has no ports")]:
        with pytest.raises(SpecInvalid, match=error):
            parse_dice_yml(f"version: '2.0'\nservices:\n  c:\n    {bad}\n")


def test_flink_is_a_registered_kind():
    assert "flink" in registry.kinds()
    caps = registry.capabilities("flink")
    assert caps.savepoints and not caps.runtimes and not caps.images
    # the flink action's steps run on the console's machine, as the spark action's do
    assert caps.steps and caps.console_filesystem and caps.data_engine == "flink"
    assert "flink" in registry.capabilities("kubernetes").engines  # through the Flink operator


def test_the_flink_actions_params_erda_forms():
    from scheduler.flink.action import action_params

    action = action_params({"bigDataConf": '{"resource": "a.jar", "class": "C", "args": "x \'y z\'", '
                                           '"flinkConf": {"kind": "FlinkJob", "parallelism": 3}}', "class": "D"})
    assert action.command() == ["flink", "run", "-p", "3", "-c", "D", "a.jar", "x", "y z"]  # explicit params win
    assert action.kind == "FlinkJob" and not action.detach
    assert action_params({"resource": "p.py", "detach": "true"}).command() == ["flink", "run", "-py", "p.py"]
    for params, error in [({"resource": "a.txt"}, "neither a .jar nor a .py"),
                          ({"resource": "a.py", "class": "C"}, "a Python program has none"),
                          ({"resource": "a.jar", "flinkConf": {"parallelism": 0}}, "1-1024"),
                          ({"resource": "a.jar", "flinkConf": "x"}, "flinkConf is a mapping"),
                          ({"bigDataConf": "[1]"}, "must be a JSON object")]:
        with pytest.raises(ExecutorError, match=error):
            action_params(params)


def test_a_flink_deployments_status_is_a_services_health():
    from scheduler.base import Health
    from scheduler.flink.operator import deployment_health

    spec = {"spec": {"job": {"parallelism": 2}}}
    assert deployment_health(spec)[0] is Health.PROGRESSING
    assert deployment_health({**spec, "status": {"lifecycleState": "STABLE", "jobStatus": {"state": "RUNNING"}}}) == (
        Health.HEALTHY, 2, 2, "")
    health, _, _, reason = deployment_health({**spec, "status": {"lifecycleState": "UPGRADING",
                                                                 "jobStatus": {"state": "RUNNING"}}})
    assert health is Health.PROGRESSING and "UPGRADING" in reason  # a savepoint upgrade under way
    health, _, _, reason = deployment_health({**spec, "status": {"jobStatus": {"state": "FAILING"},
                                                                 "error": "boom\n\tat x"}})
    assert health is Health.DEGRADED and reason == "job FAILING: boom"


def test_the_flink_stream_example_is_a_valid_flink_service():
    from pathlib import Path

    root = Path(__file__).resolve().parents[2] / "examples" / "flink-stream"
    spec = parse_dice_yml((root / "dice.yml").read_text())
    assert spec.services["clicks"].engine == "flink"
    assert service_argv(spec.services["clicks"].cmd, "clicks") == ["-py", "count.py", "10"]
    assert (root / "count.py").is_file()
