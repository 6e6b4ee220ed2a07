"""Settings an operator sets in the environment (README) reach the console."""

import os
import subprocess
import sys

from tests.conftest import ROOT


def test_pipeline_settings_come_from_the_environment():
    names = {"DICE_PIPELINE_MAX_RUNS_PER_PROJECT": "2", "DICE_PIPELINE_MAX_PARALLEL_STEPS": "30",
             "DICE_PIPELINE_START_BATCH": "7", "DICE_PIPELINE_LAUNCH_THREADS": "3", "DICE_PIPELINE_NOTIFY_PORT": "0"}
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    env.update(names, DJANGO_SETTINGS_MODULE="dice_console.settings")
    code = ("import django; django.setup(); from django.conf import settings; "
            f"print(' '.join(str(getattr(settings, n)) for n in {sorted(names)!r}), settings.CELERY_BROKER_URL)")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == [names[n] for n in sorted(names)] + ["dice-memory://"]
