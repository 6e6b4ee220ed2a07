"""`manage.py push_image ARCHIVE NAME[:TAG]`: put an OCI image archive into the console's registry."""

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from apps.pipelines.builtin import image_registry
from apps.pipelines.images.archive import ArchiveError, push_archive
from apps.pipelines.images.oci import split_ref
from apps.pipelines.images.registry import Registry, RegistryError


class Command(BaseCommand):
    help = ("Push an OCI image-layout archive (`ctr images export`, `ktestenv image`) into DICE_IMAGE_REGISTRY "
            "as NAME[:TAG], e.g. the bases Dockerfiles name (python:3.11-slim is library/python:3.11-slim): "
            "no Docker daemon or Internet access needed.")

    def add_arguments(self, parser):
        parser.add_argument("archive", help="the image archive (tar)")
        parser.add_argument("name", help="NAME[:TAG] in the registry (default tag: latest)")
        parser.add_argument("--registry", default="", help="the registry's URL (default: DICE_IMAGE_REGISTRY)")

    def handle(self, *args, **options):
        url = options["registry"] or image_registry()
        if not url:
            raise CommandError("no registry: set DICE_IMAGE_REGISTRY or give --registry (e.g. http://127.0.0.1:5000)")
        name, tag = split_ref(options["name"])
        try:
            pushed = push_archive(Path(options["archive"]), Registry(url), name, tag)
        except (ArchiveError, RegistryError) as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(f"pushed {Registry(url).host}/{pushed.name}:{pushed.tag} ({pushed.layers} layers, "
                          f"{pushed.digest})")
