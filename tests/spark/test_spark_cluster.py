"""The spark kind against a real standalone cluster (the managed one: master + worker as sandboxed
local jobs): the capability report, a Python app in client mode, a jar through the REST
submission protocol, driver output as log lines, cancel, and what a Spark cluster refuses.
(Cancelling a client-mode driver is tested through the pipeline: tests/spark/test_spark_pipeline.py.)"""

from __future__ import annotations

import contextlib
import http.server
import shutil
import subprocess
import threading

import pytest

from scheduler.base import ExecutorError, JobSpec, JobState, RuntimeRef
from scheduler.registry import capabilities, kinds
from scheduler.spark.app import SparkApp, job_command
from tests.spark.conftest import wait_for

pytestmark = pytest.mark.spark

APP = """
import os, sys
from pyspark.sql import SparkSession
spark = SparkSession.builder.getOrCreate()
n = spark.range(int(sys.argv[1])).selectExpr("sum(id) AS s").collect()[0]["s"]
print(f"SUM {n} uid={os.getuid()}", flush=True)
print(f"action meta: sum={n}", flush=True)
if len(sys.argv) > 2:
    import time; time.sleep(float(sys.argv[2]))
spark.stop()
"""


def _lines(executor, name: str, ns: str) -> list[str]:
    return [line.text for line in executor.job_logs(name, ns)]


def test_kind_is_registered():
    assert "spark" in kinds()
    assert capabilities("spark").console_filesystem and not capabilities("spark").images


def test_check_reports_version_workers_cores_and_memory(spark_cluster):
    report = spark_cluster.check()
    assert report["reachable"], report
    assert report["server_version"].startswith("4.")
    assert len(report["workers"]) == 1 and report["cores"] == 2 and report["memory_mib"] == 768
    nodes = spark_cluster.snapshot()["nodes"]
    assert nodes[0]["capacity"] == {"cpu": 2000, "memory": 768 << 20} and nodes[0]["ready"]


def test_python_app_runs_in_client_mode_in_its_sandbox(spark_cluster, tmp_path):
    code = tmp_path / "app"
    code.mkdir()
    (code / "sum.py").write_text(APP)
    app = SparkApp(resource=str(code / "sum.py"), args=("1000",), type="Python", driver_mem=512, executor_mem=512)
    job = JobSpec(name="py-sum", namespace="acme-etl", command=job_command(app), tenant="acme",
                  mounts={str(code): "ro"})
    spark_cluster.run_job(job)
    status = wait_for(lambda: (s := spark_cluster.job_status("py-sum", "acme-etl")).state.finished and s,
                      120, "the Python app to finish")
    lines = _lines(spark_cluster, "py-sum", "acme-etl")
    assert status.state is JobState.SUCCEEDED, (status, lines[-30:])
    sums = [line for line in lines if line.startswith("SUM ")]
    assert sums and sums[0].startswith("SUM 499500 uid=") and not sums[0].endswith("uid=0"), sums
    # starting it again is harmless: the same job, not a second application
    assert spark_cluster.run_job(job).state is JobState.SUCCEEDED


@pytest.fixture
def hello_jar_url(tmp_path):
    """A jar served over HTTP (what a worker fetches in cluster mode), built from source here."""
    if shutil.which("javac") is None or shutil.which("jar") is None:
        pytest.skip("needs a JDK (javac, jar) to build the test's jar: apt-get install openjdk-17-jdk-headless")
    src = tmp_path / "src"
    src.mkdir()
    (src / "Hello.java").write_text(
        'public class Hello { public static void main(String[] a) throws Exception {'
        ' for (int i = 0; i < 3; i++) System.out.println("hello " + i + " " + String.join(",", a));'
        ' Thread.sleep(Long.parseLong(a.length > 1 ? a[1] : "0")); } }')
    subprocess.run(["javac", "-d", str(src), str(src / "Hello.java")], check=True)
    subprocess.run(["jar", "cf", str(tmp_path / "hello.jar"), "-C", str(src), "Hello.class"], check=True)
    handler = lambda *a: http.server.SimpleHTTPRequestHandler(*a, directory=str(tmp_path))  # noqa: E731
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hello.jar"
    server.shutdown()


def test_jar_goes_through_the_rest_submission_protocol(spark_cluster, hello_jar_url):
    app = SparkApp(resource=hello_jar_url, main_class="Hello", args=("x", "0"), driver_mem=512, driver_cores=1)
    spark_cluster.run_job(JobSpec(name="jar-hello", namespace="acme-etl", command=job_command(app)))
    record = spark_cluster._record("jar-hello", "acme-etl")
    assert record and record["submission"].startswith("driver-")
    status = wait_for(lambda: (s := spark_cluster.job_status("jar-hello", "acme-etl")).state.finished and s,
                      120, "the driver to finish")
    assert status.state is JobState.SUCCEEDED, status
    lines = _lines(spark_cluster, "jar-hello", "acme-etl")
    assert [t for t in lines if t.startswith("hello ")] == ["hello 0 x,0", "hello 1 x,0", "hello 2 x,0"]


def test_jar_cancel_kills_the_driver(spark_cluster, hello_jar_url):
    app = SparkApp(resource=hello_jar_url, main_class="Hello", args=("y", "600000"), driver_mem=512)
    spark_cluster.run_job(JobSpec(name="jar-slow", namespace="acme-etl", command=job_command(app)))
    wait_for(lambda: spark_cluster.job_status("jar-slow", "acme-etl").state is JobState.RUNNING, 60, "running")
    spark_cluster.cancel_job("jar-slow", "acme-etl")
    wait_for(lambda: spark_cluster.job_status("jar-slow", "acme-etl").state is JobState.CANCELLED, 30, "killed")


def test_services_are_refused_with_a_reason(spark_cluster):
    from diceyml import parse_dice_yml
    from scheduler.base import Health, ServiceGroup

    runtime = RuntimeRef("acme", "shop", "app", "DEV", "main")
    doc = parse_dice_yml('version: "2.0"\nservices:\n  web:\n    cmd: sleep 1\n', workspace="DEV")
    with pytest.raises(ExecutorError, match="not services"):
        spark_cluster.apply(ServiceGroup(runtime=runtime, spec=doc))
    status = spark_cluster.status(runtime)  # nothing of the runtime runs here
    assert status.health is Health.MISSING and not status.jobs and not status.services
    spark_cluster.destroy(runtime)  # nothing of a runtime is here: done


def test_unreachable_master_is_reported_not_raised():
    from scheduler.base import ClusterRef
    from scheduler.registry import inspector_for

    report = inspector_for(ClusterRef(name="gone", kind="spark", config={"endpoint": "http://127.0.0.1:9"})).check()
    assert not report["reachable"] and "cannot be reached" in report["error"]
    with contextlib.suppress(ExecutorError):
        bad = inspector_for(ClusterRef(name="bad", kind="spark", config={"endpoint": "ftp://x"})).check()
        assert not bad["reachable"]
