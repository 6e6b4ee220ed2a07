"""The API keeps its published contract under a fuzzer: schemathesis generates requests for every
operation in /api/schema/ (valid and invalid ones) against the live test server, and checks that
none is a server error and that every answer's status, content type and body are the ones the
schema declares.

Bounded and reproducible: Hypothesis runs derandomized (the same cases every run), a few examples
per operation and mode. Operations on one object run twice: with generated path parameters (mostly
404s) and on an object seeded for that operation alone, so that PUT, PATCH, DELETE and the actions
(cancel, rerun, scale, stop...) act on real rows without destroying what other operations use.

DICE_CONTRACT_EXAMPLES sets the examples per operation and mode (default 4)."""

from __future__ import annotations

import itertools
import os
import time

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.conftest import Tenant, make_org

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
EXAMPLES = int(os.environ.get("DICE_CONTRACT_EXAMPLES", "4"))

PIPELINE = """\
version: "1.1"
stages:
  - stage:
      - manual-review:
          alias: review
      - echo:
          alias: hello
          params: {msg: hi}
"""

SPEC = """\
version: "2.0"
services:
  web:
    image: registry.example/web:1
    cmd: python3 -m http.server $PORT
    ports: [8080]
    resources: {cpu: 0.1, mem: 64}
"""

_unique = itertools.count(1)


class Seeds:
    """Fresh objects for one operation: path parameters pointing at rows made just for it."""

    def __init__(self, tenant: Tenant):
        self.t = tenant

    def home(self) -> Tenant:
        """The tenant, its project and application made again if a fuzzed DELETE removed them (a
        generated id may well be theirs)."""
        from apps.projects import services
        from apps.projects.models import Application, Organization, Project

        t = self.t
        if not Organization.objects.filter(pk=t.org.pk).exists():
            t.org = make_org(t.owner, slug=self._name("home"))
        if not Project.objects.filter(pk=t.project.pk).exists():
            t.project = services.create_project(t.owner, t.org, slug=self._name("home"))
        if not Application.objects.filter(pk=t.app.pk).exists():
            t.app = services.create_application(t.owner, t.project, slug=self._name("home"))
        return t

    def _name(self, prefix: str) -> str:
        return f"{prefix}{next(_unique)}"

    def project(self):
        from apps.projects import services

        return services.create_project(self.home().owner, self.t.org, slug=self._name("p"))

    def application(self, project=None):
        from apps.projects import services

        return services.create_application(self.t.owner, project or self.project(), slug=self._name("a"))

    def release(self, app=None):
        from apps.deploy.services import create_release

        return create_release(self.t.owner, app or self.home().app, spec_text=SPEC)

    def deployment(self):
        from apps.deploy import deployments

        app = self.application()
        return deployments.deploy(self.t.owner, app, "DEV", release=self.release(app), runtime_name="main")

    def run(self):
        from apps.pipelines import services

        return services.start_run(self.t.owner, self.home().app, source=PIPELINE, workspace="DEV")

    def cluster(self):
        from apps.clusters.models import Cluster

        # Kubernetes at a closed port: a check or sync fails at once (a 400), never hangs.
        return Cluster.objects.create(name=self._name("k"), kind="kubernetes", api_server="https://127.0.0.1:9")

    def params_for(self, path: str) -> dict | None:
        from apps.clusters.models import Cluster
        from apps.cmdb.models import Change, ConfigurationItem
        from apps.pipelines import services as pipelines
        from apps.projects import services as projects
        from apps.projects.models import AuditEvent

        t = self.home()
        if path.startswith("/api/orgs/{slug}"):
            return {"slug": make_org(t.owner, slug=self._name("o")).slug}
        if path.startswith("/api/projects/{id}"):
            return {"id": self.project().pk}
        if path.startswith("/api/applications/{id}"):
            return {"id": self.application().pk}
        if path.startswith("/api/workspaces/{id}"):
            return {"id": self.project().workspaces.first().pk}
        if path.startswith("/api/members/{id}"):
            from django.contrib.auth import get_user_model

            name = self._name("u")
            get_user_model().objects.create_user(name)
            return {"id": projects.add_member(t.owner, self.project(), username=name, role="guest").pk}
        if path.startswith("/api/tokens/{id}"):
            return {"id": projects.create_token(t.owner, name=self._name("t"))[0].pk}
        if path.startswith("/api/audit-events/{id}"):
            return {"id": AuditEvent.objects.filter(organization=t.org).latest("pk").pk}
        if path.startswith("/api/branch-rules/{id}"):
            rule = pipelines.save_branch_rule(t.owner, t.project, pattern=self._name("b/"), workspace="DEV")
            return {"id": rule.pk}
        if path.startswith("/api/project-configs/{id}"):
            return {"id": pipelines.set_config(t.owner, t.project, key=self._name("k"), value="v").pk}
        if path.startswith("/api/pipelines/{id}"):
            definition = pipelines.save_definition(t.owner, t.app, source=PIPELINE, name=self._name("d"))
            return {"id": definition.pk}
        if path.startswith("/api/pipeline-runs/{id}"):
            return {"id": self.run().pk}
        if path.startswith("/api/task-runs/{id}"):
            return {"id": self.run().tasks.order_by("pk").first().pk}
        if path.startswith("/api/releases/{id}"):
            return {"id": self.release().pk}
        if path.startswith("/api/deployments/{id}"):
            return {"id": self.deployment().pk}
        if path.startswith("/api/runtimes/{id}"):
            return {"id": self.deployment().runtime_id}
        if path.startswith("/api/clusters/{name}/nodes/{node}"):
            local = Cluster.local()
            return {"name": local.name, "node": local.nodes.order_by("pk").first().name}
        if path.startswith("/api/clusters/{name}"):
            return {"name": self.cluster().name}
        if path.startswith("/api/cmdb/items/{id}"):
            item = ConfigurationItem.objects.create(kind="runtime", key=self._name("rt/"), name="rt",
                                                    organization=t.org, org_slug=t.org.slug)
            return {"id": item.pk}
        if path.startswith("/api/cmdb/changes/{id}"):
            return {"id": Change.objects.order_by("pk").first().pk}
        if path.startswith("/api/webhooks/{provider}/{app_id}"):
            return {"provider": "github", "app_id": t.app.pk}
        return None


