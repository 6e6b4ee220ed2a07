"""Chunked log storage, the API and raw download, ANSI rendering, retention, and `dice logs`."""

from __future__ import annotations

import datetime as dt
import json
import shutil
import subprocess
import threading

import pytest

from apps.pipelines import steplogs
from tests.conftest import ROOT
from tests.logs_helpers import make_task_run


def _write(task, count: int, batch: int = 1000, stream: str = "stdout", fmt: str = "line {n}") -> None:

    for start in range(1, count + 1, batch):
        steplogs.append_lines(task, [fmt.format(n=n) for n in range(start, min(count, start + batch - 1) + 1)], stream)


def test_100k_lines_are_few_rows_and_cheap_to_read_from_any_line(tenant_a, django_assert_max_num_queries):
    from apps.logs.models import CHUNK_LINES, LogChunk
    from apps.logs.services import read_task_lines

    task = make_task_run(tenant_a)
    _write(task, 100_000, batch=700)  # batches that do not line up with chunks: the last chunk is filled up
    task.refresh_from_db()
    assert task.last_line == 100_000
    chunks = LogChunk.objects.filter(task_run=task)
    assert chunks.count() == 100_000 // CHUNK_LINES
    assert list(chunks.order_by("first").values_list("first", flat=True)[:3]) == [1, 1001, 2001]
    with django_assert_max_num_queries(1):
        lines = read_task_lines(task.pk, after=54_321, limit=5)
    assert [(line.number, line.text) for line in lines] == [(n, f"line {n}") for n in range(54_322, 54_327)]
    assert read_task_lines(task.pk, after=99_998) and read_task_lines(task.pk, after=99_998)[-1].number == 100_000


def test_pump_of_a_step_and_system_lines_share_one_numbering(tenant_a):
    from apps.logs.services import read_task_lines

    task = make_task_run(tenant_a)
    steplogs.append_lines(task, ["restoring caches"])
    _write(task, 3, stream="stderr", fmt="oops {n}")
    lines = read_task_lines(task.pk)
    assert [(ln.number, ln.stream, ln.text) for ln in lines] == [
        (1, "system", "restoring caches"), (2, "stderr", "oops 1"), (3, "stderr", "oops 2"), (4, "stderr", "oops 3")]


def test_api_log_after_n_reads_from_chunks(tenant_a, tenant_b):
    task = make_task_run(tenant_a, status="success")
    _write(task, 2500)
    body = tenant_a.api().get(f"/api/task-runs/{task.pk}/log/?after=1998").json()
    assert body["lines"][0]["number"] == 1999 and body["lines"][0]["text"] == "line 1999"
    assert body["last_line"] == 2500
    assert tenant_b.api().get(f"/api/task-runs/{task.pk}/log/").status_code == 404


def test_raw_download_streams_the_whole_log_to_members_only(tenant_a, tenant_b):
    task = make_task_run(tenant_a, status="success")
    _write(task, 2345, fmt="l{n} \x1b[31mred\x1b[0m")
    response = tenant_a.browser_client().get(f"/logs/tasks/{task.pk}/raw/")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain")
    assert "attachment" in response["Content-Disposition"]
    text = b"".join(response.streaming_content).decode()
    assert text.splitlines() == [f"l{n} \x1b[31mred\x1b[0m" for n in range(1, 2346)]
    by_token = tenant_a.api().get(f"/api/logs/tasks/{task.pk}/raw/")
    assert by_token.status_code == 200 and b"".join(by_token.streaming_content).decode() == text
    assert tenant_b.browser_client().get(f"/logs/tasks/{task.pk}/raw/").status_code == 404
    assert tenant_b.api().get(f"/api/logs/tasks/{task.pk}/raw/").status_code == 404
    from django.test import Client

    assert Client().get(f"/logs/tasks/{task.pk}/raw/").status_code == 401


def test_log_pages_embed_the_viewer(tenant_a, tenant_b):
    task = make_task_run(tenant_a, status="failed")
    _write(task, 3, fmt="step {n} \x1b[1;31mERROR\x1b[0m <b>")
    page = tenant_a.browser_client().get(task.get_log_url())
    html = page.content.decode()
    assert page.status_code == 200
    assert f'data-log-stream="task:{task.pk}"' in html and "dice/logviewer.js" in html
    assert '<span class="ansi-bold ansi-red">ERROR</span> &lt;b&gt;' in html  # noscript rendering
    assert f"/logs/tasks/{task.pk}/raw/" in html
    assert tenant_a.browser_client().get(f"/logs/tasks/{task.pk}/").status_code == 200
    assert tenant_b.browser_client().get(f"/logs/tasks/{task.pk}/").status_code == 404


