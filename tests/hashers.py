"""Password hashing for the test process: PBKDF2 as production uses it, with few iterations.

Production's PBKDF2 costs ~0.5 s of CPU per hash on this machine (more under load), and the tests
create and sign in hundreds of users: minutes of CI spent hashing. The encoded form names its
iteration count (``pbkdf2_sha256$1000$salt$hash``), so a console started as a separate process with
production's settings (the scale tier, the standalone tests) verifies these hashes unchanged. Tests
about what hashing costs (a sign-in must not hold other requests) put production's list back with
the ``settings`` fixture (``PRODUCTION_HASHERS``)."""

from __future__ import annotations

from django.contrib.auth.hashers import PBKDF2PasswordHasher
from django.test.utils import override_settings

PRODUCTION_HASHERS = None  # set by enable(): the console's own list


class QuickPBKDF2PasswordHasher(PBKDF2PasswordHasher):
    iterations = 1000


def enable() -> None:
    """Hash with QuickPBKDF2 in this process, keeping the console's hashers after it for checks."""
    global PRODUCTION_HASHERS
    from django.conf import settings

    PRODUCTION_HASHERS = list(settings.PASSWORD_HASHERS)
    override_settings(PASSWORD_HASHERS=["tests.hashers.QuickPBKDF2PasswordHasher", *PRODUCTION_HASHERS]).enable()
