"""A Celery worker and beat embedded in the standalone process, as threads."""

from __future__ import annotations

import logging
import threading

from celery.beat import EmbeddedService
from celery.contrib.testing.worker import TestWorkController, setup_app_for_worker
from celery.result import _set_task_join_will_block
from celery.utils.nodenames import anon_nodename

log = logging.getLogger(__name__)


class EmbeddedWorker:
    """Starts the worker the way celery.contrib.testing.worker does: a plain WorkController().start()
    in a thread consumes nothing from the memory broker, the test controller's setup does."""

    def __init__(self, app, *, concurrency: int = 4, with_beat: bool = True, beat_scheduler: str | None = None):
        self.app = app
        self.concurrency = concurrency
        self.with_beat = with_beat
        self.beat_scheduler = beat_scheduler
        self.worker = None
        self.thread = None
        self.beat = None

    def start(self, timeout: float = 30.0) -> None:
        setup_app_for_worker(self.app, "WARNING", None)
        with self.app.connection() as conn:
            conn.default_channel.queue_declare  # noqa: B018 - connects to the broker now
        self.worker = TestWorkController(
            app=self.app,
            concurrency=self.concurrency,
            hostname=anon_nodename(),
            pool="threads",
            loglevel="WARNING",
            logfile=None,
            ready_callback=None,
            without_heartbeat=True,
            without_mingle=True,
            without_gossip=True,
        )
        self.thread = threading.Thread(target=self.worker.start, name="celery-worker", daemon=True)
        self.thread.start()
        if not self.worker._on_started.wait(timeout):
            raise RuntimeError("the embedded Celery worker did not start")
        # The worker marks the whole process as "inside a task"; the web side may still wait on results.
        _set_task_join_will_block(False)
        if self.with_beat:
            self.beat = EmbeddedService(self.app, thread=True, scheduler_cls=self.beat_scheduler)
            self.beat.start()

    def stop(self, timeout: float = 10.0) -> None:
        if self.beat is not None:
            self.beat.stop()
        if self.worker is not None:
            from celery.worker import state

            state.should_terminate = 0
            self.worker.stop(in_sighandler=False)
            self.thread.join(timeout)
            state.should_terminate = None


