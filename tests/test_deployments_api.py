"""Deployments and runtimes through the API on a fake cluster kind: tenant isolation (the shared
mixin), the state machine, quotas, permissions, supersede, idempotent and resumable rollouts,
rollback, scale/restart/stop/delete, addon credentials."""

from __future__ import annotations

import base64
import io
import tarfile
from datetime import timedelta
from pathlib import Path

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from apps.deploy import deployments, rollout
from apps.deploy.choices import ALLOWED_TRANSITIONS, FINAL_STATUSES, DeploymentStatus
from apps.deploy.models import AddonInstance, Deployment, DeploymentTransition, Runtime
from apps.deploy.tasks import reconcile_deployments, run_deployment
from apps.projects.models import AuditEvent
from scheduler.base import Health
from tests import test_deployments_support as support
from tests.api_cases import ScopedAPICases
from tests.test_deployments_support import SPEC, bind_to, release_of, unique_runtime

# The shared fixtures, bound here so that pytest finds them.
fake, fake_cluster, fast_rollouts = support.fake, support.fake_cluster, support.fast_rollouts

S = DeploymentStatus


@pytest.fixture(autouse=True)
def _fast(fast_rollouts):
    return fast_rollouts


def deploy(tenant, cluster, *, release=None, runtime=None, workspace="DEV", user=None):
    bind_to(tenant, cluster)
    release = release or release_of(tenant)
    return deployments.deploy(user or tenant.owner, tenant.app, workspace, release=release,
                              runtime_name=runtime or unique_runtime())


def statuses(deployment) -> list[tuple[str, str]]:
    return list(deployment.transitions.values_list("from_status", "to_status"))


# ---- the shared tenant-isolation suites ---------------------------------------------------------


class TestDeploymentAPI(ScopedAPICases):
    basename = "deployment"
    updatable = False
    deletable = False

    @pytest.fixture(autouse=True)
    def _cluster(self, fake_cluster):
        self.cluster = fake_cluster

    def make(self, tenant):
        return deploy(tenant, self.cluster)

    def create_data(self, tenant):
        bind_to(tenant, self.cluster)
        return {"application": tenant.app.pk, "workspace": "DEV", "runtime": unique_runtime(),
                "release": release_of(tenant).pk}


class TestRuntimeAPI(ScopedAPICases):
    basename = "runtime"
    updatable = False
    deletable = True

    @pytest.fixture(autouse=True)
    def _cluster(self, fake_cluster):
        self.cluster = fake_cluster

    def make(self, tenant):
        return deploy(tenant, self.cluster).runtime


# ---- the state machine ------------------------------------------------------------------------------


def test_transition_map_is_a_state_machine():
    assert set(ALLOWED_TRANSITIONS) == set(S.values)
    for final in FINAL_STATUSES:
        assert ALLOWED_TRANSITIONS[final] == frozenset()
    assert S.HEALTHY in ALLOWED_TRANSITIONS[S.DEPLOYING]
    assert S.HEALTHY not in ALLOWED_TRANSITIONS[S.QUEUED]


def test_rollout_records_every_transition(tenant_a, fake_cluster, fake):
    d = deploy(tenant_a, fake_cluster)
    assert d.status == S.QUEUED
    result = run_deployment(d.pk)
    assert result["status"] == S.HEALTHY
    d.refresh_from_db()
    assert d.status == S.HEALTHY and d.started and d.finished
    assert statuses(d) == [("", S.QUEUED), (S.QUEUED, S.DEPLOYING), (S.DEPLOYING, S.HEALTHY)]
    assert d.progress["order"] == ["cache", "worker", "web"]  # addons, then depends_on order
    assert d.progress["services"]["web"]["ready"] == 2
    d.runtime.refresh_from_db()
    assert d.runtime.release_id == d.release_id
    body = tenant_a.api().get(f"/api/deployments/{d.pk}/").json()
    assert [t["to_status"] for t in body["transitions"]] == [S.QUEUED, S.DEPLOYING, S.HEALTHY]


