"""A dice.yml job with `engine: flink` that no Flink cluster can run is refused at deploy, before
anything changes (no runtime, no deployment, nothing applied), with a message naming the job and
what is missing: on a cluster that does not run Flink itself without a Flink data cluster, and on
Kubernetes whose last check found no Flink operator (or with a schedule, which the operator has no
resource for). No Flink is needed: nothing gets to run."""

from __future__ import annotations

import pytest
from django.utils import timezone

from apps.deploy.models import Deployment, Runtime
from tests import test_deployments_support as support
from tests.test_deployments_support import bind_to, release_of

fake, fake_cluster = support.fake, support.fake_cluster

SPEC = """
version: "2.0"
services:
  web:
    image: web:1
jobs:
  wordcount:
    engine: flink
    resource: jobs/count.jar
    class: Count
{more}"""


def _post(tenant, release):
    return tenant.api().post("/api/deployments/", {"application": tenant.app.pk, "workspace": "DEV",
                                                   "runtime": "main", "release": release.pk}, format="json")


def _nothing_changed(tenant, fake) -> None:
    assert not Runtime.objects.filter(application=tenant.app).exists()
    assert not Deployment.objects.filter(runtime__application=tenant.app).exists()
    assert fake.applied() == []


def test_without_a_flink_data_cluster_the_deploy_is_refused_naming_the_job(tenant_a, fake_cluster, fake):
    bind_to(tenant_a, fake_cluster)
    answer = _post(tenant_a, release_of(tenant_a, SPEC.format(more="")))
    assert answer.status_code == 400, answer.content
    message = answer.json()["jobs.wordcount"][0]
    assert "job 'wordcount' has `engine: flink`" in message and "no Flink data cluster" in message
    assert "flink-local" in message
    _nothing_changed(tenant_a, fake)


@pytest.fixture
def kubernetes_without_operator(db):
    from apps.clusters.models import Cluster

    return Cluster.objects.create(name="k-noflink", kind="kubernetes", all_organizations=True,
                                  checked_at=timezone.now(), operators=["sparkapplications.sparkoperator.k8s.io"])


def test_on_kubernetes_checked_without_the_flink_operator_the_deploy_is_refused(tenant_a, kubernetes_without_operator):
    bind_to(tenant_a, kubernetes_without_operator)
    answer = _post(tenant_a, release_of(tenant_a, SPEC.format(more="")))
    assert answer.status_code == 400, answer.content
    message = answer.json()["jobs.wordcount"][0]
    assert "no Flink operator (CRD flinkdeployments.flink.apache.org not installed" in message
    assert not Runtime.objects.filter(application=tenant_a.app).exists()


def test_on_kubernetes_a_scheduled_flink_job_needs_a_flink_data_cluster(tenant_a, kubernetes_without_operator):
    kubernetes_without_operator.operators = ["flinkdeployments.flink.apache.org", "flinksessionjobs.flink.apache.org"]
    kubernetes_without_operator.save()
    bind_to(tenant_a, kubernetes_without_operator)
    answer = _post(tenant_a, release_of(tenant_a, SPEC.format(more='    schedule: "0 2 * * *"\n')))
    assert answer.status_code == 400, answer.content
    message = answer.json()["jobs.wordcount"][0]
    assert "the Flink operator has no scheduled resource" in message
    # what to do, exactly: the data cluster that fires it, how to bind one, or no schedule
    project = tenant_a.project
    assert f"dice workspace set {project.organization.slug}/{project.slug} DEV --data-cluster flink-local" in message
    assert "remove `schedule`" in message
    assert not Runtime.objects.filter(application=tenant_a.app).exists()


def test_with_a_flink_data_cluster_the_deploy_is_accepted(tenant_a, fake_cluster, fake):
    from apps.clusters.models import Cluster

    bind_to(tenant_a, fake_cluster)
    flink = Cluster.objects.create(name="flink-x", kind="flink", all_organizations=True,
                                   api_server="http://127.0.0.1:9/")
    tenant_a.project.workspaces.get(kind="DEV").data_clusters.set([flink])
    answer = _post(tenant_a, release_of(tenant_a, SPEC.format(more="")))
    assert answer.status_code == 201, answer.content
