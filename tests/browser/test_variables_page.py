"""The environment variables page of an application, at a phone's and a desktop's width: reached
from the application and the runtime, one workspace at a time; a bad name is stopped in the
browser and again by the server (with the reason, nothing saved); a secret is write-only; a
delete asks first; the page fits the screen."""

from __future__ import annotations

import pytest
from django.urls import reverse

from tests.browser.test_console_pages import OVERFLOW, _sign_in, console  # noqa: F401 (fixture)
from tests.test_deployments_support import fake, fake_cluster, fast_rollouts  # noqa: F401 (fixtures)

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.mark.parametrize("width", [390, 1440])
def test_variables_page_sets_guards_and_deletes(live_server, page, console, width):  # noqa: F811
    from apps.deploy.models import EnvironmentVariable

    page.set_viewport_size({"width": width, "height": 900})
    _sign_in(page, live_server, console.owner.username, "pw-a")
    args = [console.org.slug, console.project.slug, console.app.slug]
    page.goto(live_server.url + console.runtime.get_absolute_url())
    page.click("main a:has-text('Variables')")
    page.wait_for_url(live_server.url + reverse("deploy:variables", args=[*args, "DEV"]))
    assert page.locator("nav.tabs a[aria-current=page]").inner_text() == "DEV"
    assert console.runtime.name in page.inner_text("#variable-runtimes")

    # A reserved name: the browser refuses to send it...
    page.fill("#variable-form input[name=name]", "DICE_WORKSPACE")
    page.fill("#variable-form input[name=value]", "x")
    page.click("#variable-form button")
    assert page.evaluate("document.querySelector('#variable-form input[name=name]').validity.patternMismatch")
    assert not EnvironmentVariable.objects.exists()
    # ... and the server too, naming why, when the browser's check is bypassed.
    page.evaluate("document.querySelector('#variable-form').noValidate = true")
    page.click("#variable-form button")
    assert "reserved" in page.inner_text("[role=alert]") and "Nothing was changed" in page.inner_text("[role=alert]")
    assert not EnvironmentVariable.objects.exists()

    # A plain variable shows; a secret one is write-only and encrypted at rest.
    page.fill("#variable-form input[name=name]", "GREETING")
    page.fill("#variable-form input[name=value]", "hello")
    page.click("#variable-form button")
    page.wait_for_selector(".flash:has-text('Saved GREETING in DEV')")
    page.fill("#variable-form input[name=name]", "API_KEY")
    page.fill("#variable-form input[name=value]", "k3y-never-shown")
    page.check("#variable-form input[name=secret]")
    page.click("#variable-form button")
    page.wait_for_selector(".flash:has-text('Saved secret API_KEY')")
    assert "hello" in page.inner_text("#variable-GREETING")
    assert "write-only" in page.inner_text("#variable-API_KEY") and "k3y-never-shown" not in page.content()
    assert EnvironmentVariable.objects.get(name="API_KEY").value != "k3y-never-shown"

    fit = page.evaluate(OVERFLOW)
    assert fit["scrollWidth"] <= fit["width"] and not fit["wide"], fit

    # Another workspace has its own (none yet).
    page.click("nav.tabs a:has-text('PROD')")
    assert "No variables in PROD yet" in page.inner_text("#variables")

    # Deleting asks first: dismissed, nothing changes; accepted, the variable is gone.
    page.click("nav.tabs a:has-text('DEV')")
    questions = []
    page.once("dialog", lambda d: (questions.append(d.message), d.dismiss()))
    page.click("#variable-GREETING button:has-text('Delete')")
    page.wait_for_timeout(300)
    assert questions and questions[0].startswith("Delete GREETING from DEV?")
    assert EnvironmentVariable.objects.filter(name="GREETING").exists()
    page.once("dialog", lambda d: d.accept())
    with page.expect_navigation():
        page.click("#variable-GREETING button:has-text('Delete')")
    assert not EnvironmentVariable.objects.filter(name="GREETING").exists()
    assert page.locator("#variable-GREETING").count() == 0
