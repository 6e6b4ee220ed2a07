"""Long-lived threads keep their database connection across tasks and drop it only when broken."""

from __future__ import annotations

import pytest
from django.db import connection

from dice_console.dbconn import drop_broken_connections

pytestmark = pytest.mark.django_db(transaction=True)


def _query() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        return cursor.fetchone()[0]


def test_a_healthy_connection_is_kept_after_a_task():
    _query()
    raw = connection.connection
    drop_broken_connections()
    assert connection.connection is raw  # reused by the next task: no reconnect


@pytest.mark.postgres
def test_a_connection_the_server_killed_is_dropped_and_the_next_task_reconnects():
    """A real fault: the server ends the thread's session (as a restart would)."""
    import psycopg

    _query()
    raw = connection.connection
    pid = connection.connection.info.backend_pid
    params = connection.settings_dict
    with psycopg.connect(host=params["HOST"], port=params["PORT"], user=params["USER"], password=params["PASSWORD"],
                         dbname=params["NAME"], autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", [pid])
    with pytest.raises(Exception):  # noqa: B017 - the driver's error for a dead session
        _query()
    assert connection.errors_occurred
    drop_broken_connections()
    assert connection.connection is None
    assert _query() == 1 and connection.connection is not raw


def test_an_error_on_a_usable_connection_keeps_it():
    _query()
    raw = connection.connection
    connection.errors_occurred = True  # e.g. an IntegrityError: the connection itself is fine
    drop_broken_connections()
    assert connection.connection is raw and not connection.errors_occurred


def test_celery_drops_broken_connections_after_each_task():
    from celery.signals import task_postrun

    from dice_console.celery import app  # noqa: F401  (connects the handler)

    assert drop_broken_connections in task_postrun._live_receivers(None)
