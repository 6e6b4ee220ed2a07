"""Bench: what refusing a gzip bomb costs. A 2 MB tar.gz unpacking to 2 GiB of zeros (one file, and
twenty files of 96 MiB) goes through the release-files check (apps.deploy.bundles.check_archive);
prints the CPU seconds each refusal took. Inflating the whole bomb before refusing it took 5.1 s."""

from __future__ import annotations

import gzip
import os
import sys
import tarfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dice_console.settings")

import django  # noqa: E402

django.setup()

from django.core.exceptions import ValidationError  # noqa: E402

from apps.deploy.bundles import check_archive  # noqa: E402

MiB = 1024 * 1024


def bomb(total: int, files: int, chunk: int = 16 * MiB) -> bytes:
    """Repeated gzip members: as cheap to make as the result is small."""
    zeros = gzip.compress(b"\0" * chunk, 9)
    parts = []
    for i in range(files):
        info = tarfile.TarInfo(f"zeros-{i}.bin")
        info.size = total // files // chunk * chunk
        parts.append(gzip.compress(info.tobuf(format=tarfile.GNU_FORMAT), 9))
        parts += [zeros] * (info.size // chunk)
    parts.append(gzip.compress(b"\0" * 1024, 9))
    return b"".join(parts)


def main() -> None:
    for files in (1, 20):
        data = bomb(2 * 1024 * MiB, files)
        started = time.process_time()
        try:
            check_archive(data)
            outcome = "ACCEPTED"
        except ValidationError as exc:
            outcome = "refused: " + "; ".join(exc.messages)
        cpu = time.process_time() - started
        print(f"{files:>2} file(s), {len(data) / MiB:.1f} MiB -> 2 GiB: {cpu:.3f} s CPU, {outcome}")


if __name__ == "__main__":
    main()
