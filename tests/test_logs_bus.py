"""The log bus (apps/logs/bus.py): pushed task-log lines reach the followers of a loop, in order,
from any thread; in process without Redis, over Redis pub/sub with it; consoles on different Redis
databases of one server do not hear each other."""

from __future__ import annotations

import asyncio
import threading

import pytest

from apps.logs import bus


def _follow_and_publish(batches: list[list[tuple[int, list, bool]]], follow: list[int], unfollow_after: int | None = None):
    """Follow `follow` on a fresh loop, publish each batch from another thread, and return what
    arrived per task (a task is unfollowed after the batch numbered `unfollow_after`)."""
    got: dict[int, list] = {}

    async def scenario():
        hub = bus.hub()
        key = object()
        for task_id in follow:
            await hub.follow(task_id, key, lambda task_id, lines, ended: got.setdefault(task_id, []).append((lines, ended)))
        for i, batch in enumerate(batches):
            thread = threading.Thread(target=bus.publish, args=(batch,))
            thread.start()
            thread.join(5)
            await asyncio.sleep(0.3)
            if unfollow_after == i:
                for task_id in follow:
                    await hub.unfollow(task_id, key)

    asyncio.run(scenario())
    return got


BATCHES = [
    [(7001, [[1, 0.0, "stdout", "a"], [2, 0.0, "stdout", "b"]], False), (7002, [[1, 0.0, "stderr", "x"]], False)],
    [(7001, [[3, 0.0, "stdout", "c"]], False), (7001, [], True), (7003, [[1, 0.0, "stdout", "not followed"]], False)],
]


def _check(got):
    assert got[7001] == [([[1, 0.0, "stdout", "a"], [2, 0.0, "stdout", "b"]], False),
                         ([[3, 0.0, "stdout", "c"]], False), ([], True)]
    assert got[7002] == [([[1, 0.0, "stderr", "x"]], False)]
    assert 7003 not in got


def test_in_process_the_lines_reach_the_followers_loop_in_order(settings):
    settings.REDIS_URL = ""
    _check(_follow_and_publish(BATCHES, [7001, 7002]))


def test_in_process_an_unfollowed_task_gets_nothing_more(settings):
    settings.REDIS_URL = ""
    got = _follow_and_publish(BATCHES, [7001, 7002], unfollow_after=0)
    assert len(got[7001]) == 1


@pytest.mark.redis
def test_over_redis_the_lines_reach_the_followers_in_order_and_stay_on_their_database(settings):
    assert settings.REDIS_URL
    _check(_follow_and_publish(BATCHES, [7001, 7002]))
    # Another console on another database of the same server publishes the same task ids: unheard.
    base = settings.REDIS_URL.rsplit("/", 1)[0]
    mine = bus.channel_name(7001)
    # a database every Redis server has (16 by default: CI's has no more), not this console's
    other_db = "15" if not settings.REDIS_URL.endswith("/15") else "14"
    other = f"{base}/{other_db}"
    got: dict[int, list] = {}
    failed: list[BaseException] = []

    def publish_elsewhere():
        try:
            bus._publish_redis([(7001, [[9, 0.0, "stdout", "elsewhere"]], False)])
        except BaseException as exc:  # the test must see that the other console did publish
            failed.append(exc)

    async def scenario():
        await bus.hub().follow(7001, "k", lambda task_id, lines, ended: got.setdefault(task_id, []).append(lines))
        settings.REDIS_URL = other
        assert bus.channel_name(7001) != mine
        thread = threading.Thread(target=publish_elsewhere)
        thread.start()
        thread.join(5)
        await asyncio.sleep(0.5)

    original = settings.REDIS_URL
    try:
        asyncio.run(scenario())
    finally:
        settings.REDIS_URL = original
    assert not failed, failed
    assert got == {}
