# ruff: noqa: F811
"""The run page follows pushes: a task's move is pushed to its run's group (one message per
transaction and run), /ws/runs/<id>/ forwards it to viewers who may see the run, and the page
fetches only the moved rows (?rows=) in a bounded number of queries."""

from __future__ import annotations

import asyncio
import re
import threading

import pytest
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import connection
from django.test.utils import CaptureQueriesContext

from tests.security.conftest import live, ws_connect  # noqa: F401 - the ASGI server fixture

SRC = """
version: "1.1"
stages:
  - stage:
      - custom-script: {alias: build, commands: ["echo hi"]}
"""


def _run(tenant, tasks: int, status: str = "running"):
    from apps.pipelines.models import PipelineRun, TaskRun

    run = PipelineRun.objects.create(application=tenant.app, source=SRC, status=status, created_by=tenant.owner)
    TaskRun.objects.bulk_create(TaskRun(run=run, alias=f"t{i}", type="custom-script", position=i,
                                        needs=[f"t{i - 1}"] if i else [], outputs={"n": str(i)} if i % 2 else {})
                                for i in range(tasks))
    return run


def _in_own_thread(fn, *args):
    """async_to_sync(fn)(*args), from a thread of its own: once a browser test ran, the session's
    browser driver (Playwright's sync API) keeps an event loop running in the main thread, and
    async_to_sync refuses to block it (dice_console.realtime.group_send does the same)."""
    out: dict = {}

    def call() -> None:
        try:
            out["value"] = async_to_sync(fn)(*args)
        except BaseException as exc:  # handed back to the test's thread
            out["error"] = exc

    thread = threading.Thread(target=call)
    thread.start()
    thread.join(60)
    if "error" in out:
        raise out["error"]
    return out["value"]


def _rows(client, run, aliases):
    with CaptureQueriesContext(connection) as queries:
        response = client.get(run.get_absolute_url() + "?rows=" + ",".join(aliases))
    assert response.status_code == 200
    return response.content.decode(), len(queries)


@pytest.mark.django_db
def test_a_rows_fetch_returns_the_head_and_only_those_rows_in_bounded_queries(tenant_a, tenant_b):
    client = tenant_a.browser_client()
    small, big = _run(tenant_a, 5), _run(tenant_a, 600)
    html, few = _rows(client, small, ["t1", "t3"])
    assert re.findall(r'<tr id="task-(\w+)"', html) == ["t1", "t3"]
    assert 'id="run-head"' in html and 'id="run-dag"' in html and "<svg" in html  # small: drawn
    assert "<code>n=1</code>" in html and "needs t0" in html
    html, many = _rows(client, big, [f"t{i}" for i in range(0, 600, 3)] + ["nope", "<script>"])
    assert len(re.findall(r'<tr id="task-', html)) == 200 and "<svg" not in html  # too big to draw
    # (the small run's graph is one query more)
    assert many <= few, f"{few} queries for 2 rows of a 5-task run, {many} for 200 of a 600-task run"
    whole = client.get(big.get_absolute_url())
    assert whole.status_code == 200 and len(re.findall(rb'<tr id="task-', whole.content)) == 600
    # The live page names its socket; a finished run's page does not.
    assert f'data-run-socket="/ws/runs/{big.pk}/"'.encode() in whole.content
    done = _run(tenant_a, 1, status="success")
    assert b"data-run-socket" not in client.get(done.get_absolute_url()).content
    # Another organization's viewer gets nothing.
    assert tenant_b.browser_client().get(small.get_absolute_url() + "?rows=t1").status_code == 404


@pytest.mark.django_db(transaction=True)
def test_task_moves_are_pushed_once_per_transaction_and_run(tenant_a):
    from apps.pipelines import states

    layer = get_channel_layer()
    run = _run(tenant_a, 3)
    channel = _in_own_thread(layer.new_channel)
    _in_own_thread(layer.group_add, states.run_group(run.pk), channel)
    tasks = list(run.tasks.order_by("position"))
    assert len(states.move_tasks(tasks, "running", "claimed")) == 3
    states.move_task(tasks[0], "success")
    states.move_run(run, "cancelled", "stop")

    async def received(count: int) -> list[dict]:  # one event loop for every receive (channels_redis)
        return [await asyncio.wait_for(layer.receive(channel), 10) for _ in range(count)]

    assert _in_own_thread(received, 3) == [
        {"type": "run.tasks", "tasks": [["t0", "running"], ["t1", "running"], ["t2", "running"]]},
        {"type": "run.tasks", "tasks": [["t0", "success"]]},
        {"type": "run.changed", "status": "cancelled"},
    ]


def test_the_run_socket_forwards_moves_to_those_who_may_see_the_run(live, tenant_a, tenant_b):
    import json

    from websockets.exceptions import ConnectionClosed

    from apps.pipelines import states

    run = _run(tenant_a, 2)
    for token, code in ((None, 4401), (tenant_b.token, 4404)):  # anonymous; another organization's user
        with ws_connect(live, f"/ws/runs/{run.pk}/", token=token) as ws, pytest.raises(ConnectionClosed) as refused:
            ws.recv(timeout=10)  # closed before anything is sent
        assert refused.value.rcvd.code == code
    with ws_connect(live, f"/ws/runs/{run.pk}/", token=tenant_a.token) as ws:
        task = run.tasks.get(alias="t1")
        states.move_task(task, "running")
        assert json.loads(ws.recv(timeout=10)) == {"type": "tasks", "tasks": [["t1", "running"]]}
        states.move_run(run, "cancelled", "stop")
        assert json.loads(ws.recv(timeout=10)) == {"type": "changed", "status": "cancelled"}
