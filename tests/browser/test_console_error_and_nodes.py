"""The last of issue 22's "Done when" in the browser, at a phone's and a desktop's width: the 500
page keeps the navigation (the fault is injected: no page of the console fails on demand), and
staff set a node's dice/ labels on the local cluster's page (its node is this machine, recorded
by a sync), which the scheduler then reads; and what runs on `local` is counted on the cluster's
page and in the resource report."""

from __future__ import annotations

import pytest
from django.urls import reverse

from tests.browser.test_console_pages import OVERFLOW, _sign_in
from tests.test_runtime_local import local_cluster, shop  # noqa: F401 (fixtures)

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
WIDTHS = [390, 1440]


def _fits(page) -> None:
    fit = page.evaluate(OVERFLOW)
    assert fit["scrollWidth"] <= fit["width"] and not fit["wide"], (page.url, fit)


@pytest.mark.parametrize("width", WIDTHS)
def test_a_server_error_shows_the_500_page_with_the_navigation(live_server, page, tenant_a, monkeypatch, width):
    from apps.projects import views

    def broken(self, request, *args, **kwargs):
        raise RuntimeError("injected fault")

    monkeypatch.setattr(views.TokensView, "get", broken)
    page.set_viewport_size({"width": width, "height": 900})
    _sign_in(page, live_server, tenant_a.owner.username, "pw-a")
    response = page.goto(live_server.url + reverse("projects:tokens"))
    assert response.status == 500
    assert "Something went wrong (500)" in page.inner_text("main")
    assert "injected fault" not in page.content()  # the traceback stays in the log
    # the navigation is there (folded behind Menu on a phone) and leads on
    if width < 1100:
        page.click("button:has-text('Menu')")
    link = page.locator("#main-nav a:has-text('Projects')")
    assert link.is_visible()
    _fits(page)
    with page.expect_navigation() as went:
        link.click()
    assert went.value.status == 200 and "/tokens/" not in page.url


@pytest.mark.parametrize("width", WIDTHS)
def test_staff_label_the_local_node_on_its_cluster_page(live_server, page, width):
    from django.contrib.auth import get_user_model

    from apps.clusters import services
    from apps.clusters.models import Cluster
    from apps.clusters.sync import sync_cluster

    local = Cluster.local()
    sync_cluster(local)
    node = local.nodes.get()
    get_user_model().objects.create_superuser("root-nodes", password="pw-root")
    page.set_viewport_size({"width": width, "height": 900})
    _sign_in(page, live_server, "root-nodes", "pw-root")
    page.goto(live_server.url + local.get_absolute_url())
    card = page.locator(f"#node-{node.name}")
    card.locator("input[value='dice/job']").check()
    card.locator("input[name$=locations]").fill("edge")
    with page.expect_navigation():
        card.locator("button:has-text('Save dice/ labels')").click()
    node.refresh_from_db()
    assert node.dice_labels == ["dice/job", "dice/location-edge"]
    assert services.node_selector_for(local, "DEV", "job") == {"dice/job": "true"}
    card = page.locator(f"#node-{node.name}")
    assert card.locator("input[value='dice/job']").is_checked()
    assert card.locator("input[name$=locations]").input_value() == "edge"
    _fits(page)

    # a bad location is refused with the reason, and nothing changes
    card.locator("input[name$=locations]").fill("bad!name")
    with page.expect_navigation():
        card.locator("button:has-text('Save dice/ labels')").click()
    node.refresh_from_db()
    assert node.dice_labels == ["dice/job", "dice/location-edge"]
    assert "bad!name" in page.inner_text("main")


def test_the_cluster_page_and_resource_report_count_what_runs_on_local(live_server, page, local_cluster,  # noqa: F811
                                                                       shop):  # noqa: F811
    """A runtime of two replicas deployed on `local` (real processes) shows on the local cluster's
    page (pods, CPU requested, the runtimes list) and in the project's resource report, after the
    cluster's sync, at a phone's width."""
    from django.contrib.auth import get_user_model

    from apps.clusters.models import Cluster
    from apps.clusters.sync import sync_cluster

    spec = ('version: "2.0"\nservices:\n  app:\n    cmd: sleep 120\n    resources: {cpu: 0.25, mem: 64}\n'
            "    deployments: {replicas: 2}\n")
    r = shop["api"].post("/api/deployments/", {"application": shop["app"].pk, "workspace": "DEV",
                                                "runtime": "main", "spec_text": spec}, format="json")
    assert r.status_code == 201 and r.json()["status"] == "healthy", r.content
    sync_cluster(Cluster.local())
    user = get_user_model().objects.get(username="erin")
    user.set_password("pw-erin")
    user.is_staff = user.is_superuser = True  # the local cluster's page shows its nodes to staff
    user.save()
    page.set_viewport_size({"width": 390, "height": 900})
    _sign_in(page, live_server, "erin", "pw-erin")
    page.goto(live_server.url + reverse("clusters:cluster", args=["local"]))
    node = page.locator("article[id^=node-]").first.inner_text()
    assert "2 pods" in node and "CPU requested 0.50" in node, node
    assert "acme/shop/guestbook" in page.inner_text("#cluster-runtimes")
    _fits(page)
    page.goto(live_server.url + reverse("clusters:resources") + f"?project={shop['app'].project_id}")
    row = page.locator("tr:has-text('DEV')").first.inner_text()
    assert "0.5" in row and "128" in row, row
    _fits(page)
