"""Input edges of the API attacked as issue 17 found them (items 9, 10, 12, 13): webhook replays and
what an unknown application reveals, inputs that used to be 500s, archives up to the 50 MiB limit
through the API, the CLI and the page, a gzip bomb, and a release's pipeline run from elsewhere.

Self-contained: it uses only the project's shared fixtures (tests/conftest.py)."""

from __future__ import annotations

import gzip
import hashlib
import hmac
import io
import json
import os
import tarfile
import time
import uuid
from datetime import timedelta

import pytest

SECRET = "replay-me-if-you-can"
PUSH = {"ref": "refs/heads/main", "before": "1" * 40, "after": "2" * 40,
        "repository": {"clone_url": "https://git.example/a.git"}, "pusher": {"name": "ann", "email": "a@example"},
        "commits": [], "head_commit": {"id": "2" * 40, "message": "fix", "author": {"name": "Ann"}}}
PIPELINE = 'version: "1.1"\non:\n  push:\n    branches: [main]\nstages:\n  - stage:\n      - echo: {params: {msg: hi}}\n'
SPEC = ('version: "2.0"\nservices:\n  web:\n    image: web:1\n    cmd: python3 -m http.server $PORT\n'
        '    ports: [8080]\n    resources: {cpu: 0.1, mem: 64}\n')
MiB = 1024 * 1024


def _headers(provider: str, body: bytes, delivery: str, secret: str = SECRET) -> dict:
    digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return {
        "github": {"HTTP_X_GITHUB_EVENT": "push", "HTTP_X_GITHUB_DELIVERY": delivery,
                   "HTTP_X_HUB_SIGNATURE_256": f"sha256={digest}"},
        "gitlab": {"HTTP_X_GITLAB_EVENT": "Push Hook", "HTTP_X_GITLAB_EVENT_UUID": delivery,
                   "HTTP_X_GITLAB_TOKEN": secret},
        "gitea": {"HTTP_X_GITEA_EVENT": "push", "HTTP_X_GITEA_DELIVERY": delivery, "HTTP_X_GITEA_SIGNATURE": digest},
    }[provider]


def _post_hook(provider: str, app_id: int, delivery: str, body: bytes | None = None, secret: str = SECRET):
    from rest_framework.test import APIClient

    body = body if body is not None else json.dumps(PUSH).encode()
    return APIClient().post(f"/api/webhooks/{provider}/{app_id}/", body, content_type="application/json",
                            **_headers(provider, body, delivery, secret))


@pytest.fixture
def hooked(tenant_a):
    from apps.pipelines import services

    services.set_config(tenant_a.owner, tenant_a.project, key="webhook_secret", value=SECRET, secret=True)
    services.save_definition(tenant_a.owner, tenant_a.app, source=PIPELINE, name="ci")
    return tenant_a


# ---- 9: replays and what an unknown application reveals ---------------------------------------------


@pytest.mark.parametrize("provider", ["github", "gitlab", "gitea"])
def test_a_replayed_delivery_starts_nothing_for_a_day(hooked, provider):
    from apps.pipelines.models import PipelineRun, WebhookDelivery

    delivery = str(uuid.uuid4())
    first = _post_hook(provider, hooked.app.pk, delivery)
    assert first.status_code == 202, first.content
    for _ in range(3):
        replay = _post_hook(provider, hooked.app.pk, delivery)
        assert replay.status_code == 409 and delivery in replay.json()["detail"]
    assert PipelineRun.objects.count() == 1
    assert _post_hook(provider, hooked.app.pk, str(uuid.uuid4())).status_code == 202  # a new delivery runs
    assert PipelineRun.objects.count() == 2

    WebhookDelivery.objects.update(received=WebhookDelivery.objects.first().received - timedelta(days=1, minutes=1))
    assert _post_hook(provider, hooked.app.pk, delivery).status_code == 202  # remembered for a day only
    assert PipelineRun.objects.count() == 3


def test_a_replay_with_a_bad_signature_does_not_burn_the_delivery_id(hooked):
    delivery = str(uuid.uuid4())
    assert _post_hook("github", hooked.app.pk, delivery, secret="guess").status_code == 403
    assert _post_hook("github", hooked.app.pk, delivery).status_code == 202


@pytest.mark.parametrize("provider", ["github", "gitlab", "gitea"])
def test_an_unknown_application_and_one_without_a_secret_answer_the_same(tenant_a, tenant_b, provider):
    from apps.pipelines import services

    services.set_config(tenant_b.owner, tenant_b.project, key="webhook_secret", value=SECRET, secret=True)
    unknown = _post_hook(provider, 987654321, str(uuid.uuid4()))
    no_secret = _post_hook(provider, tenant_a.app.pk, str(uuid.uuid4()))
    wrong = _post_hook(provider, tenant_b.app.pk, str(uuid.uuid4()), secret="not-it")
    assert unknown.status_code == no_secret.status_code == wrong.status_code == 403
    assert unknown.content == no_secret.content == wrong.content