def test_illegal_transitions_are_refused_and_not_recorded(tenant_a, fake_cluster):
    d = deploy(tenant_a, fake_cluster)
    run_deployment(d.pk)
    before = DeploymentTransition.objects.count()
    for to in (S.DEPLOYING, S.QUEUED, S.FAILED, S.CANCELLED):
        with pytest.raises(deployments.IllegalTransition, match=f"cannot go from healthy to {to}"):
            deployments.transition(d, to, "try")
    assert DeploymentTransition.objects.count() == before
    d.refresh_from_db()
    assert d.status == S.HEALTHY
    r = tenant_a.api().post(f"/api/deployments/{d.pk}/cancel/")
    assert r.status_code == 400 and "cannot go from healthy to cancelled" in str(r.json())


def test_unhealthy_rollout_fails_with_the_reason(tenant_a, fake_cluster, fake):
    fake.health, fake.reason = Health.DEGRADED, "crash looping: exited(1), 3 restarts"
    d = deploy(tenant_a, fake_cluster)
    run_deployment(d.pk)
    d.refresh_from_db()
    assert d.status == S.FAILED
    assert "crash looping: exited(1), 3 restarts" in d.message
    assert statuses(d)[-1] == (S.DEPLOYING, S.FAILED)


def test_rollout_times_out(tenant_a, fake_cluster, fake, settings):
    settings.DICE_DEPLOY_TIMEOUT = 0.2
    fake.health, fake.reason = Health.PROGRESSING, "0/2 replicas ready"
    d = deploy(tenant_a, fake_cluster)
    run_deployment(d.pk)
    d.refresh_from_db()
    assert d.status == S.FAILED and d.message.startswith("not healthy after")
    assert "0/2 replicas ready" in d.message


def test_refused_apply_fails_the_deployment(tenant_a, fake_cluster, fake):
    fake.fail_apply = "applying Deployment/web: 422 Unprocessable"
    d = deploy(tenant_a, fake_cluster)
    run_deployment(d.pk)
    d.refresh_from_db()
    assert d.status == S.FAILED and d.message == "applying Deployment/web: 422 Unprocessable"


# ---- idempotence, supersede, cancel, resume ---------------------------------------------------------


def test_running_the_task_twice_does_no_harm(tenant_a, fake_cluster, fake):
    d = deploy(tenant_a, fake_cluster)
    assert run_deployment(d.pk)["status"] == S.HEALTHY
    assert run_deployment(d.pk) == {"deployment": d.pk, "skipped": "already healthy"}
    assert len(fake.applied()) == 1
    assert d.transitions.count() == 3
    assert run_deployment(999_999)["skipped"] == "no such deployment"


def test_a_deploying_deployment_resumes_after_a_worker_restart(tenant_a, fake_cluster, fake):
    d = deploy(tenant_a, fake_cluster)
    deployments.transition(d, S.DEPLOYING, "a worker started the rollout")  # ...and then died
    assert run_deployment(d.pk)["status"] == S.HEALTHY  # re-applied, followed to the end
    assert len(fake.applied()) == 1
    assert [t for _, t in statuses(d)].count(S.DEPLOYING) == 1


def test_a_new_deployment_supersedes_the_unfinished_one(tenant_a, fake_cluster, fake):
    first = deploy(tenant_a, fake_cluster, runtime="main")
    second = deploy(tenant_a, fake_cluster, runtime="main")
    first.refresh_from_db()
    assert first.status == S.SUPERSEDED
    assert first.transitions.last().reason == f"superseded by deployment #{second.pk}"
    assert run_deployment(first.pk)["skipped"] == "already superseded"
    assert fake.applied() == []
    run_deployment(second.pk)
    assert [c[2] for c in fake.applied()] == [f"v{second.release.version}"]
    other = deploy(tenant_a, fake_cluster, runtime="other")
    assert Deployment.objects.get(pk=other.pk).status == S.QUEUED  # other runtimes are left alone


def test_cancel_stops_an_unfinished_rollout(tenant_a, fake_cluster, fake):
    d = deploy(tenant_a, fake_cluster)
    r = tenant_a.api().post(f"/api/deployments/{d.pk}/cancel/")
    assert r.status_code == 200 and r.json()["status"] == S.CANCELLED
    assert run_deployment(d.pk)["skipped"] == "already cancelled"
    assert fake.applied() == []
    assert AuditEvent.objects.filter(action="cancel", object_id=str(d.pk)).exists()