def test_secret_masking_happens_before_persistence(tenant_a):
    from apps.logs.models import LogChunk
    from apps.pipelines import secrets

    masker = secrets.Masker(["hunter2-secret"])
    task = make_task_run(tenant_a)

    steplogs.append_lines(task, [masker("password is hunter2-secret")])
    stored = json.dumps(list(LogChunk.objects.filter(task_run=task).values_list("lines", flat=True)))
    assert "hunter2-secret" not in stored


def test_ansi_to_html():
    from apps.logs.ansi import strip, to_html

    assert to_html("plain <tag> & \"q\"") == "plain &lt;tag&gt; &amp; &quot;q&quot;"
    assert to_html("\x1b[31mred\x1b[0m normal") == '<span class="ansi-red">red</span> normal'
    assert to_html("\x1b[1;32mok\x1b[22m still green\x1b[39m") == (
        '<span class="ansi-bold ansi-green">ok</span><span class="ansi-green"> still green</span>')
    assert to_html("\x1b[38;5;196mx\x1b[48;2;1;2;3my") == (
        '<span style="color:rgb(255,0,0)">x</span>'
        '<span style="color:rgb(255,0,0);background-color:rgb(1,2,3)">y</span>')
    assert to_html("\x1b[92mbright\x1b[m\x1b[2Kgone\x1b[A") == '<span class="ansi-bright-green">bright</span>gone'
    assert strip("\x1b[1;31mE\x1b[0m") == "E"


