"""Unpacking tar archives without trusting them, on any Python 3.11.

tarfile's extraction filters (`filter="data"`, tarfile.data_filter) arrived in 3.11.4 and
3.12. Debian bookworm's python3 (3.11.2, what a python:3.11-slim made from Debian has) lacks
them, and there extractall() would follow whatever the archive says. `extract_all` uses the
standard filter when tarfile has it, else `data_filter` below, which applies the same rules:
no absolute names or names leading outside the destination, no links pointing outside it or
absolutely, no device or FIFO entries, no setuid/setgid/sticky or group/other write bits, and
the owner of the unpacking process instead of the archive's."""

from __future__ import annotations

import copy
import os
import tarfile

__all__ = ["FilterError", "data_filter", "extract_all"]

FilterError = getattr(tarfile, "FilterError", None)
if FilterError is None:

    class FilterError(tarfile.TarError):  # type: ignore[no-redef]
        """An entry refused by data_filter."""


def _inside(dest: str, path: str) -> bool:
    return os.path.commonpath([dest, path]) == dest


def _fallback_filter(member: tarfile.TarInfo, dest_path: str) -> tarfile.TarInfo:
    dest = os.path.realpath(dest_path)
    name = member.name.lstrip("/" + os.sep)
    if not name or os.path.isabs(name):
        raise FilterError(f"{member.name!r} is an absolute path")
    target = os.path.realpath(os.path.join(dest, name))
    if not _inside(dest, target):
        raise FilterError(f"{member.name!r} would be extracted to {target!r}, which is outside the destination")
    if not (member.isreg() or member.isdir() or member.issym() or member.islnk()):
        raise FilterError(f"{member.name!r} is a special file")
    if member.issym() or member.islnk():
        if os.path.isabs(member.linkname):
            raise FilterError(f"{member.name!r} is a link to an absolute path")
        base = os.path.join(dest, os.path.dirname(name)) if member.issym() else dest
        if not _inside(dest, os.path.realpath(os.path.join(base, member.linkname))):
            raise FilterError(f"{member.name!r} would link to a path outside the destination")
    mode = member.mode
    if member.isreg() or member.islnk():
        mode &= 0o755
        if not mode & 0o100:
            mode &= ~0o111
        mode |= 0o600
    elif member.isdir():
        mode = (mode & 0o755) | 0o700
    safe = copy.copy(member)
    safe.name, safe.mode = name, mode
    # Ours, not the archive's: numeric ids of this process, names that resolve to nothing.
    safe.uid, safe.gid, safe.uname, safe.gname = os.getuid(), os.getgid(), "", ""
    return safe


def data_filter(member: tarfile.TarInfo, dest_path: str) -> tarfile.TarInfo:
    """tarfile.data_filter where it exists, else the same rules implemented here."""
    standard = getattr(tarfile, "data_filter", None)
    if standard is not None:
        return standard(member, dest_path)
    return _fallback_filter(member, dest_path)


def extract_all(tar: tarfile.TarFile, dest: str | os.PathLike, member_filter=None) -> None:
    """tar.extractall(dest, filter=member_filter or data_filter), on Pythons with and without
    extraction filters; member_filter returns a member, or None to skip it."""
    member_filter = member_filter or data_filter
    if getattr(tarfile, "data_filter", None) is not None:
        tar.extractall(dest, filter=member_filter)
        return
    dest = os.fspath(dest)

    def members():
        for member in tar:  # works for streams too: each entry is extracted before the next is read
            safe = member_filter(member, dest)
            if safe is not None:
                yield safe

    tar.extractall(dest, members=members())
