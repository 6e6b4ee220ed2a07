"""Test tiers and shared fixtures: a tier whose server or tool is missing is skipped with one line
naming what to install, except in CI (CI=true), where a missing tier fails."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "tests" / "data"  # test data written for this project (tests/data/README.md)
# The design folder beside the repository on the team's machines (not part of a clone; a
# worktree elsewhere names it with DICE_SHARED_DIR): the Erda corpus and the operators' CRDs,
# read in place by the `conformance` tier only.
SHARED = Path(os.environ.get("DICE_SHARED_DIR") or ROOT.parent / "shared")
CONFORMANCE = SHARED / "conformance" / "erda"
SHARED_CRDS = SHARED / "crds"

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def chromium_path() -> str | None:
    explicit = os.environ.get("DICE_CHROMIUM")
    if explicit:
        return explicit if Path(explicit).exists() else None
    return shutil.which("chromium") or shutil.which("chromium-browser")


def _missing_for(marker: str) -> str | None:
    """Why a tier cannot run here, or None when it can."""
    if marker == "postgres":
        if not os.environ.get("DATABASE_URL", "").startswith(("postgres://", "postgresql://")):
            return ("postgres tier skipped: set DATABASE_URL to a PostgreSQL server "
                    "(apt-get install postgresql; see README)")
    elif marker == "redis":
        if not os.environ.get("REDIS_URL"):
            return "redis tier skipped: set REDIS_URL to a Redis server (apt-get install redis-server; see README)"
    elif marker == "conformance":
        if not (CONFORMANCE.is_dir() and SHARED_CRDS.is_dir()):
            return ("conformance tier skipped: needs the Erda corpus and operator CRDs in ../shared "
                    "(conformance/erda, crds) beside the repository, or DICE_SHARED_DIR naming that folder")
    elif marker == "flink":
        from scheduler.engines import engine_venv, missing_hint

        if engine_venv("flink") is None or shutil.which("java") is None:
            return f"flink tier skipped: {missing_hint('flink')}"
    elif marker == "browser":
        if chromium_path() is None:
            return "browser tier skipped: install Debian's chromium (apt-get install chromium)"
        try:
            import playwright  # noqa: F401
        except ImportError:
            return "browser tier skipped: pip install playwright (make install does)"
    return None


def _missing_binary(binary: str, package: str) -> str | None:
    import glob

    if shutil.which(binary) or glob.glob(f"/usr/lib/postgresql/*/bin/{binary}"):
        return None
    return f"needs {binary}: skipped (apt-get install {package})"


@pytest.fixture(scope="session", autouse=True)
def _quick_password_hashing():
    """Passwords hash with few PBKDF2 iterations in the test process (tests/hashers.py says why)."""
    from tests import hashers

    hashers.enable()


def pytest_report_header(config):
    missing = _missing_for("conformance")
    return [missing] if missing else []


@pytest.hookimpl(tryfirst=True)  # before a skip mark (an empty parameter set of a missing corpus)
def pytest_runtest_setup(item):
    for mark in item.iter_markers("needs_binary"):
        reason = _missing_binary(*mark.args)
        if reason:
            if IN_CI:
                pytest.fail(f"CI=true and {reason}", pytrace=False)
            pytest.skip(reason)
    for marker in ("postgres", "redis", "browser", "conformance", "flink"):
        if item.get_closest_marker(marker) is None:
            continue
        reason = _missing_for(marker)
        if reason:
            if IN_CI:
                pytest.fail(f"CI=true and {reason}", pytrace=False)
            pytest.skip(reason)


# ---- tenancy fixtures ------------------------------------------------------------------


def make_org(owner, slug: str, name: str = ""):
    """An organization owned by `owner`, as staff would create it for them (only staff create
    organizations by default: DICE_ORG_CREATION=staff)."""
    from django.contrib.auth import get_user_model

    from apps.projects import services

    staff, _ = get_user_model().objects.get_or_create(
        username="test-staff", defaults={"is_superuser": True, "is_staff": True})
    return services.create_organization(staff, slug=slug, name=name, owner=owner)


class Tenant:
    """An organization with an owner, a project and an application, for isolation tests."""

    def __init__(self, name: str):
        from django.contrib.auth import get_user_model

        from apps.projects import services

        User = get_user_model()
        self.owner = User.objects.create_user(f"{name}-owner", password="pw-" + name)
        self.org = make_org(self.owner, f"{name}-org", f"{name} org")
        self.project = services.create_project(self.owner, self.org, slug=f"{name}-proj")
        self.app = services.create_application(self.owner, self.project, slug=f"{name}-app", repo_url="https://git.example/a")
        _, self.token = services.create_token(self.owner, name="tests")

    def api(self):
        from rest_framework.test import APIClient

        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {self.token}")
        return client

    def browser_client(self):
        from django.test import Client

        client = Client()
        client.force_login(self.owner)
        return client

    def add_user(self, username: str, role: str, target=None):
        from django.contrib.auth import get_user_model

        from apps.projects import services

        user = get_user_model().objects.create_user(username, password="pw")
        services.add_member(self.owner, target or self.org, username=username, role=role)
        return user


@pytest.fixture
def tenant_a(db):
    return Tenant("a")


@pytest.fixture
def tenant_b(db):
    return Tenant("b")


class CliRunner:
    """`dice ARGS...` run in-process against the live console; returns (exit code, stdout, stderr)."""

    def __init__(self, capsys, *, server: str, token: str, dir: Path) -> None:
        self.capsys, self.server, self.token, self.dir = capsys, server, token, dir

    def __call__(self, *argv: str) -> tuple[int, str, str]:
        from dice_cli.main import main

        code = main(list(argv))
        out, err = self.capsys.readouterr()
        return code, out, err


@pytest.fixture
def dice_cli(live_server, tmp_path, monkeypatch, capsys):
    """A factory: dice_cli(user) gives the user a token and a CliRunner using it (through
    DICE_SERVER/DICE_TOKEN, or with logged_in=False only a fresh config, for `dice login`)."""

    def make(user, *, logged_in: bool = True) -> CliRunner:
        from apps.projects import services

        _, key = services.create_token(user, name="cli")
        monkeypatch.setenv("DICE_CONFIG", str(tmp_path / "config.json"))
        if logged_in:
            monkeypatch.setenv("DICE_SERVER", live_server.url)
            monkeypatch.setenv("DICE_TOKEN", key)
        else:
            monkeypatch.delenv("DICE_SERVER", raising=False)
            monkeypatch.delenv("DICE_TOKEN", raising=False)
        return CliRunner(capsys, server=live_server.url, token=key, dir=tmp_path)

    return make


def make_user_with_app(username: str, org: str = "acme", project: str = "shop", app: str = "web"):
    """A user owning ORG/PROJECT/APP (the CLI tests' usual tenant)."""
    from django.contrib.auth import get_user_model

    from apps.projects import services

    user = get_user_model().objects.create_user(username)
    organization = make_org(user, org)
    services.create_application(user, services.create_project(user, organization, slug=project), slug=app)
    return user


@pytest.fixture
def unsandboxed(monkeypatch):
    """The local cluster without its sandbox, for tests whose steps write files the test reads on
    the host (a trace, a counter) or clone a repository from a local path: a sandboxed step sees
    neither. What the sandbox blocks is tested in tests/security/."""
    from scheduler.local import sandbox

    off = sandbox.Isolation(False, "switched off by the test: its steps use host paths")
    monkeypatch.setattr(sandbox, "isolation", lambda: off)
    from tests.pipelines_helpers import close_local_executors

    close_local_executors()
    yield
    close_local_executors()


# ---- the browser tier: one headless Chromium per session --------------------------------

CHROMIUM_ARGS = [
    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-dev-shm-usage",
]


@pytest.fixture(scope="session")
def browser(tmp_path_factory):
    # Playwright's sync API runs an event loop in this thread; the ORM calls the tests make
    # around it are still synchronous and safe.
    os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
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


@pytest.fixture(params=["go", "python"])
def step_runner(request, monkeypatch) -> str:
    """Runs the test once with each local step agent (scheduler/local/steps.py): the compiled
    runner (agent/bin/dice-step) and the Python agent. Without the runner built the "go" run is
    skipped, except in CI with Go installed, where `make install` must have built it."""
    from scheduler.local.steps import RUNNER

    if request.param == "go" and not os.access(RUNNER, os.X_OK):
        if os.environ.get("CI") and (shutil.which("go") or os.path.exists("/usr/local/go/bin/go")):
            pytest.fail(f"{RUNNER} is not built although Go is installed: `make install` builds it")
        pytest.skip(f"{RUNNER} is not built (`make install` with Go installed)")
    monkeypatch.setenv("DICE_STEP_RUNNER", request.param)
    return request.param