@pytest.fixture
def contract_settings(settings, tmp_path):
    settings.DICE_DEPLOY_FILES = tmp_path / "deploy-files"
    settings.DICE_LOCAL_ROOT = tmp_path / "local-root"
    settings.DICE_PIPELINE_ROOT = tmp_path / "pipelines"
    return settings


@pytest.mark.django_db(transaction=True)
def test_every_operation_keeps_the_published_contract(live_server, contract_settings):
    from apps.clusters.models import Cluster
    from apps.clusters.sync import sync_cluster
    from apps.cmdb.models import Change, ConfigurationItem

    tenant = Tenant("fuzz")
    sync_cluster(Cluster.local())  # nodes and CMDB items (cluster-wide: no organization)
    item = ConfigurationItem.objects.create(kind="runtime", key="rt/seed", name="seed", organization=tenant.org,
                                            org_slug=tenant.org.slug)
    Change.objects.create(item=item, source="test", action="created", diff={})
    seeds = Seeds(tenant)
    auth = {"Authorization": f"Bearer {tenant.token}"}
    session = requests.Session()
    schema = schemathesis.openapi.from_url(f"{live_server.url}/api/schema/", headers=auth)

    failures: list[str] = []
    counts = {"operations": 0, "cases": 0, "unsatisfiable": 0}
    started = time.monotonic()

    def exercise(operation, mode, path_parameters=None):
        strategy = operation.as_strategy(generation_mode=mode, path_parameters=path_parameters)

        @settings(max_examples=EXAMPLES, derandomize=True, deadline=None, database=None,
                  phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
        @given(case=strategy)
        def run(case):
            counts["cases"] += 1
            response = case.call(base_url=live_server.url, session=session, headers=auth, timeout=60)
            try:
                case.validate_response(response, checks=CHECKS)
            except (Exception, BaseExceptionGroup) as exc:  # a failed check: collect them all, report at the end
                failures.append(f"{operation.label} [{mode.value}{' seeded' if path_parameters else ''}]: "
                                f"{type(exc).__name__}: {str(exc)[:1500]}")

        try:
            run()
        except Unsatisfiable:  # nothing to make invalid (an operation without any input)
            counts["unsatisfiable"] += 1

    operations = [result.ok() for result in schema.get_all_operations()]
    # Destructive methods last, so reads and updates still find the shared tenant's rows.
    operations.sort(key=lambda op: (op.method.upper() == "DELETE", op.path, op.method))
    for operation in operations:
        counts["operations"] += 1
        for mode in (schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE):
            exercise(operation, mode)
            seeded = seeds.params_for(operation.path)
            if seeded is not None:
                exercise(operation, mode, seeded)

    elapsed = time.monotonic() - started
    print(f"\ncontract: {counts['operations']} operations, {counts['cases']} cases in {elapsed:.0f} s, "
          f"{len(failures)} failures")
    assert counts["operations"] >= 100
    assert not failures, "\n\n".join(failures[:40]) + f"\n\n({len(failures)} failures)"
