"""`manage.py standalone`: one process serving HTTP and WebSockets with a Celery worker and beat inside."""

from __future__ import annotations

import asyncio
import sys

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Run the console in one process: ASGI server, embedded Celery worker and beat."

    def add_arguments(self, parser):
        parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
        parser.add_argument("--port", type=int, default=8000, help="port to listen on (default 8000)")
        parser.add_argument("--no-worker", action="store_true", help="do not embed a Celery worker and beat")
        parser.add_argument("--no-migrate", action="store_true", help="do not apply migrations first")

    def handle(self, *args, host, port, no_worker, no_migrate, **options):
        import uvicorn

        from apps.clusters.services import ensure_managed_data_clusters
        from apps.projects.bootstrap import ensure_admin
        from dice_console import heap, realtime
        from dice_console.celery import app as celery_app
        from dice_console.embedded import EmbeddedWorker

        heap.limit_arenas()  # before any thread starts (dice_console/heap.py)
        if not no_migrate:
            call_command("migrate", interactive=False, verbosity=0)
        password = ensure_admin()
        ensure_managed_data_clusters()

        worker = None
        if not no_worker:
            worker = EmbeddedWorker(celery_app, beat_scheduler=settings.CELERY_BEAT_SCHEDULER)
            worker.start()
        heap.settle_heap()

        config = uvicorn.Config(
            "dice_console.asgi:application", host=host, port=port, lifespan="off",
            log_level="warning", ws="websockets-sansio",
        )
        server = uvicorn.Server(config)

        shown_host = f"[{host}]" if ":" in host else host
        mode = "PostgreSQL" if settings.DATABASE_URL else "SQLite (WAL)"
        broker = "Redis" if settings.REDIS_URL else "in-process"

        def banner():
            self.stdout.write(f"Dice Console is running at http://{shown_host}:{port}/")
            if password:
                self.stdout.write(f"Admin user: admin  password: {password}  (shown only on first start)")
            self.stdout.write(f"Database: {mode}; broker and channel layer: {broker}. Ctrl-C stops.")
            sys.stdout.flush()

        async def announce_when_listening():
            while not server.started and not server.should_exit:
                await asyncio.sleep(0.02)
            if server.started:
                banner()

        async def serve():
            realtime.register_server_loop(asyncio.get_running_loop())
            announcer = asyncio.create_task(announce_when_listening())
            try:
                await server.serve()
            finally:
                announcer.cancel()
                realtime.register_server_loop(None)

        try:
            asyncio.run(serve())
        except KeyboardInterrupt:
            pass
        finally:
            if worker is not None:
                worker.stop()
            self.stdout.write("Stopped.")
        if not server.started and not server.should_exit:
            raise SystemExit(1)
