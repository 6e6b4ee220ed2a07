"""Branch runtimes expire: a runtime a push run deployed for its branch goes when its last deploy is
older than the project's branch_runtime_days (unset: never), except long-lived branches
(branch_runtime_keep); the teardown is in the audit log. Runtimes deployed by hand stay."""

from __future__ import annotations

from datetime import timedelta

import pytest

pytestmark = pytest.mark.django_db(transaction=True)

SPEC = 'version: "2.0"\nservices:\n  web:\n    cmd: sleep 60\n    resources: {cpu: 0.1, mem: 32}\n'


def _deployed(tenant, runtime: str, *, branch: str | None, days_ago: float, trigger: str = "push"):
    """A runtime whose last deployment is `days_ago` old, its release made by a `trigger` run of
    `branch` (None: deployed by hand)."""
    from django.utils import timezone

    from apps.deploy import deployments
    from apps.deploy.models import Deployment
    from apps.deploy.services import create_release
    from apps.pipelines.models import PipelineRun

    run_id = None
    if branch is not None:
        run_id = PipelineRun.objects.create(application=tenant.app, workspace="DEV", trigger=trigger, source="",
                                            trigger_payload={"branch": branch}, created_by=tenant.owner).pk
    release = create_release(tenant.owner, tenant.app, spec_text=SPEC, pipeline_run_id=run_id)
    deployment = deployments.deploy(tenant.owner, tenant.app, "DEV", release=release, runtime_name=runtime)
    Deployment.objects.filter(pk=deployment.pk).update(created=timezone.now() - timedelta(days=days_ago))
    return deployment.runtime


def test_branch_runtimes_expire_after_the_project_setting_and_the_teardown_is_audited(tenant_a, tmp_path, settings):
    from apps.deploy.models import Runtime
    from apps.pipelines import branch_runtimes, services
    from apps.projects.models import AuditEvent

    settings.DICE_DEPLOY_FILES = str(tmp_path / "files")
    settings.DICE_LOCAL_ROOT = str(tmp_path / "local")
    _deployed(tenant_a, "feature-old", branch="feature/old", days_ago=5)
    _deployed(tenant_a, "feature-new", branch="feature/new", days_ago=1)
    _deployed(tenant_a, "main", branch="main", days_ago=30)  # long-lived: kept
    _deployed(tenant_a, "by-hand", branch=None, days_ago=30)  # no push run: not a branch runtime
    _deployed(tenant_a, "named", branch="feature/x", days_ago=30)  # the pipeline named its runtime
    _deployed(tenant_a, "topic", branch="topic", days_ago=30, trigger="manual")

    assert branch_runtimes.expire() == []  # unset: branch runtimes stay
    services.set_config(tenant_a.owner, tenant_a.project, key="branch_runtime_days", value="3")
    assert branch_runtimes.expiry_days(tenant_a.project.pk) == 3
    notes = branch_runtimes.expire()
    assert notes == [f"branch runtime {tenant_a.app}:DEV/feature-old removed (branch feature/old, no deploy for 3 days)"]
    assert sorted(Runtime.objects.values_list("name", flat=True)) == ["by-hand", "feature-new", "main", "named",
                                                                      "topic"]
    event = AuditEvent.objects.get(action="branch_runtime_teardown")
    assert event.before["branch"] == "feature/old" and event.application_id == tenant_a.app.pk
    assert event.before["reason"] == "expired: no deploy for 3 days"

    # main too, once the project keeps only release branches.
    services.set_config(tenant_a.owner, tenant_a.project, key="branch_runtime_keep", value="release/*")
    assert branch_runtimes.expire() == [f"branch runtime {tenant_a.app}:DEV/main removed (branch main, "
                                        "no deploy for 3 days)"]


def test_a_setting_that_is_not_a_positive_number_means_no_expiry(tenant_a):
    from apps.pipelines import branch_runtimes, services

    for value in ("0", "-2", "soon"):
        services.set_config(tenant_a.owner, tenant_a.project, key="branch_runtime_days", value=value)
        assert branch_runtimes.expiry_days(tenant_a.project.pk) is None
