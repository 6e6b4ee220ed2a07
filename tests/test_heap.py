"""settle_heap: a started process freezes what startup built, so full collections skip it."""

import gc
import json

from dice_console.heap import settle_heap


def test_settle_heap_freezes_the_startup_objects():
    gc.unfreeze()
    try:
        before = gc.get_freeze_count()
        settle_heap()
        assert gc.get_freeze_count() > before + 10000  # Django and Celery's objects at least
        assert gc.get_count()[0] < 100  # and collected first: nothing young is left over
    finally:
        gc.unfreeze()  # this test process starts workers again and again: do not keep them frozen


def test_a_web_process_settles_its_heap_once_its_app_is_built():
    """Production's web processes (uvicorn dice_console.asgi:application) freeze what startup built,
    as standalone and the workers do: their full collections otherwise held a request ~100-150 ms
    every ~50 requests (bench/bench_api_scale.py p99)."""
    import subprocess
    import sys

    code = "import gc, dice_console.asgi; print(gc.get_freeze_count())"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert int(out.stdout.strip().splitlines()[-1]) > 10000, out.stdout + out.stderr


def _in_a_web_process(code: str, **env) -> str:
    """Run `code` in a fresh interpreter that imported the web entry point as uvicorn does."""
    import os
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-c", "import gc, json, dice_console.asgi as web\n" + code],
                         capture_output=True, text=True, timeout=120, env={**os.environ, **env})
    assert out.returncode == 0, out.stdout + out.stderr
    return out.stdout.strip().splitlines()[-1]


def test_a_web_process_raises_the_allocation_thresholds_to_a_backstop():
    """dice_console.asgi installs the web collector policy (heap.tune_collector): the allocation
    thresholds are a backstop, the young one above what most requests allocate (the interpreter's is
    700; the web process collects when idle); an operator may set all three (DICE_GC_THRESHOLDS)."""
    from dice_console.heap import BACKSTOP_THRESHOLDS

    assert _in_a_web_process("print(json.dumps(gc.get_threshold()))") == json.dumps(list(BACKSTOP_THRESHOLDS))
    assert BACKSTOP_THRESHOLDS[0] > 700
    assert _in_a_web_process("print(json.dumps(gc.get_threshold()))",
                             DICE_GC_THRESHOLDS="5000,20,30") == "[5000, 20, 30]"


def test_bad_collector_thresholds_stop_the_web_process_with_the_variable_named():
    import os
    import subprocess
    import sys

    for bad in ("20000,10", "a,b,c", "0,10,10"):
        out = subprocess.run([sys.executable, "-c", "import dice_console.asgi"], capture_output=True, text=True,
                             timeout=120, env={**os.environ, "DICE_GC_THRESHOLDS": bad})
        assert out.returncode != 0
        assert "DICE_GC_THRESHOLDS" in out.stderr and "three positive integers" in out.stderr
    for bad in ("many", "-5"):
        out = subprocess.run([sys.executable, "-c", "import dice_console.asgi"], capture_output=True, text=True,
                             timeout=120, env={**os.environ, "DICE_GC_WARMUP_REQUESTS": bad})
        assert out.returncode != 0
        assert "DICE_GC_WARMUP_REQUESTS" in out.stderr and "a number of requests" in out.stderr


def test_a_web_process_freezes_again_once_its_first_requests_are_served():
    """The ASGI application itself (CollectWhenIdle around Django): after DICE_GC_WARMUP_REQUESTS
    requests, at a moment none is in flight, what they built to keep is frozen, once."""
    code = _GET + """
counts = []
for _ in range(5):
    assert asyncio.run(get()) == 200
    counts.append(gc.get_freeze_count())
print(json.dumps(counts))
"""
    counts = json.loads(_in_a_web_process(code, DICE_GC_WARMUP_REQUESTS="3"))
    assert counts[0] == counts[1], counts  # not before the third request
    assert counts[2] > counts[1], counts  # frozen again once three were served
    # and only once: no freeze after it (frozen objects may still be freed by their references' end)
    assert counts[4] <= counts[3] <= counts[2], counts


def test_a_web_process_collects_when_its_last_request_has_finished():
    """Between requests (none in flight) the web process collects its young generation, every tenth
    time the middle one, every hundredth a full pass (heap.Idle): the passes that held requests were
    those in the middle of them. Without the policy (DICE_GC_WHEN_IDLE=0) the same requests see no
    pass at all below high thresholds."""
    code = _GET + """
passes = [0, 0, 0]
gc.callbacks.append(lambda phase, info: phase == "stop" and passes.__setitem__(
    info["generation"], passes[info["generation"]] + 1))
for _ in range(101):
    assert asyncio.run(get()) == 200
print(json.dumps(passes))
"""
    young, middle, full = json.loads(_in_a_web_process(code, DICE_GC_WARMUP_REQUESTS="0",
                                                       DICE_GC_THRESHOLDS="1000000,1000,1000"))
    # one pass after each request (none skipped unless nothing was allocated): 91 young, 9 middle, 1 full
    assert (young, middle, full) == (91, 9, 1), (young, middle, full)
    assert json.loads(_in_a_web_process(code, DICE_GC_WARMUP_REQUESTS="0", DICE_GC_WHEN_IDLE="0",
                                        DICE_GC_THRESHOLDS="1000000,10,10")) == [0, 0, 0]


_GET = """
import asyncio
from asgiref.testing import ApplicationCommunicator

async def get():
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET",
             "scheme": "http", "path": "/healthz/", "raw_path": b"/healthz/", "query_string": b"",
             "root_path": "", "headers": [(b"host", b"127.0.0.1")], "client": ("127.0.0.1", 1),
             "server": ("127.0.0.1", 80)}
    talk = ApplicationCommunicator(web.application, scope)
    await talk.send_input({"type": "http.request", "body": b""})
    start = await talk.receive_output(30)
    await talk.receive_output(30)
    await talk.wait(30)
    return start["status"]
"""
