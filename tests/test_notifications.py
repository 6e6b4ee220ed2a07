"""Notifications: channels through the API, page and CLI; deliveries to a real local HTTP receiver
(signed webhook, Slack-compatible), e-mail through the locmem backend, retries, the delivery
history, the hooks on deployments and pipeline runs, and the SSRF guard on tenant URLs."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.core import mail

from apps.monitoring import services
from apps.monitoring.models import NotificationChannel, NotificationDelivery
from apps.monitoring.tasks import deliver, sweep


class Receiver:
    """A real HTTP server on loopback: records every request and answers from a script of
    (status, headers, delay) tuples (the last one repeats)."""

    def __init__(self):
        self.requests: list[dict] = []
        self.script: list[tuple[int, dict, float]] = [(200, {}, 0.0)]
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                receiver.requests.append({"path": self.path, "headers": dict(self.headers), "body": body})
                status, headers, delay = receiver.script[min(len(receiver.requests), len(receiver.script)) - 1]
                time.sleep(delay)
                self.send_response(status)
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()


@pytest.fixture
def private_ok(settings):
    """The operator allows receivers on private addresses (the tests' receiver is on loopback)."""
    settings.DICE_NOTIFY_ALLOW_PRIVATE_HOSTS = True
    settings.DICE_NOTIFY_RETRY_DELAYS = [0, 0]
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    return settings


def _send_all(project) -> list[dict]:
    """What the worker does: attempt every pending delivery of the project once."""
    pks = NotificationDelivery.objects.filter(channel__project=project, status="pending").values_list("pk", flat=True)
    return [deliver(pk) for pk in pks]


def test_webhook_is_signed_and_history_recorded(tenant_a, receiver, private_ok):
    api = tenant_a.api()
    made = api.post("/api/notifications/channels/", {
        "project": f"{tenant_a.org.slug}/{tenant_a.project.slug}", "name": "hooks", "kind": "webhook",
        "url": receiver.url + "/dice?x=1"}, format="json")
    assert made.status_code == 201, made.content
    secret = made.json()["secret"]
    assert secret and "url" not in made.json() and made.json()["url_hint"].startswith("http://127.0.0.1:")
    # the secret is shown once, and the URL never
    shown = api.get(f"/api/notifications/channels/{made.json()['id']}/").json()
    assert shown["secret"] is None and "url" not in shown

    test = api.post(f"/api/notifications/channels/{made.json()['id']}/test/")
    assert test.status_code == 202
    result = deliver(test.json()["id"])
    assert result["sent"], result
    (request,) = receiver.requests
    assert request["path"] == "/dice?x=1"
    body, headers = request["body"], request["headers"]
    expected = "sha256=" + hmac.new(secret.encode(), headers["X-Dice-Timestamp"].encode() + b"." + body,
                                    hashlib.sha256).hexdigest()
    assert headers["X-Dice-Signature-256"] == expected
    payload = json.loads(body)
    assert payload["event"] == "test" and payload["project"] == tenant_a.project.slug
    history = api.get("/api/notifications/deliveries/", {"project": f"{tenant_a.org.slug}/{tenant_a.project.slug}"})
    (row,) = history.json()["results"]
    assert row["status"] == "delivered" and row["response_code"] == 200 and row["attempts"] == 1
    # running the task again sends nothing twice
    assert not deliver(row["id"])["sent"] and len(receiver.requests) == 1


def test_failed_attempts_are_retried_then_given_up(tenant_a, receiver, private_ok):
    channel, _ = services.create_channel(tenant_a.owner, tenant_a.project, name="h", kind="webhook", url=receiver.url)
    receiver.script = [(500, {}, 0.0), (200, {}, 0.0)]
    delivery = services.send_test(tenant_a.owner, channel)
    first = deliver(delivery.pk)
    assert not first["sent"] and first["retry_in"] == 0 and "500" in first["error"]
    delivery.refresh_from_db()
    assert delivery.status == "pending" and delivery.attempts == 1 and delivery.response_code == 500
    assert sweep()["sent"] == 1  # the worker's sweep sends what is due
    delivery.refresh_from_db()
    assert delivery.status == "delivered" and delivery.attempts == 2 and delivery.last_error == ""

    receiver.script = [(503, {}, 0.0)]
    again = services.send_test(tenant_a.owner, channel)
    for _ in range(3):
        deliver(again.pk)
    again.refresh_from_db()
    assert again.status == "failed" and again.attempts == 3 and "503" in again.last_error
    assert deliver(again.pk)["sent"] is False and again.attempts == 3


def test_slack_and_email_channels(tenant_a, receiver, private_ok):
    services.create_channel(tenant_a.owner, tenant_a.project, name="slack", kind="slack", url=receiver.url + "/hook")
    services.create_channel(tenant_a.owner, tenant_a.project, name="mail", kind="email",
                            recipients="ops@example.org, dev@example.org", events=["pipeline.failed"])
    ids = services.notify(tenant_a.project, "pipeline.failed", "Pipeline build run #3 failed", {"run": 3})
    assert len(ids) == 2
    assert all(r["sent"] for r in _send_all(tenant_a.project))
    (request,) = receiver.requests
    assert json.loads(request["body"]) == {"text": f"[{tenant_a.org.slug}/{tenant_a.project.slug}] "
                                                   "Pipeline build run #3 failed"}
    (message,) = mail.outbox
    assert message.to == ["ops@example.org", "dev@example.org"] and "run #3 failed" in message.subject
    # a tenant-made name cannot break the mail's headers
    mail.outbox.clear()
    services.notify(tenant_a.project, "pipeline.failed", "Pipeline x\r\nBcc: evil@example.org run #4 failed")
    _send_all(tenant_a.project)
    assert [m.subject for m in mail.outbox] == ["[Dice] Pipeline x Bcc: evil@example.org run #4 failed"]
    assert mail.outbox[0].bcc == []
    # the mail channel does not hear events it did not subscribe to
    assert len(services.notify(tenant_a.project, "deployment.healthy", "x")) == 1


def test_deployment_and_pipeline_transitions_notify(tenant_a, receiver, private_ok):
    from apps.clusters.models import Cluster
    from apps.deploy import services as deploy_services
    from apps.deploy.lifecycle import transition
    from apps.deploy.models import Deployment, Runtime
    from apps.pipelines.models import PipelineRun
    from apps.pipelines.states import move_run

    services.create_channel(tenant_a.owner, tenant_a.project, name="all", kind="webhook", url=receiver.url)
    release = deploy_services.create_release(tenant_a.owner, tenant_a.app, spec_text=(
        "version: '2.0'\nservices:\n  web:\n    image: nginx\n"))
    runtime = Runtime.objects.create(application=tenant_a.app, workspace=tenant_a.project.workspaces.get(kind="DEV"),
                                     name="main", cluster=Cluster.objects.get(name="local"), release=release)
    deployment = Deployment.objects.create(runtime=runtime, release=release)
    transition(deployment, "deploying")
    assert not NotificationDelivery.objects.exists()  # only endings are sent
    transition(deployment, "failed", "image pull failed")
    run = PipelineRun.objects.create(application=tenant_a.app, source="version: '1.1'\n", name="build")
    move_run(run, "running")
    move_run(run, "success")
    assert all(r["sent"] for r in _send_all(tenant_a.project))
    events = [json.loads(r["body"]) for r in receiver.requests]
    assert sorted(e["event"] for e in events) == ["deployment.failed", "pipeline.succeeded"]
    failed = next(e for e in events if e["event"] == "deployment.failed")
    assert failed["data"]["reason"] == "image pull failed" and failed["data"]["runtime_name"] == "main"


@pytest.mark.parametrize("url", [
    "http://127.0.0.1:6379/", "http://localhost/", "http://app.localhost/", "http://[::1]/",
    "http://169.254.169.254/latest/meta-data/", "http://10.0.0.1/", "http://0.0.0.0/", "http://[::ffff:127.0.0.1]/",
    "http://2130706433/", "http://127.1/", "http://192.168.1.1/", "http://[fd00::1]/", "http://100.64.0.1/",
])
def test_private_targets_are_refused_and_nothing_saved(tenant_a, url):
    api = tenant_a.api()
    answer = api.post("/api/notifications/channels/", {
        "project": tenant_a.project.pk, "name": "x", "kind": "webhook", "url": url}, format="json")
    assert answer.status_code == 400, answer.content
    assert "url" in answer.json() and "DICE_NOTIFY_ALLOW_PRIVATE_HOSTS" in answer.json()["url"][0]
    assert not NotificationChannel.objects.exists()


@pytest.mark.parametrize("url,why", [
    ("file:///etc/passwd", "file://"), ("gopher://x/", "gopher://"), ("http://user:pw@example.org/", "password"),
    ("http:///nohost", "no host"), ("http://example.org:99999/", "port"), ("", "URL"),
])
def test_malformed_urls_are_refused(tenant_a, url, why):
    answer = tenant_a.api().post("/api/notifications/channels/", {
        "project": tenant_a.project.pk, "name": "x", "kind": "slack", "url": url}, format="json")
    assert answer.status_code == 400 and why in json.dumps(answer.json()), answer.content


def test_target_checked_again_before_each_send(tenant_a, receiver, settings):
    """A channel saved while the operator allowed private hosts is not sent once they are refused:
    the check runs on every send (a DNS name could also change its answer), and it is not retried."""
    settings.DICE_NOTIFY_ALLOW_PRIVATE_HOSTS = True
    channel, _ = services.create_channel(tenant_a.owner, tenant_a.project, name="h", kind="webhook", url=receiver.url)
    settings.DICE_NOTIFY_ALLOW_PRIVATE_HOSTS = False
    delivery = services.send_test(tenant_a.owner, channel)
    result = deliver(delivery.pk)
    assert not result["sent"] and result["retry_in"] is None and "loopback" in result["error"]
    delivery.refresh_from_db()
    assert delivery.status == "failed" and receiver.requests == []


def test_redirects_are_not_followed_and_timeouts_end_an_attempt(tenant_a, receiver, private_ok):
    channel, _ = services.create_channel(tenant_a.owner, tenant_a.project, name="h", kind="webhook", url=receiver.url)
    receiver.script = [(302, {"Location": "http://169.254.169.254/latest/meta-data/"}, 0.0)]
    result = deliver(services.send_test(tenant_a.owner, channel).pk)
    assert not result["sent"] and "redirect" in result["error"] and len(receiver.requests) == 1

    private_ok.DICE_NOTIFY_TIMEOUT = 0.5
    receiver.script = [(200, {}, 2.0)]
    started = time.monotonic()
    result = deliver(services.send_test(tenant_a.owner, channel).pk)
    assert not result["sent"] and "timed out" in result["error"] and time.monotonic() - started < 1.8


def test_tenancy_and_permissions(tenant_a, tenant_b, receiver, private_ok):
    channel, _ = services.create_channel(tenant_a.owner, tenant_a.project, name="h", kind="webhook", url=receiver.url)
    services.send_test(tenant_a.owner, channel)
    b = tenant_b.api()
    assert b.get("/api/notifications/channels/").json()["results"] == []
    assert b.get("/api/notifications/deliveries/").json()["results"] == []
    assert b.get(f"/api/notifications/channels/{channel.pk}/").status_code == 404
    assert b.post(f"/api/notifications/channels/{channel.pk}/test/").status_code == 404
    assert b.delete(f"/api/notifications/channels/{channel.pk}/").status_code == 404
    made = b.post("/api/notifications/channels/", {"project": tenant_a.project.pk, "name": "x", "kind": "email",
                                                   "recipients": "a@example.org"}, format="json")
    assert made.status_code == 400 and "project" in made.json()
    # a guest sees the channel but may not change or test it
    tenant_a.add_user("guest", "guest", tenant_a.project)
    from rest_framework.test import APIClient

    from apps.projects import services as project_services
    guest_client = APIClient()
    _, key = project_services.create_token(type(tenant_a.owner).objects.get(username="guest"), name="t")
    guest_client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    assert len(guest_client.get("/api/notifications/channels/").json()["results"]) == 1
    assert guest_client.post(f"/api/notifications/channels/{channel.pk}/test/").status_code == 403
    assert guest_client.delete(f"/api/notifications/channels/{channel.pk}/").status_code == 403
    assert NotificationChannel.objects.filter(pk=channel.pk).exists()


def test_page_adds_tests_and_lists(tenant_a, receiver, private_ok):
    client = tenant_a.browser_client()
    url = f"/orgs/{tenant_a.org.slug}/{tenant_a.project.slug}/notifications/"
    page = client.post(url, {"name": "ops", "kind": "webhook", "url": receiver.url, "events": ["deployment.failed"]})
    assert page.status_code == 200 and b"not shown again" in page.content
    channel = NotificationChannel.objects.get(name="ops")
    assert channel.events == ["deployment.failed"]
    private_ok.DICE_NOTIFY_ALLOW_PRIVATE_HOSTS = False
    bad = client.post(url, {"name": "evil", "kind": "webhook", "url": "http://169.254.169.254/"})
    assert bad.status_code == 400 and b"link-local" in bad.content
    assert not NotificationChannel.objects.filter(name="evil").exists()
    private_ok.DICE_NOTIFY_ALLOW_PRIVATE_HOSTS = True
    assert client.post(url, {"test": channel.pk}).status_code == 302
    _send_all(tenant_a.project)
    listing = client.get(url)
    assert b"ops" in listing.content and b"delivered" in listing.content and len(receiver.requests) == 1
    assert tenant_a.browser_client().get(
        f"/orgs/{tenant_a.org.slug}/other/notifications/").status_code == 404


def test_cli_manages_channels(tenant_a, dice_cli, receiver, private_ok):
    cli = dice_cli(tenant_a.owner)
    project = f"{tenant_a.org.slug}/{tenant_a.project.slug}"
    code, out, err = cli("notify", "add", project, "hooks", "--kind", "webhook", "--url", receiver.url,
                         "--events", "deployment.failed,pipeline.failed")
    assert code == 0, err
    assert "signing secret (shown once)" in out
    code, out, err = cli("notify", "add", project, "bad", "--kind", "webhook", "--url", receiver.url,
                         "--events", "nope")
    assert code != 0 and "unknown event nope" in err
    code, out, _ = cli("notify", "list", project)
    assert "hooks" in out and "deployment.failed,pipeline.failed" in out
    code, out, err = cli("notify", "test", project, "hooks")
    assert code == 0, err
    _send_all(tenant_a.project)
    code, out, _ = cli("notify", "deliveries", project)
    assert "delivered" in out and "test" in out
    code, out, err = cli("notify", "update", project, "hooks", "--disable")
    assert code == 0 and " no" in out, err
    assert cli("notify", "remove", project, "hooks")[0] == 0
    assert not NotificationChannel.objects.exists()


from tests.api_cases import ScopedAPICases, unique  # noqa: E402 - the shared suite, after the flows above


class TestChannelAPI(ScopedAPICases):
    basename = "notification-channel"
    update_data = {"events": ["deployment.failed"]}

    def make(self, tenant):
        channel, _ = services.create_channel(tenant.owner, tenant.project, name=unique("c"), kind="email",
                                             recipients="ops@example.org")
        return channel

    def create_data(self, tenant):
        return {"project": tenant.project.pk, "name": unique("n"), "kind": "email", "recipients": "a@example.org"}
