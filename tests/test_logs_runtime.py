"""Runtime logs: the per-service follower (numbering per replica, reopening an ended stream without
repeating lines, resume, stop with the last subscriber) and its delivery over /ws/logs/; and
the real local executor followed through a service that prints."""

from __future__ import annotations

import threading
import time

import pytest

from scheduler.base import Event, LogLine
from tests.logs_helpers import connect_logs, run_async


class FakeSource:
    """Executor.logs(follow=True) stand-in: each open yields what `rounds` holds, then ends or blocks."""

    def __init__(self, rounds):
        self.rounds = list(rounds)
        self.opened = 0
        self.release = threading.Event()

    def open(self, tail):
        self.opened += 1
        lines = self.rounds.pop(0) if self.rounds else []
        yield from lines
        if not self.rounds:
            self.release.wait(5)  # a followed stream with nothing new

    def events(self):
        return [Event(1.0, "Warning", "BackOff", "restarting failed container", "Pod/web-0")]


def test_follower_numbers_per_replica_and_survives_reopening():
    from apps.logs.followers import ServiceFollower

    a1 = [LogLine("web-0", n, 10.0 + n, f"a{n}") for n in range(1, 4)]
    b1 = [LogLine("web-1", n, 10.5 + n, f"b{n}") for n in range(1, 3)]
    # After the stream ended (a pod restarted), it is opened again: old lines come back, then new ones,
    # and the restarted container numbers its lines from 1 again (with later timestamps).
    again = a1 + b1 + [LogLine("web-0", 1, 50.0, "a-restarted")]
    source = FakeSource([a1 + b1, again])
    got = []
    follower = ServiceFollower((1, "web"), source.open, source.events)
    sub_id, backlog, _ = follower.subscribe(lambda kind, items: got.append((kind, items)), {})
    assert backlog == []
    follower.start()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        lines = [line for kind, items in got if kind == "lines" for line in items]
        if len(lines) >= 6 and any(kind == "events" for kind, _ in got):
            break
        time.sleep(0.02)
    lines = [line for kind, items in got if kind == "lines" for line in items]
    assert [(line[4], line[0], line[3]) for line in lines] == [
        ("web-0", 1, "a1"), ("web-0", 2, "a2"), ("web-0", 3, "a3"), ("web-1", 1, "b1"), ("web-1", 2, "b2"),
        ("web-0", 4, "a-restarted")]
    assert source.opened == 2
    # A second subscriber resumes from what it had per replica.
    _, backlog, events = follower.subscribe(lambda *a: None, {"web-0": 2, "web-1": 2})
    assert [(line[4], line[0]) for line in backlog] == [("web-0", 3), ("web-0", 4)]
    assert events[0]["reason"] == "BackOff"
    follower.unsubscribe(2)
    assert not follower.stopped.is_set()
    follower.unsubscribe(sub_id)
    assert follower.stopped.is_set()
    source.release.set()


