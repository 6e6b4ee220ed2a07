"""Headless Chromium (Debian's package) driven by Playwright against the live test server: the
`browser`, `page` and `strict_page` fixtures live in tests/conftest.py, so that another tier's
browser test (tests/k8s_real) shares the one session browser (two sync Playwright drivers in one
thread refuse to run)."""

import os

from tests.conftest import CHROMIUM_ARGS  # noqa: F401

# Playwright's sync API runs an event loop in this thread; the ORM calls the tests make around
# it are still synchronous and safe (set when this tier is collected, as it always was).
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
