"""settle_heap: a started process freezes what startup built, so full collections skip it."""

import gc

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
