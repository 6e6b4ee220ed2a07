"""App config of the console package itself (management commands, base templates)."""

from django.apps import AppConfig


class DiceConsoleConfig(AppConfig):
    name = "dice_console"
    verbose_name = "Dice Console"
