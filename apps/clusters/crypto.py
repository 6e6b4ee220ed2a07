"""Encryption at rest for cluster credentials (Fernet, key from DICE_ENCRYPTION_KEY or DATA_DIR)."""

from __future__ import annotations

import base64
import hashlib
import os
import threading
from functools import lru_cache
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings

KEY_FILE = "encryption_key"


class DecryptionError(Exception):
    """The stored ciphertext cannot be read with the configured key(s)."""


def _as_fernet_key(text: str) -> bytes:
    """A Fernet key as given, or one derived from any passphrase (SHA-256)."""
    raw = text.strip().encode()
    try:
        if len(base64.urlsafe_b64decode(raw)) == 32:
            return raw
    except (ValueError, TypeError):
        pass
    return base64.urlsafe_b64encode(hashlib.sha256(raw).digest())


def _standalone_key() -> str:
    path = Path(settings.DATA_DIR) / KEY_FILE
    if path.exists():
        return path.read_text().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    key = Fernet.generate_key().decode()
    # Written whole, then linked into place: processes starting together (web, workers) all end
    # up with the one key that was linked first, and none reads a half-written file.
    tmp = path.with_name(f".{KEY_FILE}.{os.getpid()}.{threading.get_ident()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(key)
    try:
        os.link(tmp, path)
    except FileExistsError:
        key = path.read_text().strip()
    finally:
        os.unlink(tmp)
    return key


@lru_cache(maxsize=4)
def _fernet(spec: str) -> MultiFernet:
    # Several comma-separated keys: the first encrypts, all decrypt (key rotation).
    return MultiFernet([Fernet(_as_fernet_key(k)) for k in spec.split(",") if k.strip()])


def _keys() -> str:
    return os.environ.get("DICE_ENCRYPTION_KEY") or getattr(settings, "DICE_ENCRYPTION_KEY", "") or _standalone_key()


def fernet_keys() -> list[bytes]:
    """The console's Fernet keys, the encrypting one first (the local cluster seals its state
    files' environments with them: scheduler/local/sealed.py)."""
    return [_as_fernet_key(k) for k in _keys().split(",") if k.strip()]


def encrypt(plain: str) -> str:
    return _fernet(_keys()).encrypt(plain.encode()).decode()


def decrypt(token: str) -> str:
    if not token:
        return ""
    try:
        return _fernet(_keys()).decrypt(token.encode()).decode()
    except InvalidToken:
        raise DecryptionError("stored credentials cannot be decrypted: was DICE_ENCRYPTION_KEY changed?") from None


def fingerprint(plain: str) -> str:
    """A short, stable digest that identifies credentials without revealing them."""
    return "sha256:" + hashlib.sha256(plain.encode()).hexdigest()[:16]
