"""Work handed over by name (apps.pipelines.queue) finds its task in any process: a web process that
never imported apps.pipelines.tasks itself must still be able to start a run."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

PROBE = """
import django
django.setup()
from celery import current_app
from apps.pipelines import queue
missing = [n for n in ("start_runs", "dispatch_run", "check_deployment", "resume_after_review")
           if queue.PREFIX + n not in current_app.tasks]
print("missing:", missing)
raise SystemExit(1 if missing else 0)
"""


def test_a_fresh_process_has_every_task_the_queue_sends(tmp_path):
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "dice_console.settings", "DICE_DATA_DIR": str(tmp_path)}
    done = subprocess.run([sys.executable, "-c", PROBE], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
