"""Live task logs end to end: the real persistence + push path, the /ws/logs/ consumer, resume,
isolation between organizations, and the log of a killed step."""

from __future__ import annotations

import asyncio
import threading

import pytest
from asgiref.sync import sync_to_async

from apps.pipelines import steplogs
from tests.logs_helpers import connect_logs, make_task_run, refused_code, run_async

TOTAL = 100_000
BATCH = 500


def _produce(task, total: int, batch: int, finish: bool = True) -> None:
    """Write through steplogs.append_lines (persist in bulk, push after commit), then finish the task."""
    from django.db import connection

    from apps.pipelines import states
    from tests.pipelines_helpers import retry_locked

    try:
        for start in range(1, total + 1, batch):
            texts = [f"line {n} \x1b[32mok\x1b[0m" for n in range(start, min(total, start + batch - 1) + 1)]
            retry_locked(steplogs.append_lines, task, texts, "stdout")
        if finish:
            retry_locked(states.move_task, task, "success", "exit code 0")
    finally:
        connection.close()


async def _receive_until(comm, stream: str, got: list, stop_after: int | None, timeout: float = 60):
    """Collect line numbers until `stop_after` lines are held (then return None) or the end message."""
    while True:
        message = await comm.receive_json_from(timeout=timeout)
        assert message.get("stream") == stream, message
        if message["type"] == "lines":
            got.extend(line[0] for line in message["lines"])
            if stop_after is not None and len(got) >= stop_after:
                return None
        elif message["type"] == "end":
            return message


@pytest.mark.django_db(transaction=True)
def test_100k_lines_with_three_reconnects_arrive_exactly_once_in_order(tenant_a):
    from dice_console import realtime

    task = make_task_run(tenant_a)
    stream = f"task:{task.pk}"

    async def scenario():
        realtime.register_server_loop(asyncio.get_running_loop())
        producer = threading.Thread(target=_produce, args=(task, TOTAL, BATCH))
        got: list[int] = []
        try:
            comm, connected, _ = await connect_logs(tenant_a.owner)
            assert connected
            await comm.send_json_to({"type": "subscribe", "stream": stream, "from": 0})
            producer.start()
            end = None
            for cut in (TOTAL // 10, TOTAL // 3, (2 * TOTAL) // 3, None):
                end = await _receive_until(comm, stream, got, cut)
                if cut is None:
                    break
                await comm.disconnect()
                comm, connected, _ = await connect_logs(tenant_a.owner)
                assert connected
                await comm.send_json_to({"type": "subscribe", "stream": stream, "from": got[-1]})
            await comm.disconnect()
        finally:
            await asyncio.get_running_loop().run_in_executor(None, producer.join)
            realtime.register_server_loop(None)
        return got, end

    got, end = run_async(scenario)
    assert end == {"type": "end", "stream": stream, "last": TOTAL}
    assert len(got) == TOTAL
    assert got == list(range(1, TOTAL + 1))


@pytest.mark.django_db(transaction=True)
def test_user_of_another_organization_is_refused(tenant_a, tenant_b):

    task = make_task_run(tenant_a)
    steplogs.append_lines(task, ["secret-ish build output"], "stdout")

    async def scenario():
        comm, connected, _ = await connect_logs(tenant_b.owner)
        assert connected
        await comm.send_json_to({"type": "subscribe", "stream": f"task:{task.pk}", "from": 0})
        output = await comm.receive_output(timeout=5)
        assert output == {"type": "websocket.close", "code": 4404}
        await comm.wait()

    run_async(scenario)


@pytest.mark.django_db(transaction=True)
def test_token_auth_query_header_and_subprotocol(tenant_a):

    task = make_task_run(tenant_a, status="success")
    steplogs.append_lines(task, ["one", "two"], "stdout")

    async def scenario():
        results = []
        for kwargs in (
            {"token": tenant_a.token},
            {"headers": [(b"authorization", f"Bearer {tenant_a.token}".encode())]},
            {"subprotocols": [f"dice-token.{tenant_a.token}"]},
        ):
            comm, connected, sub = await connect_logs(**kwargs)
            assert connected, kwargs
            await comm.send_json_to({"type": "subscribe", "stream": f"task:{task.pk}"})
            lines = await comm.receive_json_from(timeout=5)
            end = await comm.receive_json_from(timeout=5)
            results.append(([line[3] for line in lines["lines"]], end["type"], end["last"]))
            await comm.disconnect()
        comm, connected, _ = await connect_logs(token="dice_not_a_token")
        assert connected and await refused_code(comm) == 4401
        return results

    assert run_async(scenario) == [(["one", "two"], "end", 2)] * 3


@pytest.mark.django_db(transaction=True)
def test_malformed_subscription_closes_4400(tenant_a):
    async def scenario():
        comm, connected, _ = await connect_logs(tenant_a.owner)
        await comm.send_json_to({"type": "subscribe", "stream": "nope:1"})
        assert (await comm.receive_json_from(timeout=5))["type"] == "error"
        assert (await comm.receive_output(timeout=5))["code"] == 4400

    run_async(scenario)


@pytest.mark.django_db(transaction=True)
def test_lines_pushed_while_subscribed_are_live(tenant_a):
    """A subscriber gets lines written after it subscribed without polling (push + coalescing)."""
    from dice_console import realtime

    task = make_task_run(tenant_a)

    async def scenario():
        realtime.register_server_loop(asyncio.get_running_loop())
        try:
            comm, _, _ = await connect_logs(tenant_a.owner)
            await comm.send_json_to({"type": "subscribe", "stream": f"task:{task.pk}", "from": 0})
            assert await comm.receive_nothing(timeout=0.3)

            for i in range(20):
                await sync_to_async(steplogs.append_lines)(task, [f"live {i}"], "stdout")
            got = []
            messages = 0
            while len(got) < 20:
                message = await comm.receive_json_from(timeout=5)
                messages += 1
                got.extend(line[3] for line in message["lines"])
            await comm.disconnect()
        finally:
            realtime.register_server_loop(None)
        return got, messages

    got, messages = run_async(scenario)
    assert got == [f"live {i}" for i in range(20)]
    assert messages < 20  # coalesced
