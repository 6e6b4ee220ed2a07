"""settle_heap: a started process freezes what startup built, so full collections skip it."""

import gc

from dice_console.embedded import settle_heap


def test_settle_heap_freezes_the_startup_objects():
    gc.unfreeze()
    try:
        before = gc.get_freeze_count()
        settle_heap()
        assert gc.get_freeze_count() > before + 10000  # Django and Celery's objects at least
        assert gc.get_count()[0] < 100  # and collected first: nothing young is left over
    finally:
        gc.unfreeze()  # this test process starts workers again and again: do not keep them frozen