def test_reconciler_adopts_or_redispatches_orphaned_rollouts(tenant_a, fake_cluster, fake, monkeypatch):
    healthy = deploy(tenant_a, fake_cluster)
    deployments.transition(healthy, S.DEPLOYING, "started")
    rollout._apply(healthy.pk)  # applied, then the worker vanished
    orphan = deploy(tenant_a, fake_cluster)  # queued, its message to the broker lost
    fresh = deploy(tenant_a, fake_cluster)  # queued just now: left alone
    old = timezone.now() - timedelta(minutes=10)
    Deployment.objects.filter(pk__in=[healthy.pk, orphan.pk]).update(heartbeat=old)
    sent = []
    monkeypatch.setattr(run_deployment, "delay", lambda pk: sent.append(pk))
    found = reconcile_deployments()
    assert found == {"healthy": [healthy.pk], "redispatched": [orphan.pk]}
    assert sent == [orphan.pk]
    assert Deployment.objects.get(pk=healthy.pk).transitions.last().reason == "found healthy by the reconciler"
    assert reconcile_deployments() == {"healthy": [], "redispatched": []}  # the heartbeat was touched
    assert Deployment.objects.get(pk=fresh.pk).status == S.QUEUED


def test_progress_is_pushed_to_the_runtime_group_after_commit(tenant_a, fake_cluster, monkeypatch,
                                                                django_capture_on_commit_callbacks):
    from dice_console import realtime

    sent = []
    monkeypatch.setattr(realtime, "group_send", lambda group, message: sent.append((group, message)))
    d = deploy(tenant_a, fake_cluster)
    monkeypatch.setattr(run_deployment, "delay", lambda pk: None)
    with django_capture_on_commit_callbacks(execute=True):
        run_deployment(d.pk)
    groups = {g for g, _ in sent}
    assert groups == {f"runtime-{d.runtime_id}"}
    assert [m["status"] for _, m in sent][-1] == S.HEALTHY
    assert any(m["progress"].get("services") for _, m in sent)


# ---- quotas and permissions -------------------------------------------------------------------------


def test_quota_refusal_names_the_quota_and_the_excess_and_changes_nothing(tenant_a, fake_cluster):
    ws = tenant_a.project.workspaces.get(kind="DEV")
    ws.cpu_quota, ws.mem_quota = 0.8, 500
    ws.save()
    first = deploy(tenant_a, fake_cluster, runtime="one")  # web 2 x 0.2 + worker 0.1 = 0.5 cores, 320 MiB
    run_deployment(first.pk)
    counts = (Runtime.objects.count(), Deployment.objects.count(), DeploymentTransition.objects.count())
    r = tenant_a.api().post("/api/deployments/", {
        "application": tenant_a.app.pk, "workspace": "DEV", "runtime": "two",
        "release": first.release_id}, format="json")
    assert r.status_code == 400
    messages = r.json()["quota"]
    assert any("CPU quota of workspace" in m and "exceeded by 0.20 cores" in m for m in messages), messages
    assert any("memory quota" in m and "exceeded by 140 MiB" in m for m in messages), messages
    assert (Runtime.objects.count(), Deployment.objects.count(), DeploymentTransition.objects.count()) == counts
    # Redeploying the same runtime does not count it twice.
    again = tenant_a.api().post("/api/deployments/", {
        "application": tenant_a.app.pk, "workspace": "DEV", "runtime": "one", "release": first.release_id},
        format="json")
    assert again.status_code == 201, again.content


def test_quota_counts_overcommit(tenant_a, fake_cluster):
    from apps.clusters.models import WorkspaceOvercommit

    WorkspaceOvercommit.objects.create(cluster=fake_cluster, workspace="DEV", cpu_ratio=2, mem_ratio=1)
    ws = tenant_a.project.workspaces.get(kind="DEV")
    ws.cpu_quota = 0.35  # requests: web 2 x 0.1 + worker max(0.05, floor 0.1) = 0.3 (0.5 without)
    ws.save()
    deploy(tenant_a, fake_cluster)
    ws.cpu_quota = 0.5
    ws.save()
    WorkspaceOvercommit.objects.filter(cluster=fake_cluster).update(cpu_ratio=1)
    with pytest.raises(ValidationError, match="exceeded by 0.50 cores: this runtime requests 0.50, the workspace.s other runtimes 0.50"):
        deploy(tenant_a, fake_cluster)


