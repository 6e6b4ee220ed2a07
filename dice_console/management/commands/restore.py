"""`manage.py restore DIR`: restore a backup made by `manage.py backup` (see dice_console/backup.py)."""

from django.core.management.base import BaseCommand, CommandError

from dice_console import backup


class Command(BaseCommand):
    help = ("Restore a backup made by `manage.py backup` into this console (stop it first): checks the "
            "manifest, every file's sha256, the database vendor and that the database is empty first.")

    def add_arguments(self, parser):
        parser.add_argument("dir", help="the backup folder (with its manifest.json)")
        parser.add_argument("--force", action="store_true",
                            help="replace the content of a database that is not empty")

    def handle(self, *args, **options):
        try:
            backup.restore(options["dir"], force=options["force"], say=lambda line: self.stdout.write(line))
        except backup.BackupError as exc:
            raise CommandError(str(exc))