@pytest.mark.django_db(transaction=True)
def test_runtime_stream_over_websocket_and_isolation(tenant_a, tenant_b, monkeypatch):
    from apps.clusters.models import Cluster
    from apps.deploy.models import Runtime
    from apps.logs import followers

    workspace = tenant_a.project.workspaces.get(kind="DEV")
    runtime = Runtime.objects.create(application=tenant_a.app, workspace=workspace, name="main",
                                     cluster=Cluster.local())
    source = FakeSource([[LogLine(f"web-{n % 2}", n // 2 + 1, float(n), f"\x1b[32mline {n}\x1b[0m")
                          for n in range(10)]])
    monkeypatch.setattr(followers, "_sources", lambda rt, service: (source.open, source.events))
    stream = f"runtime:{runtime.pk}:web"

    async def scenario():
        comm, _, _ = await connect_logs(tenant_a.owner)
        await comm.send_json_to({"type": "subscribe", "stream": stream, "from": {}})
        lines, events = [], []
        deadline = time.monotonic() + 10
        while (len(lines) < 10 or not events) and time.monotonic() < deadline:
            message = await comm.receive_json_from(timeout=5)
            if message["type"] == "lines":
                lines.extend(message["lines"])
            elif message["type"] == "events":
                events.extend(message["events"])
        assert followers.active() == [(runtime.pk, "web")]
        await comm.disconnect()
        other, _, _ = await connect_logs(tenant_b.owner)
        await other.send_json_to({"type": "subscribe", "stream": stream, "from": {}})
        closed = await other.receive_output(timeout=5)
        return lines, events, closed

    lines, events, closed = run_async(scenario)
    source.release.set()
    assert sorted((line[4], line[0]) for line in lines) == sorted(
        [("web-0", n) for n in range(1, 6)] + [("web-1", n) for n in range(1, 6)])
    assert events[0]["reason"] == "BackOff"
    assert closed == {"type": "websocket.close", "code": 4404}
    assert followers.active() == []  # the last subscriber left: the follower stopped


def test_local_executor_logs_followed_for_real(tmp_path):
    """LocalExecutor.logs(follow=True) through a follower: the shims' per-replica files, read as
    they are written, merged with replica tags."""
    from apps.logs.followers import ServiceFollower
    from scheduler.base import RuntimeRef
    from scheduler.local import LocalExecutor

    executor = LocalExecutor(tmp_path / "local")
    ref = RuntimeRef("acme", "shop", "guestbook", "DEV", "main")
    logs_dir = executor.runtime_dir(ref.namespace) / "logs"
    logs_dir.mkdir(parents=True)
    got = []
    follower = ServiceFollower((9, "web"), lambda tail: executor.logs(ref, "web", follow=True, tail=tail), lambda: [])
    follower.subscribe(lambda kind, items: got.extend(items), {})
    try:
        follower.start()
        with open(logs_dir / "web-0.log", "a") as zero, open(logs_dir / "web-1.log", "a") as one:
            for n in range(1, 51):
                (zero if n % 2 else one).write(f"{(n + 1) // 2}\t{time.time()}\tstdout\tline {n}\n")
                (zero if n % 2 else one).flush()
                time.sleep(0.005)
        deadline = time.monotonic() + 10
        while len(got) < 50 and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        follower.stopped.set()
        executor.close()
    assert sorted(line[3] for line in got) == sorted(f"line {n}" for n in range(1, 51))
    assert sorted((line[4], line[0]) for line in got) == sorted(
        [("web-0", n) for n in range(1, 26)] + [("web-1", n) for n in range(1, 26)])


def _runtime_of(tenant):
    from apps.clusters.models import Cluster
    from apps.deploy.models import Runtime

    return Runtime.objects.create(application=tenant.app, workspace=tenant.project.workspaces.get(kind="DEV"),
                                  name="main", cluster=Cluster.local())


@pytest.mark.django_db
def test_runtime_page_section_and_viewer_page(tenant_a, tenant_b, rf):
    from django.template.loader import render_to_string

    runtime = _runtime_of(tenant_a)
    request = rf.get("/?logs=web")
    html = render_to_string("logs/_runtime_logs.html", {
        "runtime": runtime, "live": {"services": [{"name": "web"}, {"name": "worker"}]}, "request": request})
    assert f'data-log-stream="runtime:{runtime.pk}:web"' in html
    assert f"/logs/runtimes/{runtime.pk}/web/raw/" in html and "log-events" in html
    assert f"runtime:{runtime.pk}:worker" not in html  # only the chosen service's panel opens a follower
    page = tenant_a.browser_client().get(f"/logs/runtimes/{runtime.pk}/web/")
    assert page.status_code == 200 and f'data-log-stream="runtime:{runtime.pk}:web"' in page.content.decode()
    assert tenant_b.browser_client().get(f"/logs/runtimes/{runtime.pk}/web/").status_code == 404


@pytest.mark.django_db(transaction=True)
def test_cli_runtime_logs_against_live_server(live_server, tenant_a, tenant_b, monkeypatch, capsys):
    from apps.logs import views
    from dice_cli.main import main

    runtime = _runtime_of(tenant_a)
    calls = []

    def fake_lines(rt, service, tail):
        calls.append((rt.pk, service, tail))
        return [LogLine("web-0", 1, 1.0, "hello"), LogLine("web-1", 1, 2.0, "\x1b[31mworld\x1b[0m")]

    monkeypatch.setattr(views, "_runtime_lines", fake_lines)
    monkeypatch.setenv("DICE_SERVER", live_server.url)
    monkeypatch.setenv("DICE_TOKEN", tenant_a.token)
    assert main(["runtime", "logs", "a-org/a-proj/a-app", "--workspace", "DEV", "--service", "web",
                 "--tail", "50"]) == 0
    assert capsys.readouterr().out.splitlines() == ["[web-0] hello", "[web-1] \x1b[31mworld\x1b[0m"]
    assert calls == [(runtime.pk, "web", 50)]
    assert tenant_b.api().get(f"/api/logs/runtimes/{runtime.pk}/web/").status_code == 404


@pytest.mark.django_db(transaction=True)
def test_runtime_logs_are_masked_by_the_console_whatever_the_cluster(tenant_a, monkeypatch):
    """A cluster whose log fetch returns what the service printed (a Kubernetes pod's log, which no
    shim masked): the console masks the application's secret variables before any viewer sees them,
    on the raw log, the API and the followed stream."""
    from apps.clusters import services as cluster_services
    from apps.deploy import variables
    from apps.logs import followers

    runtime = _runtime_of(tenant_a)
    secret = "pod-SECRET-Value-4411"
    variables.set_variable(tenant_a.owner, tenant_a.app, "DEV", name="API_TOKEN", value=secret, secret=True)
    variables.set_variable(tenant_a.owner, tenant_a.app, "DEV", name="MODE", value="visible", secret=False)
    printed = [LogLine("web-0", 1, 1.0, f"token={secret}"), LogLine("web-0", 2, 2.0, "mode=visible"),
               LogLine("web-1", 1, 3.0, f"ends with {secret[:9]}"), LogLine("web-1", 2, 4.0, secret[9:])]

    class PodLogs:
        def logs(self, ref, service, *, follow=False, tail=None):
            return iter(printed)

        def events(self, ref, service=None):
            return []

    monkeypatch.setattr(cluster_services, "cluster_executor", lambda cluster: PodLogs())
    raw = b"".join(tenant_a.browser_client().get(f"/logs/runtimes/{runtime.pk}/web/raw/").streaming_content).decode()
    api = tenant_a.api().get(f"/api/logs/runtimes/{runtime.pk}/web/").content.decode()
    for body in (raw, api):
        assert secret not in body and secret[9:] not in body and "token=******" in body and "mode=visible" in body
    open_logs, _ = followers._sources(runtime, "web")
    texts = [line.text for line in open_logs(None)]
    assert texts == ["token=******", "mode=visible", "ends with ******", "******"]