def test_developer_cannot_deploy_to_prod(tenant_a, fake_cluster):
    from rest_framework.test import APIClient

    dev = tenant_a.add_user("dave", "developer")
    bind_to(tenant_a, fake_cluster)
    release = release_of(tenant_a)
    client = APIClient()
    client.force_authenticate(dev)
    data = {"application": tenant_a.app.pk, "release": release.pk, "runtime": "main"}
    r = client.post("/api/deployments/", {**data, "workspace": "PROD"}, format="json")
    assert r.status_code == 403 and "deploy to PROD" in r.json()["detail"]
    assert not Runtime.objects.filter(workspace__kind="PROD").exists()
    r = client.post("/api/deployments/", {**data, "workspace": "dev"}, format="json")
    assert r.status_code == 201, r.content
    guest = tenant_a.add_user("gail", "guest")
    client.force_authenticate(guest)
    assert client.post("/api/deployments/", {**data, "workspace": "DEV"}, format="json").status_code == 403
    runtime = Runtime.objects.get(name="main")
    assert client.post(f"/api/runtimes/{runtime.pk}/scale/", {"service": "web", "replicas": 3},
                       format="json").status_code == 403
    assert client.delete(f"/api/runtimes/{runtime.pk}/").status_code == 403
    assert client.get(f"/api/runtimes/{runtime.pk}/").status_code == 200  # guests may look


def test_bad_deploy_requests_are_clear(tenant_a, tenant_b, fake_cluster):
    bind_to(tenant_a, fake_cluster)
    release = release_of(tenant_a)
    theirs = release_of(tenant_b)
    api = tenant_a.api()
    base = {"application": tenant_a.app.pk, "workspace": "DEV"}
    cases = [
        ({**base, "release": release.pk, "runtime": "Feature/X"}, "not a runtime name"),
        ({**base, "release": release.pk, "workspace": "QA"}, "workspace"),
        ({**base}, "give either a release or a spec_text"),
        ({**base, "release": theirs.pk}, "object does not exist"),
        ({**base, "spec_text": "version: '2.0'\nservices: {web: {resources: {cpu: -1}}}\n"}, "cpu"),
        ({**base, "spec_text": SPEC, "files_base64": "%%%"}, "not valid base64"),
        ({**base, "spec_text": SPEC, "files_base64": base64.b64encode(b"not a tar").decode()}, "tar.gz"),
    ]
    for data, expected in cases:
        r = api.post("/api/deployments/", data, format="json")
        assert r.status_code == 400, (data, r.content)
        assert expected in str(r.json()), (expected, r.json())
    assert not Deployment.objects.exists()


def _tar(members: dict[str, bytes], link: str | None = None) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        if link:
            info = tarfile.TarInfo("evil")
            info.type, info.linkname = tarfile.SYMTYPE, link
            tar.addfile(info)
    return buf.getvalue()


def test_release_files_are_checked(db):
    from apps.deploy.bundles import check_archive

    assert check_archive(_tar({"dice.yml": b"x", "app/main.py": b"print()"})) == 2
    for bad, message in ((_tar({"../up.txt": b"x"}), "inside the folder"),
                         (_tar({"/etc/passwd": b"x"}), "inside the folder"),
                         (_tar({"a": b"x"}, link="/etc/passwd"), "links")):
        with pytest.raises(ValidationError, match=message):
            check_archive(bad)


# ---- operations on a runtime ------------------------------------------------------------------------


def test_rollback_deploys_an_earlier_release(tenant_a, fake_cluster, fake):
    v1 = release_of(tenant_a)
    first = deploy(tenant_a, fake_cluster, release=v1, runtime="main")
    run_deployment(first.pk)
    v2 = release_of(tenant_a, SPEC.replace("registry.example/web:1", "registry.example/web:2"))
    second = deploy(tenant_a, fake_cluster, release=v2, runtime="main")
    run_deployment(second.pk)
    runtime = second.runtime
    r = tenant_a.api().post(f"/api/runtimes/{runtime.pk}/rollback/", {"release": v1.pk}, format="json")
    assert r.status_code == 201, r.content
    body = r.json()
    assert body["rollback_of"] == second.pk and body["version"] == v1.version and body["status"] == S.QUEUED
    run_deployment(body["id"])
    runtime.refresh_from_db()
    assert runtime.release_id == v1.pk
    assert [c[2] for c in fake.applied()] == ["v1", "v2", "v1"]
    assert AuditEvent.objects.filter(action="rollback", object_id=str(body["id"])).exists()


