"""Encryption at rest of secret project configs, and masking of their values in logs."""

from __future__ import annotations

from collections.abc import Iterable

from agent import masking

MASK = masking.MASK


def encrypt(plain: str) -> str:
    # The clusters app owns the console's Fernet key (DICE_ENCRYPTION_KEY, or a key file in DATA_DIR).
    from apps.clusters import crypto

    return crypto.encrypt(plain)


def decrypt(token: str) -> str:
    from apps.clusters import crypto

    return crypto.decrypt(token)


class Masker(masking.Masker):
    """Replaces every secret value in a text with ******, and its encoded forms (agent/masking.py:
    the same code the step agent masks its lines with); longest first, so one secret containing
    another is masked whole. `line(text, stream)` also masks a value split across two lines."""

    def __init__(self, secrets: Iterable[str]):
        super().__init__(secrets)

    def value(self, data):
        """Mask every string inside JSON-like data."""
        if isinstance(data, str):
            return self(data)
        if isinstance(data, dict):
            return {k: self.value(v) for k, v in data.items()}
        if isinstance(data, list | tuple):
            return [self.value(v) for v in data]
        return data
