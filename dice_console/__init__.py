"""Dice Console: settings, URL root, ASGI routing and the Celery app."""

from dice_console.celery import app as celery_app

__all__ = ("celery_app",)
