"""What the local cluster says of its isolation, and what it does when it has none."""

from __future__ import annotations

import time

import pytest
from django.urls import reverse

from scheduler import registry
from scheduler.base import ExecutorUnavailable, JobSpec
from scheduler.local import LocalExecutor, sandbox


def test_capability_report_says_what_this_machine_gives(tmp_path):
    report = registry.isolation("local")
    expected = "sandbox" if sandbox.isolation().enabled else "none"
    assert report["isolation"] == expected
    executor = LocalExecutor(tmp_path / "local")
    try:
        assert executor.isolation()["isolation"] == expected
        if expected == "sandbox":
            assert "network" in report and "shared" in report["network"]  # says what is not isolated
    finally:
        executor.close()


def test_without_a_sandbox_one_organization_at_a_time(tmp_path):
    off = sandbox.Isolation(False, "switched off by the test")
    executor = LocalExecutor(tmp_path / "local", isolation=off)
    try:
        assert executor.isolation() == {**off.report(), "shared_tenancy": "refused"}
        executor.run_job(JobSpec(name="a", command=["sleep", "30"], namespace="pipelines-1", tenant="org-a"))
        with pytest.raises(ExecutorUnavailable, match="one organization at a time"):
            executor.run_job(JobSpec(name="b", command=["true"], namespace="pipelines-2", tenant="org-b"))
        assert executor.job_status("b", "pipelines-2").state.value == "missing"  # refused: nothing made
        executor.run_job(JobSpec(name="a2", command=["true"], namespace="pipelines-1", tenant="org-a"))
        executor.allow_shared_tenancy = True  # a staff user allowed it on the cluster
        executor.run_job(JobSpec(name="b", command=["true"], namespace="pipelines-2", tenant="org-b"))
        deadline = time.monotonic() + 20
        while not executor.job_status("b", "pipelines-2").state.finished and time.monotonic() < deadline:
            time.sleep(0.05)
        assert executor.job_status("b", "pipelines-2").state.value == "succeeded"
    finally:
        executor.destroy_all()
        executor.close()


def test_first_page_warns_when_tenants_are_not_isolated(tenant_a, monkeypatch):
    client = tenant_a.browser_client()
    page = client.get(reverse("projects:organizations")).content.decode()
    if sandbox.isolation().enabled:
        assert "has no sandbox" not in page
    off = sandbox.Isolation(False, "bubblewrap is not installed (apt-get install bubblewrap)")
    monkeypatch.setattr(sandbox, "isolation", lambda: off)
    page = client.get(reverse("projects:organizations")).content.decode()
    assert "Cluster local has no sandbox on this machine" in page
    assert "apt-get install bubblewrap" in page and "one organization at a time" in page


def test_cluster_page_shows_the_isolation(tenant_a, monkeypatch):
    client = tenant_a.browser_client()
    page = client.get(reverse("clusters:cluster", args=["local"])).content.decode()
    assert 'id="isolation"' in page
    assert ("sandbox" if sandbox.isolation().enabled else "none") in page
    monkeypatch.setattr(sandbox, "isolation", lambda: sandbox.Isolation(False, "switched off by the test"))
    page = client.get(reverse("clusters:cluster", args=["local"])).content.decode()
    assert "isolation: none." in page and "switched off by the test" in page and "refused" in page
