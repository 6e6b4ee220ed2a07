"""Unpacking tar.gz archives of step directories and caches, safely: tarfile's "data" filter, or
the same rules where this Python lacks it (agent.safetar; Debian's 3.11.2) (no absolute paths, no links out of the target, no devices), refused entries skipped and
counted rather than stopping the whole archive, and an optional limit on the bytes unpacked.
Used by the agent's restore and by the console's context store (the same rules on both ends)."""

from __future__ import annotations

import tarfile
from pathlib import Path

from agent import safetar

__all__ = ["TooLarge", "Unpacker", "unpack"]


class TooLarge(Exception):
    """The archive unpacks to more than the limit."""


class Unpacker:
    """A tarfile extraction filter that counts files and bytes and remembers what it skipped;
    with `limit` (bytes, 0 for none) it raises TooLarge once the files it let by exceed it."""

    def __init__(self, limit: int = 0) -> None:
        self.limit = int(limit or 0)
        self.files, self.bytes, self.skipped = 0, 0, []

    def __call__(self, member: tarfile.TarInfo, dest: str) -> tarfile.TarInfo | None:
        try:
            member = safetar.data_filter(member, dest)  # tarfile's own where this Python has it
        except safetar.FilterError as exc:
            self.skipped.append(str(exc))
            return None
        if member.isfile():
            self.files += 1
            self.bytes += member.size
            if self.limit and self.bytes > self.limit:
                raise TooLarge(f"it unpacks to more than {self.limit} bytes")
        return member


def unpack(tar: tarfile.TarFile, target: str | Path, *, limit: int = 0) -> Unpacker:
    """Extract an open archive into target (made if missing) through an Unpacker; returns it."""
    unpacker = Unpacker(limit)
    Path(target).mkdir(parents=True, exist_ok=True)
    safetar.extract_all(tar, target, unpacker)
    return unpacker
