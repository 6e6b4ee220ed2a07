# ruff: noqa: F811
"""End to end: examples/guestbook/pipeline.yml checks out, tests, releases and deploys the
guestbook to DEV on the local cluster."""

from __future__ import annotations

import pytest

from tests.guestbook_helpers import guestbook  # noqa: F401
from tests.pipelines_helpers import engine, retry_locked  # noqa: F401

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.needs_binary("redis-server", "redis-server")]


def test_guestbook_pipeline_deploys_to_dev(unsandboxed, engine, guestbook):
    from apps.deploy.models import Runtime

    run = engine.wait(engine.run(guestbook.tenant, guestbook.source, params={"repo": str(guestbook.repo)}),
                      timeout=180)
    tasks = engine.tasks(run)
    assert run.status == "success", (run.reason, {a: (t.status, t.reason) for a, t in tasks.items()})
    assert tasks["test"].outputs == {"compiled": "api.py,front.py,resp.py"}
    runtime = Runtime.objects.get(pk=int(tasks["deploy"].outputs["runtime_id"]))
    assert runtime.workspace.kind == "DEV" and runtime.application_id == guestbook.app.pk
