"""The Celery app: broker and schedules come from Django settings (CELERY_* names)."""

import os

from celery import Celery

from dice_console import broker  # noqa: F401 - registers the dice-memory:// transport

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dice_console.settings")

app = Celery("dice_console")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

# Worker threads keep their database connection across tasks and drop it only when it broke.
from celery.signals import task_postrun  # noqa: E402

from dice_console.dbconn import drop_broken_connections  # noqa: E402

task_postrun.connect(drop_broken_connections, weak=False, dispatch_uid="dice-drop-broken-connections")

# A worker child (prefork) settles its heap once started; see dice_console.embedded.settle_heap.
from celery.signals import worker_process_init  # noqa: E402

from dice_console.heap import settle_heap  # noqa: E402

worker_process_init.connect(lambda **kwargs: settle_heap(), weak=False, dispatch_uid="dice-settle-heap")

# A worker started from the command line (`celery -A dice_console worker`) first waits until it
# supervises the clusters that run on this machine (apps.clusters.supervision: one process per local
# root; a second worker here is a standby). Connected here, before the apps' own worker_init hooks,
# so their reconcilers are sent once this worker can act on what they find.
from celery.signals import worker_init  # noqa: E402


def _stand_by_until_supervising(sender=None, **kwargs) -> None:
    from celery.apps.worker import Worker

    if not isinstance(sender, Worker):  # the embedded worker of standalone mode and tests
        return
    import sys

    from dice_console import heap

    heap.limit_arenas()  # before the pool's threads start, as `manage.py standalone` does (dice_console/heap.py)

    from apps.clusters.supervision import wait_to_supervise

    wait_to_supervise(say=lambda text: print(f"dice worker {sender.hostname}: {text}", file=sys.stderr, flush=True))


worker_init.connect(_stand_by_until_supervising, weak=False, dispatch_uid="dice-stand-by")
