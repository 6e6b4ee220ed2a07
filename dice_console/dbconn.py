"""Database connections of long-lived threads (Celery worker threads, the step monitor, launchers).

Web requests close their connection when they end (CONN_MAX_AGE 0): under ASGI each request's
synchronous code runs in a thread of its own, so a kept connection would be orphaned with that
thread. Worker threads live long and run many short tasks, so they keep theirs (Celery is told
not to close it: CELERY_DB_REUSE_MAX) and drop it only when it broke, e.g. after the database
restarted, so the next task reconnects instead of failing on a dead connection.
"""

from __future__ import annotations

import contextlib


def drop_broken_connections(**_) -> None:
    from django.db import DatabaseError, InterfaceError, connections

    for conn in connections.all(initialized_only=True):
        if conn.connection is None or not conn.errors_occurred:
            continue
        conn.errors_occurred = False
        if not conn.is_usable():
            with contextlib.suppress(DatabaseError, InterfaceError):
                conn.close()
