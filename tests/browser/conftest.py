"""Headless Chromium (Debian's package) driven by Playwright against the live test server."""

import os

import pytest

from tests.conftest import chromium_path

# Playwright's sync API runs an event loop in this thread; the ORM calls the tests make
# around it are still synchronous and safe.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

CHROMIUM_ARGS = [
    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-dev-shm-usage",
]


@pytest.fixture(scope="session")
def browser(tmp_path_factory):
    path = chromium_path()
    if path is None:
        pytest.skip("browser tier skipped: install Debian's chromium (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=path, args=CHROMIUM_ARGS, headless=True)
        yield browser
        browser.close()


@pytest.fixture
def page(browser, tmp_path):
    # Playwright evaluates wait_for_function's predicate with eval(), which the console's
    # Content-Security-Policy forbids; test_csp.py checks the pages with the policy enforced.
    context = browser.new_context(viewport={"width": 1280, "height": 900}, bypass_csp=True)
    page = context.new_page()
    page.set_default_timeout(15000)
    yield page
    page.screenshot(path=str(tmp_path / "last.png"))
    context.close()


@pytest.fixture
def strict_page(browser, tmp_path):
    """A page whose context enforces the Content-Security-Policy as a user's browser does."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(15000)
    yield page
    page.screenshot(path=str(tmp_path / "last.png"))
    context.close()
