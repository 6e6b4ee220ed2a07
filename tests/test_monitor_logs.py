"""The step monitor stores a running step's lines as they are written (woken by the local cluster's
log watch, not at its next pass), and reads each log on from where it left off: a pass over a long
log costs its new lines, not the whole log again."""

from __future__ import annotations

import threading

from tests.pipelines_helpers import engine, retry_locked, wait_until  # noqa: F401


def _stored_texts(task_id: int) -> list[str]:
    from apps.logs.services import read_task_lines

    return [line.text for line in retry_locked(read_task_lines, task_id)]


def test_a_line_is_stored_when_written_not_at_the_next_pass(unsandboxed, engine, tenant_a, tmp_path,  # noqa: F811
                                                            monkeypatch):
    from apps.pipelines import monitor

    go = tmp_path / "go"
    src = f"""
version: "1.1"
stages:
  - stage:
      - custom-script:
          alias: talker
          commands:
            - "echo first; while [ ! -e {go} ]; do sleep 0.05; done; echo second; sleep 60"
"""
    run = engine.run(tenant_a, src)
    task = wait_until(lambda: engine.tasks(run)["talker"].job_name and "first" in _stored_texts(
        engine.tasks(run)["talker"].pk) and engine.tasks(run)["talker"], 30, "the step's first line stored")
    watcher = monitor.ensure_started()
    wait_until(lambda: any(key[1] == task.job_name for key in watcher._running), 10, "a pass to see the step")
    # From now on no pass comes within the test (the one already due reschedules an hour ahead):
    # only the log watch can wake the monitor for the next line.
    monkeypatch.setattr(monitor, "PASS", 3600.0)
    passes = []
    real_pass = watcher._pass
    monkeypatch.setattr(watcher, "_pass", lambda: passes.append(1) or real_pass())
    threading.Event().wait(1.0)
    passes.clear()
    go.touch()
    wait_until(lambda: "second" in _stored_texts(task.pk), 10, "the second line stored without a pass")
    assert passes == []
    from apps.pipelines import services

    retry_locked(services.cancel_run, tenant_a.owner, run)
    engine.wait(run, 30)


def test_a_pass_reads_only_what_a_long_log_gained(unsandboxed, engine, tenant_a, monkeypatch):  # noqa: F811
    """30,000 lines at once, then a line every 50 ms for 4 s: the monitor's thread parses each
    line of the log about once (reading the whole log at each pass and wake-up parsed it tens of
    times), and every line is stored once, in order."""
    from scheduler.local import logs

    parsed = {"monitor": 0}
    real = logs.parse_line

    def counting(source, raw):
        if threading.current_thread().name == "dice-step-monitor-pass":
            parsed["monitor"] += 1
        return real(source, raw)

    monkeypatch.setattr(logs, "parse_line", counting)
    src = """
version: "1.1"
stages:
  - stage:
      - custom-script:
          alias: long
          commands:
            - "seq 1 30000 | sed 's/^/bulk /'; i=1; while [ $i -le 80 ]; do echo tick $i; i=$((i+1)); sleep 0.05; done"
"""
    run = engine.run(tenant_a, src)
    engine.wait(run, 120)
    task = engine.tasks(run)["long"]
    assert task.status == "success", task.reason
    texts = _stored_texts(task.pk)
    printed = [t for t in texts if t.startswith(("bulk ", "tick "))]
    assert printed == [f"bulk {i}" for i in range(1, 30001)] + [f"tick {i}" for i in range(1, 81)]
    assert parsed["monitor"] > 0  # the monitor did read the log while the step ran
    assert parsed["monitor"] <= 1.2 * task.last_line, (parsed, task.last_line)
