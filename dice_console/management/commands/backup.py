"""`manage.py backup DIR`: a consistent backup of the console (see dice_console/backup.py)."""

from django.core.management.base import BaseCommand, CommandError

from dice_console import backup


class Command(BaseCommand):
    help = ("Back up the database (SQLite online backup or pg_dump), the generated keys, release files "
            "and hosted repositories into DIR (new or empty), with a manifest of sizes and sha256.")

    def add_arguments(self, parser):
        parser.add_argument("dir", help="the folder to write the backup into (new or empty)")

    def handle(self, *args, **options):
        try:
            backup.backup(options["dir"], say=lambda line: self.stdout.write(line))
        except backup.BackupError as exc:
            raise CommandError(str(exc))