# ---- 10: what used to be 500s ---------------------------------------------------------------------


def test_json_nested_100k_deep_is_a_400(tenant_a, hooked):
    deep = ("[" * 100_000 + "]" * 100_000).encode()
    response = tenant_a.api().post("/api/projects/", deep, content_type="application/json")
    assert response.status_code == 400 and "nested too deeply" in response.json()["detail"]
    hook = _post_hook("github", hooked.app.pk, str(uuid.uuid4()), body=deep)
    assert hook.status_code == 400 and "nested too deeply" in hook.json()["detail"]


@pytest.mark.parametrize(("cron", "named"), [
    ("@every 1s", "at most once every 60 seconds"),
    ("0 0 12 * * ? 2027", "the year field must be * or ?"),
])
def test_pipeline_cron_beat_cannot_run_is_a_400_naming_cron(tenant_a, cron, named):
    from apps.pipelines.models import PipelineDefinition

    source = f'version: "1.1"\ncron: "{cron}"\nstages:\n  - stage:\n      - echo: {{params: {{msg: hi}}}}\n'
    response = tenant_a.api().post("/api/pipelines/", {"application": tenant_a.app.pk, "source": source,
                                                       "name": "cronned"}, format="json")
    assert response.status_code == 400, response.content
    assert named in " ".join(response.json()["cron"])
    assert not PipelineDefinition.objects.filter(name="cronned").exists()


@pytest.mark.parametrize(("cron", "schedule"), [
    ("@every 5m", ("interval", 300)),
    ("0 0 12 * * ? *", ("crontab", "0 12 * * *")),
])
def test_pipeline_cron_every_and_quartz_year_star_are_scheduled(tenant_a, cron, schedule):
    from django_celery_beat.models import PeriodicTask

    source = f'version: "1.1"\ncron: "{cron}"\nstages:\n  - stage:\n      - echo: {{params: {{msg: hi}}}}\n'
    response = tenant_a.api().post("/api/pipelines/", {"application": tenant_a.app.pk, "source": source,
                                                       "name": "cronned"}, format="json")
    assert response.status_code == 201, response.content
    task = PeriodicTask.objects.get(name=f"pipeline-definition-{response.json()['id']}")
    if schedule[0] == "interval":
        assert task.interval.every == schedule[1] and task.crontab is None
    else:
        c = task.crontab
        assert f"{c.minute} {c.hour} {c.day_of_month} {c.month_of_year} {c.day_of_week}" == schedule[1]