def test_scale_restart_stop_delete(tenant_a, fake_cluster, fake):
    d = deploy(tenant_a, fake_cluster, runtime="main")
    run_deployment(d.pk)
    runtime, api = d.runtime, tenant_a.api()
    ns = fake.applied()[0][1]
    r = api.post(f"/api/runtimes/{runtime.pk}/scale/", {"service": "web", "replicas": 3}, format="json")
    assert r.status_code == 200, r.content
    body = r.json()
    assert body["replicas"] == {"web": 3}
    web = next(s for s in body["status"]["services"] if s["name"] == "web")
    assert web["desired"] == 3 and web["exposed"] and web["url"] == "http://web.fake:8080"
    r = api.post(f"/api/runtimes/{runtime.pk}/scale/", {"service": "nope", "replicas": 1}, format="json")
    assert r.status_code == 400 and "has no service 'nope'" in str(r.json())
    assert api.post(f"/api/runtimes/{runtime.pk}/restart/", {"service": "worker"}, format="json").status_code == 200
    assert api.post(f"/api/runtimes/{runtime.pk}/stop/").json()["replicas"] == {"web": 0, "worker": 0}
    assert ("restart", ns, "worker") in fake.calls and ("scale", ns, "worker", 0) in fake.calls
    actions = set(AuditEvent.objects.filter(object_type="runtime").values_list("action", flat=True))
    assert {"create", "scale", "restart", "stop"} <= actions
    assert api.delete(f"/api/runtimes/{runtime.pk}/").status_code == 204
    assert ("destroy", ns) in fake.calls
    assert not Runtime.objects.filter(pk=runtime.pk).exists()
    assert not Deployment.objects.filter(pk=d.pk).exists()
    assert AuditEvent.objects.filter(action="delete", object_type="runtime").exists()


def test_scale_beyond_the_quota_is_refused(tenant_a, fake_cluster, fake):
    ws = tenant_a.project.workspaces.get(kind="DEV")
    ws.cpu_quota = 1
    ws.save()
    d = deploy(tenant_a, fake_cluster)
    run_deployment(d.pk)
    r = tenant_a.api().post(f"/api/runtimes/{d.runtime_id}/scale/", {"service": "web", "replicas": 5}, format="json")
    assert r.status_code == 400 and "CPU quota" in str(r.json())
    assert not [c for c in fake.calls if c[0] == "scale"]


def test_runtime_list_filters(tenant_a, fake_cluster):
    deploy(tenant_a, fake_cluster, runtime="main")
    deploy(tenant_a, fake_cluster, runtime="feature-x", workspace="TEST")
    api = tenant_a.api()
    names = lambda **q: sorted(r["name"] for r in api.get("/api/runtimes/", q).json()["results"])  # noqa: E731
    assert names(org=tenant_a.org.slug, app=tenant_a.app.slug) == ["feature-x", "main"]
    assert names(workspace="test") == ["feature-x"]
    assert names(org="someone-else") == []
    d = api.get("/api/deployments/", {"workspace": "DEV", "status": "queued"}).json()
    assert [x["runtime_name"] for x in d["results"]] == ["main"]


def test_addon_credentials_are_encrypted_and_kept_across_deploys(tenant_a, fake_cluster, fake):
    first = deploy(tenant_a, fake_cluster, runtime="main")
    run_deployment(first.pk)
    second = deploy(tenant_a, fake_cluster, runtime="main")
    run_deployment(second.pk)
    groups = list(fake.groups.values())
    secrets = groups[0].addon_secrets["cache"]
    assert secrets["password"] and len(secrets["password"]) >= 20
    instance = AddonInstance.objects.get(runtime=first.runtime, name="cache")
    assert (instance.type, instance.size) == ("redis", "basic")
    assert secrets["password"] not in instance.credentials
    from apps.deploy.addons import credentials

    assert credentials(instance) == secrets
    assert AddonInstance.objects.count() == 1


