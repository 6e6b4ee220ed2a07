"""Which jobs' logs grew: one inotify descriptor per reader, a watch on each job's folder.

A reader of many running steps' logs (the step monitor) waits on `fileno()` instead of polling:
the kernel wakes it when a shim writes a line, a step that prints nothing costs nothing, and one
read tells every job that wrote since the last one. The folder is watched rather than the file
because the shim rotates its log by renaming (job.log -> job.log.1) and opens a new job.log; events
of other files in the folder are dropped. When the kernel's queue overflowed, every watched job
counts as changed (the reader then reads each one: nothing is missed, it only costs a pass).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import os
import struct
import threading
from collections.abc import Hashable
from pathlib import Path

IN_MODIFY = 0x00000002
IN_MOVED_TO = 0x00000080
IN_CREATE = 0x00000100
IN_Q_OVERFLOW = 0x00004000
IN_IGNORED = 0x00008000
IN_ONLYDIR = 0x01000000
IN_NONBLOCK = os.O_NONBLOCK
IN_CLOEXEC = os.O_CLOEXEC
MASK = IN_MODIFY | IN_CREATE | IN_MOVED_TO | IN_ONLYDIR
EVENT = struct.Struct("iIII")  # wd, mask, cookie, len (the name follows, NUL padded)

_libc = None


def _lib():
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
        _libc.inotify_add_watch.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_uint32]
        _libc.inotify_rm_watch.argtypes = [ctypes.c_int, ctypes.c_int]
    return _libc


class LogWatch:
    """watch(key, folder, prefix): report `key` when a file of the folder whose name starts with
    prefix is written, created or renamed into it; changed() -> the keys reported since the last
    call (without blocking); fileno() is readable while there are some. Not thread-safe for more
    than one reader; watch/forget may come from any thread."""

    def __init__(self) -> None:
        fd = _lib().inotify_init1(IN_NONBLOCK | IN_CLOEXEC)
        if fd < 0:
            err = ctypes.get_errno()
            raise OSError(err, f"inotify_init1: {os.strerror(err)}")
        self.fd = fd
        self._lock = threading.Lock()
        self._by_wd: dict[int, tuple[Hashable, bytes]] = {}
        self._by_key: dict[Hashable, int] = {}

    def fileno(self) -> int:
        return self.fd

    def watching(self, key: Hashable) -> bool:
        return key in self._by_key

    def watch(self, key: Hashable, folder: Path, prefix: str) -> bool:
        """Start reporting key; False when the folder does not exist (yet): try again later."""
        with self._lock:
            if key in self._by_key or self.fd < 0:
                return key in self._by_key
            wd = _lib().inotify_add_watch(self.fd, os.fsencode(folder), MASK)
            if wd < 0:
                err = ctypes.get_errno()
                if err in (errno.ENOENT, errno.ENOTDIR, errno.EACCES):
                    return False
                raise OSError(err, f"inotify_add_watch {folder}: {os.strerror(err)}")
            # Two keys on one folder share its watch descriptor: the later replaces the earlier.
            old = self._by_wd.get(wd)
            if old is not None:
                self._by_key.pop(old[0], None)
            self._by_wd[wd] = (key, os.fsencode(prefix))
            self._by_key[key] = wd
            return True

    def forget(self, key: Hashable) -> None:
        with self._lock:
            wd = self._by_key.pop(key, None)
            if wd is None or self.fd < 0:
                return
            self._by_wd.pop(wd, None)
            _lib().inotify_rm_watch(self.fd, wd)  # fails harmlessly when the folder is gone

    def watched_keys(self) -> list[Hashable]:
        with self._lock:
            return list(self._by_key)

    def changed(self) -> set[Hashable]:
        """The keys whose logs changed since the last call (every key after an overflow)."""
        chunks = []
        while True:
            try:
                data = os.read(self.fd, 65536)
            except BlockingIOError:
                break
            except OSError:
                break
            if not data:
                break
            chunks.append(data)
        found: set[Hashable] = set()
        with self._lock:
            for data in chunks:
                at = 0
                while at + EVENT.size <= len(data):
                    wd, mask, _cookie, length = EVENT.unpack_from(data, at)
                    name = data[at + EVENT.size:at + EVENT.size + length].rstrip(b"\0")
                    at += EVENT.size + length
                    if mask & IN_Q_OVERFLOW:
                        return set(self._by_key)
                    if mask & IN_IGNORED:  # the folder was removed: its watch is gone
                        entry = self._by_wd.pop(wd, None)
                        if entry is not None:
                            self._by_key.pop(entry[0], None)
                        continue
                    entry = self._by_wd.get(wd)
                    if entry is not None and name.startswith(entry[1]):
                        found.add(entry[0])
        return found

    def close(self) -> None:
        with self._lock:
            if self.fd >= 0:
                os.close(self.fd)
                self.fd = -1
            self._by_wd.clear()
            self._by_key.clear()


class JobLogWatch:
    """A LogWatch over the jobs of one local executor, keyed by (namespace, name): what
    LocalExecutor.job_log_watch() hands a reader (scheduler.base.job_log_watch)."""

    def __init__(self, job_dir) -> None:
        self._job_dir = job_dir  # (namespace, name) -> the job's folder
        self._watch = LogWatch()

    def fileno(self) -> int:
        return self._watch.fileno()

    def watch(self, name: str, namespace: str = "") -> bool:
        return self._watch.watch((namespace, name), self._job_dir(namespace, name), "job.log")

    def forget(self, name: str, namespace: str = "") -> None:
        self._watch.forget((namespace, name))

    def watched(self) -> list[tuple[str, str]]:
        return [(name, namespace) for namespace, name in self._watch.watched_keys()]

    def changed(self) -> set[tuple[str, str]]:
        """(name, namespace) of the watched jobs whose logs changed since the last call."""
        return {(name, namespace) for namespace, name in self._watch.changed()}

    def close(self) -> None:
        self._watch.close()