def _random_archive(size: int) -> bytes:
    """A tar.gz holding `size` bytes that do not compress (so the archive is about `size`)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz", compresslevel=1) as tar:
        payload = os.urandom(size)
        info = tarfile.TarInfo("assets/blob.bin")
        info.size = len(payload)
        tar.addfile(info, io.BytesIO(payload))
        spec = SPEC.encode()
        info = tarfile.TarInfo("dice.yml")
        info.size = len(spec)
        tar.addfile(info, io.BytesIO(spec))
    return buf.getvalue()


@pytest.fixture
def local_files(settings, tmp_path):
    settings.DICE_DEPLOY_FILES = tmp_path / "files"
    settings.DICE_LOCAL_ROOT = tmp_path / "local"
    return settings


def test_multipart_archive_up_to_the_50_mib_limit_deploys_through_the_api(tenant_a, local_files):
    from django.core.files.uploadedfile import SimpleUploadedFile

    from apps.deploy.models import ReleaseBundle

    archive = _random_archive(48 * MiB)
    assert 47 * MiB < len(archive) <= 50 * MiB
    data = {"application": tenant_a.app.pk, "workspace": "dev", "runtime": "big", "spec_text": SPEC,
            "files": SimpleUploadedFile("app.tar.gz", archive, content_type="application/gzip")}
    response = tenant_a.api().post("/api/deployments/", data, format="multipart")
    assert response.status_code == 201, response.content[:500]
    bundle = ReleaseBundle.objects.get(release_id=response.json()["release"])
    assert bundle.size == len(archive) and bundle.files == 2

    too_big = _random_archive(50 * MiB + 4096)
    data["files"] = SimpleUploadedFile("app.tar.gz", too_big, content_type="application/gzip")
    refused = tenant_a.api().post("/api/deployments/", data, format="multipart")
    assert refused.status_code == 400 and "larger than 50 MiB" in " ".join(refused.json()["files"])


def test_a_large_archive_deploys_through_the_cli(tenant_a, dice_cli, local_files, tmp_path):
    from apps.deploy.models import ReleaseBundle

    folder = tmp_path / "app"
    (folder / "assets").mkdir(parents=True)
    (folder / "dice.yml").write_text(SPEC)
    (folder / "assets" / "blob.bin").write_bytes(os.urandom(30 * MiB))
    from apps.projects.models import Application

    Application.objects.filter(pk=tenant_a.app.pk).update(repo_url="")  # the folder is the release's files
    cli = dice_cli(tenant_a.owner)
    app = f"{tenant_a.org.slug}/{tenant_a.project.slug}/{tenant_a.app.slug}"
    code, out, err = cli("deploy", app, "--workspace", "DEV", "--spec", str(folder / "dice.yml"), "--format", "json")
    assert code == 0, err
    bundle = ReleaseBundle.objects.get()
    assert bundle.size > 30 * MiB and bundle.files == 2


def test_a_large_archive_makes_a_release_through_the_page(tenant_a, local_files):
    from django.core.files.uploadedfile import SimpleUploadedFile

    from apps.deploy.models import ReleaseBundle

    archive = _random_archive(12 * MiB)
    url = f"/orgs/{tenant_a.org.slug}/{tenant_a.project.slug}/{tenant_a.app.slug}/releases/new/"
    response = tenant_a.browser_client().post(url, {
        "spec_text": SPEC, "images": "", "description": "big",
        "files": SimpleUploadedFile("app.tar.gz", archive, content_type="application/gzip")})
    assert response.status_code == 302, response.content[:2000]
    assert ReleaseBundle.objects.get().size == len(archive)


# ---- 12: a gzip bomb costs almost nothing -----------------------------------------------------------


def _bomb(total: int, *, files: int = 1, chunk: int = 16 * MiB) -> bytes:
    """A tar.gz of `files` files of zeros unpacking to `total` bytes, built from repeated gzip
    members (as cheap to make as it is small)."""
    zeros = gzip.compress(b"\0" * chunk, 9)
    parts = []
    for i in range(files):
        info = tarfile.TarInfo(f"zeros-{i}.bin")
        info.size = total // files // chunk * chunk  # whole chunks: no tar padding needed
        parts.append(gzip.compress(info.tobuf(format=tarfile.GNU_FORMAT), 9))
        parts += [zeros] * (info.size // chunk)
    parts.append(gzip.compress(b"\0" * 1024, 9))
    return b"".join(parts)


@pytest.mark.parametrize("files", [1, 20])
def test_a_gzip_bomb_is_refused_at_the_limit_cheaply(tenant_a, local_files, files):
    from django.core.files.uploadedfile import SimpleUploadedFile

    from apps.deploy.models import Release

    bomb = _bomb(2 * 1024 * MiB, files=files)
    assert len(bomb) < 3 * MiB
    data = {"application": tenant_a.app.pk, "workspace": "DEV", "runtime": "bomb", "spec_text": SPEC,
            "files": SimpleUploadedFile("bomb.tar.gz", bomb, content_type="application/gzip")}
    started = time.process_time()
    response = tenant_a.api().post("/api/deployments/", data, format="multipart")
    cpu = time.process_time() - started
    assert response.status_code == 400 and "unpack to more than 200 MiB" in " ".join(response.json()["files"])
    assert not Release.objects.exists()
    # Inflating the whole 2 GiB took 5.1 s of CPU here; stopping at 200 MiB costs a fraction of it
    # (one file: nothing, the header says 2 GiB; twenty files of 96 MiB: two of them are read).
    assert cpu < 2.0, f"refusing the bomb cost {cpu:.2f} s of CPU"


# ---- 13: a release's pipeline run is one of its application's -----------------------------------------


def test_a_release_names_only_a_pipeline_run_of_its_own_application(tenant_a, tenant_b):
    from apps.pipelines import services
    from apps.projects import services as projects

    theirs = services.start_run(tenant_b.owner, tenant_b.app, source=PIPELINE)
    sibling = projects.create_application(tenant_a.owner, tenant_a.project, slug="sibling")
    other_app_run = services.start_run(tenant_a.owner, sibling, source=PIPELINE)
    mine = services.start_run(tenant_a.owner, tenant_a.app, source=PIPELINE)
    api = tenant_a.api()
    for run_id in (theirs.pk, other_app_run.pk, 2**62):
        response = api.post("/api/releases/", {"application": tenant_a.app.pk, "spec_text": SPEC,
                                               "pipeline_run_id": run_id}, format="json")
        assert response.status_code == 400 and "pipeline_run_id" in response.json(), response.content
    ok = api.post("/api/releases/", {"application": tenant_a.app.pk, "spec_text": SPEC, "pipeline_run_id": mine.pk},
                  format="json")
    assert ok.status_code == 201 and ok.json()["pipeline_run_id"] == mine.pk
