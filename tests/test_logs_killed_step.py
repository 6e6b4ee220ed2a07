"""The log of a step whose process was killed is complete up to its last line, and stays readable
(and streamable, with its end) after the process is gone."""

from __future__ import annotations

from tests.logs_helpers import connect_logs, run_async
from tests.pipelines_helpers import engine, retry_locked, wait_until  # noqa: F401

LINES = 3000


def test_killed_step_log_is_complete(unsandboxed, engine, tenant_a, tmp_path):  # noqa: F811
    from apps.logs.services import read_task_lines

    marker = tmp_path / "printed"
    src = f"""
version: "1.1"
stages:
  - stage:
      - custom-script:
          alias: doomed
          commands:
            - "i=1; while [ $i -le {LINES} ]; do echo \\"out $i\\"; i=$((i+1)); done; touch {marker}; sleep 1; kill -9 $PPID; sleep 30"
"""
    run = engine.run(tenant_a, src)
    engine.wait(run, 60)
    task = engine.tasks(run)["doomed"]
    assert marker.exists()
    assert task.status == "failed", (task.status, task.reason)
    lines = retry_locked(read_task_lines, task.pk)
    assert [line.number for line in lines] == list(range(1, task.last_line + 1))
    printed = [line.text for line in lines if line.stream == "stdout" and line.text.startswith("out ")]
    assert printed == [f"out {i}" for i in range(1, LINES + 1)]

    async def scenario():
        comm, connected, _ = await connect_logs(tenant_a.owner)
        assert connected
        await comm.send_json_to({"type": "subscribe", "stream": f"task:{task.pk}", "from": 0})
        got, end = [], None
        while end is None:
            message = await comm.receive_json_from(timeout=10)
            if message["type"] == "lines":
                got.extend(line[0] for line in message["lines"])
            elif message["type"] == "end":
                end = message
        await comm.disconnect()
        return got, end

    got, end = run_async(scenario)
    assert got == list(range(1, task.last_line + 1))
    assert end["last"] == task.last_line