@pytest.mark.django_db(transaction=True)
def test_runtime_websocket_streams_progress_inside_the_scope(tenant_a, tenant_b, fake_cluster, fake, monkeypatch):
    from asgiref.sync import sync_to_async
    from channels.routing import URLRouter
    from channels.testing import WebsocketCommunicator

    from dice_console.routing import websocket_urlpatterns
    from tests.test_realtime import run_async

    monkeypatch.setattr(run_deployment, "delay", lambda pk: None)  # this test runs the task itself
    mine = deploy(tenant_a, fake_cluster)
    theirs = deploy(tenant_b, fake_cluster)

    async def connect(user, runtime_id):
        comm = WebsocketCommunicator(URLRouter(websocket_urlpatterns), f"/ws/runtimes/{runtime_id}/")
        comm.scope["user"] = user
        connected, code = await comm.connect()
        return comm, connected, code

    async def scenario():
        from tests.logs_helpers import refused_code

        comm, connected, _ = await connect(tenant_a.owner, theirs.runtime_id)
        assert connected and await refused_code(comm) == 4404
        comm, connected, _ = await connect(tenant_a.owner, mine.runtime_id)
        assert connected
        await sync_to_async(run_deployment)(mine.pk)
        seen = []
        while not seen or seen[-1]["status"] != S.HEALTHY:
            seen.append(await comm.receive_json_from(timeout=5))
        assert {m["deployment"] for m in seen} == {mine.pk}
        assert any(m["progress"].get("services", {}).get("web") for m in seen)
        await comm.disconnect()

    run_async(scenario)


def test_deploy_a_spec_with_its_files_as_multipart(tenant_a, fake_cluster, fake):
    from django.core.files.uploadedfile import SimpleUploadedFile

    from apps.deploy.models import ReleaseBundle

    bind_to(tenant_a, fake_cluster)
    archive = _tar({"dice.yml": SPEC.encode(), "app.py": b"print('hi')\n"})
    r = tenant_a.api().post("/api/deployments/", {
        "application": tenant_a.app.pk, "workspace": "DEV", "runtime": "main", "spec_text": SPEC,
        "files": SimpleUploadedFile("files.tar.gz", archive)}, format="multipart")
    assert r.status_code == 201, r.content
    bundle = ReleaseBundle.objects.get(release_id=r.json()["release"])
    assert bundle.files == 2 and bundle.size == len(archive)
    from apps.deploy.bundles import release_workdir

    workdir = Path(release_workdir(bundle.release))
    assert (workdir / "app.py").read_text() == "print('hi')\n"
    assert release_workdir(bundle.release) == str(workdir)  # unpacked once, reused


def test_scale_restart_and_stop_tell_the_runtime_viewers(tenant_a, fake_cluster, monkeypatch,
                                                         django_capture_on_commit_callbacks):
    from apps.deploy import deployments
    from dice_console import realtime

    d = deploy(tenant_a, fake_cluster)
    run_deployment(d.pk)
    runtime = Runtime.objects.get(pk=d.runtime_id)
    sent = []
    monkeypatch.setattr(realtime, "group_send", lambda group, message: sent.append((group, message)))
    with django_capture_on_commit_callbacks(execute=True):
        deployments.scale(tenant_a.owner, runtime, "web", 1)
        deployments.restart(tenant_a.owner, runtime, "web")
        deployments.stop(tenant_a.owner, runtime)
    assert [(g, m["type"], m["action"]) for g, m in sent if g.startswith("runtime-")] == [
        (f"runtime-{runtime.pk}", "runtime.changed", action) for action in ("scale", "restart", "stop")
    ]


def test_two_rollouts_making_a_runtimes_addon_at_once_share_its_credentials(tenant_a, fake_cluster, fake):
    """A worker resuming a rollout that another still follows prepares the same group: both find
    no instance of the addon and make one. The second must use the first's credentials, not fail
    the deployment on the unique (runtime, name) constraint (it did: `internal error:
    IntegrityError`, seen when a test's direct call raced the embedded worker)."""
    from apps.deploy import addons
    from apps.deploy.lifecycle import parse_for

    first = deploy(tenant_a, fake_cluster, runtime="main")
    run_deployment(first.pk)
    runtime = first.runtime
    made = AddonInstance.objects.get(runtime=runtime, name="cache")
    kept = addons.credentials(made)
    doc = parse_for(first.release, runtime.workspace.kind)
    real_filter = AddonInstance.objects.filter

    def as_before_it_was_made(*args, **kwargs):  # the other rollout's read, before the first create
        return real_filter(*args, **kwargs).exclude(pk=made.pk)

    import unittest.mock

    with unittest.mock.patch.object(AddonInstance.objects, "filter", as_before_it_was_made):
        got = addons.addon_secrets(runtime, doc)
    assert got["cache"] == kept
    assert AddonInstance.objects.filter(runtime=runtime).count() == 1
