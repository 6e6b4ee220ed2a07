"""The Celery app: broker and schedules come from Django settings (CELERY_* names)."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dice_console.settings")

app = Celery("dice_console")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