@pytest.mark.needs_binary("node", "nodejs")
def test_javascript_ansi_matches_python():
    from apps.logs.ansi import to_html

    samples = ["plain <tag> & \"q\"", "\x1b[31mred\x1b[0m normal", "\x1b[1;32mok\x1b[22m still green\x1b[39m",
               "\x1b[38;5;196mx\x1b[48;2;1;2;3my", "\x1b[92mbright\x1b[m\x1b[2Kgone\x1b[A", "\x1b[4;44mu\x1b[24m"]
    module = json.dumps(str(ROOT / "static/dice/logviewer.js"))
    script = (f"const v = require({module}); const s = JSON.parse(require('fs').readFileSync(0, 'utf8'));"
              "process.stdout.write(JSON.stringify(s.map(v.ansiToHtml)));")
    node = shutil.which("node") or shutil.which("nodejs")
    out = subprocess.run([node, "-e", script], input=json.dumps(samples), capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == [to_html(s) for s in samples]


def test_retention_deletes_old_finished_logs_only(tenant_a, settings):
    from django.utils import timezone

    from apps.logs import tasks
    from apps.logs.models import LogChunk
    from apps.pipelines.models import TaskRun

    settings.DICE_LOG_RETENTION_DAYS = 7
    old = make_task_run(tenant_a, alias="old", status="success")
    recent = make_task_run(tenant_a, alias="recent", status="success")
    running = make_task_run(tenant_a, alias="running")
    for task in (old, recent, running):
        _write(task, 10)
    now = timezone.now()
    TaskRun.objects.filter(pk=old.pk).update(finished=now - dt.timedelta(days=8))
    TaskRun.objects.filter(pk=recent.pk).update(finished=now - dt.timedelta(days=6))
    assert tasks.expire.apply().get() == 1
    assert set(LogChunk.objects.values_list("task_run__alias", flat=True)) == {"recent", "running"}
    settings.DICE_LOG_RETENTION_DAYS = 0
    TaskRun.objects.filter(pk=recent.pk).update(finished=now - dt.timedelta(days=800))
    assert tasks.expire.apply().get() == 0
    assert "logs-expire" in settings.CELERY_BEAT_SCHEDULE


@pytest.mark.django_db(transaction=True)
def test_cli_dice_logs_follows_until_complete(live_server, tenant_a, monkeypatch, capsys):
    from apps.pipelines import states
    from dice_cli.main import main
    from tests.pipelines_helpers import retry_locked

    build = make_task_run(tenant_a, alias="build")
    other = make_task_run(tenant_a, alias="other", status="success")
    run = build.run
    other.run = run
    other.save()
    retry_locked(_write, other, 5, fmt="other {n}")
    monkeypatch.setenv("DICE_SERVER", live_server.url)
    monkeypatch.setenv("DICE_TOKEN", tenant_a.token)

    def produce():
        import time

        from django.db import connection

        try:
            for i in range(5):
                for start in range(1, 301, 100):  # one transaction per batch: retrying one is safe
                    texts = [f"b{i}-{n}" for n in range(start, start + 100)]
                    retry_locked(steplogs.append_lines, build, texts, "stdout")
                time.sleep(0.2)
            retry_locked(states.move_task, build, "success", "exit code 0")
        finally:
            connection.close()

    producer = threading.Thread(target=produce)
    producer.start()
    try:
        code = main(["logs", f"{run.pk}/build", "-f", "--timeout", "60"])
        assert code == 0, capsys.readouterr().err
    finally:
        producer.join()
    out = capsys.readouterr().out.splitlines()
    assert out == [f"b{i}-{n}" for i in range(5) for n in range(1, 301)]
    assert main(["logs", str(run.pk)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 1505 and "[other] other 5" in out and out.count("[build] b4-300") == 1


def test_the_page_without_javascript_gets_the_first_and_last_lines_and_a_download_link(tenant_a):
    from apps.logs.services import NOSCRIPT_HEAD, NOSCRIPT_TAIL

    task = make_task_run(tenant_a, status="success")
    _write(task, 20_000, batch=5000, fmt="line number {n} of a long log")
    html = tenant_a.browser_client().get(task.get_log_url()).content.decode()
    assert 'id="L1"' in html and f'id="L{NOSCRIPT_HEAD}"' in html
    assert f'id="L{NOSCRIPT_HEAD + 1}"' not in html and 'id="L10000"' not in html
    assert f'id="L{20_000 - NOSCRIPT_TAIL + 1}"' in html and 'id="L20000"' in html
    assert f'id="L{20_000 - NOSCRIPT_TAIL}"' not in html
    omitted = 20_000 - NOSCRIPT_HEAD - NOSCRIPT_TAIL
    assert f"{omitted} lines not shown" in html and f'href="/logs/tasks/{task.pk}/raw/"' in html
    assert len(html) < 150_000  # not the whole log (~1 MB of HTML)

    short = make_task_run(tenant_a, status="success")
    _write(short, 150)
    html = tenant_a.browser_client().get(short.get_log_url()).content.decode()
    assert all(f'id="L{n}"' in html for n in range(1, 151)) and "not shown" not in html


def test_many_streams_appended_together_are_numbered_per_stream_in_a_bounded_number_of_queries(
        tenant_a, django_assert_max_num_queries):
    """steplogs.append_lines_many: one transaction for many task runs; each keeps its own numbers,
    a task named twice gets both batches in order, and the query count does not grow with the
    number of streams (the per-append fixed cost is paid once per call)."""
    from apps.logs.services import read_task_lines

    tasks = [make_task_run(tenant_a) for _ in range(3)]
    for task in tasks:
        steplogs.append_lines(task, ["first"], "stdout")
    more = [make_task_run(tenant_a, alias=f"more{i}") for i in range(20)]
    with django_assert_max_num_queries(12):  # lock, tails, tails' lines, insert, counters, savepoints
        steplogs.append_lines_many([(t, [f"{t.pk}-{n}" for n in range(40)], "stdout") for t in tasks + more]
                                   + [(tasks[0], ["again"], "stderr")])
    for task in tasks + more:
        task.refresh_from_db()
        lines = read_task_lines(task.pk)
        assert [line.number for line in lines] == list(range(1, len(lines) + 1))
        assert task.last_line == len(lines)
    first = read_task_lines(tasks[0].pk)
    assert [line.text for line in first][:2] == ["first", f"{tasks[0].pk}-0"] and first[-1].text == "again"
    assert first[-1].stream == "stderr" and len(first) == 42
    assert len(read_task_lines(more[0].pk)) == 40


def test_a_topped_up_chunk_keeps_every_text_exactly(tenant_a):
    """The last chunk is topped up by the database (jsonb || on PostgreSQL, the JSON text spliced on
    SQLite) without reading it back: quotes, backslashes, escapes, brackets and non-ASCII survive,
    and the chunk stays one row."""
    from apps.logs.models import LogChunk
    from apps.logs.services import read_task_lines

    task = make_task_run(tenant_a)
    tricky = ['say "hi"', "back\\slash", "\x1b[31mred\x1b[0m", "], [1, 2]", "é ü 日本", "", "{\"n\": 1}"]
    sent = []
    for batch in range(4):
        texts = [f"{batch}:{text}" for text in tricky]
        steplogs.append_lines(task, texts, "stdout")
        sent += texts
    lines = read_task_lines(task.pk)
    assert [line.text for line in lines] == sent
    assert [line.number for line in lines] == list(range(1, len(sent) + 1))
    assert LogChunk.objects.filter(task_run=task).count() < 4  # topped up, not a row per append
