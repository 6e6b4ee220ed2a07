"""What a runtime's state file keeps of its processes' environments: sealed (Fernet), never in
clear. A service's environment holds the console's secret variables and the project configs its
`((KEY))` placeholders name; the supervisor needs it again after a restart (a replica restarted by
the process that took over), so it is kept, encrypted with the console's key.

The console registers its key at start (apps/clusters/apps.py: `use_key`, the key of
apps/clusters/crypto.py, so rotation there applies here). Without the console (the scheduler used
on its own, tests), a key of the root's own is made: `<root>/state.key`, mode 0600."""

from __future__ import annotations

import functools
import hashlib
import hmac
import json
import logging
import os
import threading
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

log = logging.getLogger(__name__)

SEALED = "sealed"  # {"sealed": "<token>"} stands where the plain dict was
FIELDS = ("env", "mask")  # of a unit; a cron entry's "envs"
KEY_FILE = "state.key"

_console_keys: Callable[[], list[bytes]] | None = None
_lock = threading.Lock()
_cache: OrderedDict[tuple[str, str], str] = OrderedDict()  # (key id, plain JSON) -> token: saves are frequent
CACHE_SIZE = 512


def use_key(keys: Callable[[], list[bytes]] | None) -> None:
    """Where the console's Fernet keys come from (the first encrypts, all decrypt): asked when a
    state is sealed or opened, so a process that never does (`manage.py migrate`) makes no key."""
    global _console_keys
    with _lock:
        _console_keys = keys
        _asked.clear()
        _cache.clear()


def _root_key(root: Path) -> bytes:
    path = Path(root) / KEY_FILE
    try:
        return path.read_bytes().strip()
    except FileNotFoundError:
        key = Fernet.generate_key()
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            return path.read_bytes().strip()
        with os.fdopen(fd, "wb") as fh:
            fh.write(key)
        return key


_asked: list[bytes] = []  # the console's keys, once asked (they change only with a restart)


def _fernet(root: Path) -> tuple[str, MultiFernet]:
    if not _asked and _console_keys is not None:
        _asked[:] = _console_keys()
    return _made(tuple(_asked or [_root_key(root)]))


@functools.lru_cache(maxsize=8)
def _made(keys: tuple[bytes, ...]) -> tuple[str, MultiFernet]:
    return hashlib.sha256(keys[0]).hexdigest()[:16], MultiFernet([Fernet(k) for k in keys])


def _seal(root: Path, value) -> dict:
    plain = json.dumps(value, sort_keys=True)
    kid, fernet = _fernet(root)
    with _lock:
        token = _cache.get((kid, plain))
        if token is not None:
            _cache.move_to_end((kid, plain))
    if token is None:
        token = fernet.encrypt(plain.encode()).decode()
        with _lock:
            _cache[(kid, plain)] = token
            while len(_cache) > CACHE_SIZE:
                _cache.popitem(last=False)
    return {SEALED: token}


def _open(root: Path, value, where: str):
    if not (isinstance(value, dict) and set(value) == {SEALED}):
        return value  # written before sealing existed
    try:
        return json.loads(_fernet(root)[1].decrypt(value[SEALED].encode()))
    except (InvalidToken, ValueError) as exc:
        log.warning("%s: the sealed environment cannot be read with this console's key (%s): kept empty",
                    where, type(exc).__name__)
        return {} if where.endswith("env") or where.endswith("envs") else []


def seal_state(root: Path, rt: dict) -> dict:
    """A copy of a runtime's state with every environment (and mask) sealed."""
    out = dict(rt)
    out["units"] = {name: _sealed_fields(root, unit, FIELDS) for name, unit in (rt.get("units") or {}).items()}
    if "cron" in rt:
        out["cron"] = {name: _sealed_fields(root, entry, ("envs",)) for name, entry in (rt.get("cron") or {}).items()}
    return out


def open_state(root: Path, rt: dict | None) -> dict | None:
    """The runtime's state as seal_state was given it."""
    if not rt:
        return rt
    for name, unit in (rt.get("units") or {}).items():
        for field in FIELDS:
            if field in unit:
                unit[field] = _open(root, unit[field], f"unit {name} {field}")
    for name, entry in (rt.get("cron") or {}).items():
        if "envs" in entry:
            entry["envs"] = _open(root, entry["envs"], f"cron {name} envs")
    return rt


def seal_value(root: Path, value) -> dict:
    """`value` (JSON) sealed with the console's key (or `root`'s own), as a state's environments are."""
    return _seal(root, value)


def open_value(root: Path, value, where: str):
    """What seal_value sealed (a value written before sealing is returned as it is); `where` names
    it in the warning when the key cannot open it (then an environment is kept empty)."""
    return _open(root, value, where)


def keyed_digest(root: Path, value) -> str:
    """An HMAC of `value` (JSON) with the console's key (or `root`'s own): it changes when `value`
    does and, unlike a plain hash, cannot be used to guess a secret in it back."""
    if not _asked and _console_keys is not None:
        _asked[:] = _console_keys()
    key = (_asked or [_root_key(root)])[0]
    return hmac.new(key, json.dumps(value, sort_keys=True).encode(), hashlib.sha256).hexdigest()


def _sealed_fields(root: Path, item: dict, fields: tuple[str, ...]) -> dict:
    if not any(f in item for f in fields):
        return item
    return {**item, **{f: _seal(root, item[f]) for f in fields if f in item}}
