"""The context store of Kubernetes steps, with real parts: a live console (pytest-django's
live_server), the agent's restore and sidecar on real files, each step in its own "pod" root (a
temp directory standing for the pod's filesystem: the console's paths re-rooted under it), and
the step's spec as the Job's Secret carries it (scheduler.kubernetes.steps.step_objects)."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tarfile
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from agent import pod as agent_pod
from apps.pipelines import context_store, engine, paths, reference, steps
from apps.pipelines.models import CacheEntry, PipelineRun, TaskRun
from scheduler.kubernetes import steps as k8s_steps
from tests.conftest import ROOT

pytestmark = pytest.mark.django_db(transaction=True)

SOURCE = """
version: "1.1"
stages:
  - stage:
      - custom-script:
          alias: build
          commands: ["make"]
          caches: [{key: deps, path: deps}]
  - stage:
      - custom-script:
          alias: test
          commands: ["ls ${{ dirs.build }}"]
          caches: [{key: deps, path: deps}]
"""


class Lines:
    """What the agent prints: its JSON lines."""

    def __init__(self):
        self.text = ""

    def write(self, text):
        self.text += text

    def flush(self):
        pass

    @property
    def texts(self) -> list[str]:
        return [json.loads(line)["text"] for line in self.text.splitlines()]


@pytest.fixture
def console(live_server, settings, tmp_path, tenant_a):
    settings.DICE_PIPELINE_ROOT = str(tmp_path / "console")
    settings.DICE_CONSOLE_URL = live_server.url
    run = PipelineRun.objects.create(application=tenant_a.app, source=SOURCE, status="running")
    for position, alias in enumerate(("build", "test")):
        TaskRun.objects.create(run=run, alias=alias, type="custom-script", position=position, stage=position,
                               needs=["build"] if alias == "test" else [], status="running",
                               job_name=paths.job_name(run.pk, alias, 1))
    return run


def pod_spec(run: PipelineRun, alias: str, root: Path) -> dict:
    """step.json as the step's Secret holds it, with every path re-rooted under `root` (the pod)."""
    task = run.tasks.get(alias=alias)
    pipeline = reference.pipeline_of(run)
    action = pipeline.action(alias)
    ctx, masker = reference.context_for(run, pipeline)
    spec = steps.step_spec(task, run, action, pipeline, ctx, masker, {}, None)
    _, secret = k8s_steps.step_objects(steps.step_job(run, task, spec, action))
    spec = json.loads(secret["stringData"]["step.json"])

    def inside(path: str) -> str:
        return str(root / path.lstrip("/"))

    spec["workdir"] = inside(spec["workdir"])
    spec["dirs"] = {a: inside(p) for a, p in spec["dirs"].items()}
    spec["caches"] = [{**c, "path": inside(c["path"])} for c in spec["caches"]]  # archive: the console's path
    spec["metafile"], spec["result"] = inside(spec["metafile"]), inside(spec["result"])
    spec["output"] = {k: inside(v) for k, v in spec["output"].items()}
    return spec


def run_step(spec: dict, write, *, process: bool = False) -> tuple[dict, Lines]:
    """restore, the step (write(workdir) then exit 0), the sidecar: the pod's life. With process,
    the restore is `python -m agent restore --spec step.json`, as the init container runs it."""
    lines = Lines()
    if process:
        spec_file = Path(spec["output"]["stdout"]).parent.parent / "step.json"
        spec_file.parent.mkdir(parents=True, exist_ok=True)
        spec_file.write_text(json.dumps(spec))
        done = subprocess.run([sys.executable, "-S", "-m", "agent", "restore", "--spec", str(spec_file)],
                              cwd=ROOT, env={"PATH": os.environ["PATH"], "PYTHONPATH": str(ROOT)},
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        lines.write(done.stdout)
    else:
        assert agent_pod.restore_context(spec, out=lines) == 0
    workdir = Path(spec["workdir"])
    write(workdir)
    Path(spec["output"]["exit"]).write_text("0\n")
    result = agent_pod.sidecar(spec, out=lines, linger=False)
    return result, lines


def http(method: str, url: str, token: str | None, body: bytes | None = None) -> tuple[int, bytes]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    request = urllib.request.Request(url, data=body, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def tgz(files: dict[str, bytes], links: dict[str, str] | None = None) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        for name, target in (links or {}).items():
            info = tarfile.TarInfo(name)
            info.type, info.linkname = tarfile.SYMTYPE, target
            tar.addfile(info)
    return buffer.getvalue()


def files_under(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()} if root.exists() else set()


# ---- the round trip -----------------------------------------------------------------------------


def test_a_later_step_gets_the_directory_and_cache_of_an_earlier_one(console, tmp_path):
    run = console
    token = context_store.run_token(run.pk)
    spec_a = pod_spec(run, "build", tmp_path / "pod-a")
    assert spec_a["context"]["url"].startswith(context_store.console_url())

    def build(workdir: Path):
        (workdir / "bin").mkdir()
        (workdir / "bin" / "app").write_text("#!/bin/sh\necho app\n")
        (workdir / "README").write_text("built")
        (workdir / "deps").mkdir()
        (workdir / "deps" / "lib.txt").write_text("cached")

    result, lines_a = run_step(spec_a, build)
    assert result["exit_code"] == 0, result["error"]
    archive = paths.cache_archive(run.application.project_id, "deps")
    assert result["caches"] == [{"key": "deps", "archive": str(archive), "size": archive.stat().st_size}]
    assert any(t.startswith("context: stored dirs.build (3 files") for t in lines_a.texts), lines_a.texts
    # kept on the console: the tarball, its unpacked directory (for steps run by the console), the cache
    assert context_store.context_archive(run.pk, "build").is_file()
    assert (paths.action_dir(run.pk, "build") / "bin" / "app").read_text().endswith("echo app\n")
    # the engine's contract: a CacheEntry per cache of the result, pointing at the archive
    engine._record_caches(run.tasks.get(alias="build"), run, result["caches"])
    entry = CacheEntry.objects.get(project_id=run.application.project_id, key="deps")
    assert Path(entry.archive) == archive and entry.size == archive.stat().st_size

    spec_b = pod_spec(run, "test", tmp_path / "pod-b")  # a fresh pod: nothing of A's on its disk
    assert spec_b["dirs"] == {"build": str(tmp_path / "pod-b" / str(paths.action_dir(run.pk, "build")).lstrip("/"))}
    seen = {}
    result_b, lines_b = run_step(spec_b, lambda workdir: seen.update(
        build=files_under(Path(spec_b["dirs"]["build"])), deps=(workdir / "deps" / "lib.txt").read_text()),
        process=True)
    assert result_b["exit_code"] == 0, result_b["error"]
    assert seen == {"build": {"bin/app", "README", "deps/lib.txt"}, "deps": "cached"}
    assert os.access(Path(spec_b["dirs"]["build"]) / "bin" / "app", os.R_OK)
    texts = lines_b.texts
    assert any(t.startswith("context: restored dirs.build (3 files, ") and t.endswith(" B)") for t in texts), texts
    assert any(t.startswith("cache deps: restored into ") for t in texts), texts
    # the token never shows: not in any line, and it is the run's HMAC
    assert token not in lines_a.text + lines_b.text
    assert spec_b["context"]["token"] == token and token in spec_b["mask"]
    # a local step of the same project finds the cache where it looks for it
    assert paths.cache_archive(run.application.project_id, "deps") == archive


def test_the_restore_lines_open_the_step_log(console, tmp_path):
    spec = pod_spec(console, "build", tmp_path / "pod")
    restore_out = Lines()
    agent_pod.restore_context(spec, out=restore_out)
    Path(spec["output"]["exit"]).write_text("0\n")
    lines = Lines()
    agent_pod.sidecar(spec, out=lines, linger=False)
    assert lines.texts[:len(restore_out.texts)] == restore_out.texts
    assert "cache deps: nothing stored yet" in lines.texts


# ---- what the store refuses -----------------------------------------------------------------------


def test_a_bad_token_is_403_and_stores_nothing(console):
    run = console
    base = context_store.run_url(run.pk)
    body = tgz({"a.txt": b"x"})
    for token in ("", "not-the-token", context_store.run_token(run.pk + 1)):
        assert http("PUT", base + "dirs/build/", token, body)[0] == 403
        assert http("PUT", base + "caches/?key=deps", token, body)[0] == 403
        assert http("GET", base + "dirs/build/", token)[0] == 403
    assert not paths.run_dir(run.pk).exists()
    assert not paths.cache_archive(run.application.project_id, "deps").exists()
    # the right token works
    assert http("PUT", base + "dirs/build/", context_store.run_token(run.pk), body)[0] == 200


def test_missing_things_are_404(console):
    run = console
    base, token = context_store.run_url(run.pk), context_store.run_token(run.pk)
    assert http("GET", base + "dirs/build/", token)[0] == 404  # never stored
    assert http("GET", base + "caches/?key=deps", token)[0] == 404
    assert http("GET", base + "dirs/nope/", token)[0] == 404  # no such step
    assert http("PUT", base + "dirs/../", token, tgz({"a": b"x"}))[0] == 404
    other = run.pk + 1000
    assert http("GET", context_store.run_url(other) + "dirs/build/", context_store.run_token(other))[0] == 404


def test_too_large_is_413_and_stores_nothing(console, settings, tmp_path):
    settings.DICE_PIPELINE_CONTEXT_MAX_BYTES = 2000
    run = console
    base, token = context_store.run_url(run.pk), context_store.run_token(run.pk)
    big = tgz({"noise.bin": os.urandom(20_000)})
    code, body = http("PUT", base + "dirs/build/", token, big)
    assert code == 413 and b"DICE_PIPELINE_CONTEXT_MAX_BYTES" in body
    assert http("PUT", base + "caches/?key=deps", token, big)[0] == 413
    assert files_under(paths.run_dir(run.pk)) == set()
    assert not paths.cache_archive(run.application.project_id, "deps").exists()

    # the agent: refused before sending when it knows the limit, by the console otherwise
    def noise(workdir: Path):
        (workdir / "noise.bin").write_bytes(os.urandom(20_000))

    spec = pod_spec(run, "build", tmp_path / "pod-1")
    assert spec["context"]["max_bytes"] == 2000
    result, _ = run_step(spec, noise)
    assert result["exit_code"] == 1 and "DICE_PIPELINE_CONTEXT_MAX_BYTES" in result["error"]
    spec = pod_spec(run, "build", tmp_path / "pod-2")
    spec["context"]["max_bytes"] = 0
    result, _ = run_step(spec, noise)
    assert result["exit_code"] == 1 and "HTTP 413" in result["error"], result["error"]
    assert files_under(paths.run_dir(run.pk)) == set()


def test_uploads_to_a_finished_run_are_409(console):
    run = console
    base, token = context_store.run_url(run.pk), context_store.run_token(run.pk)
    assert http("PUT", base + "dirs/build/", token, tgz({"a.txt": b"1"}))[0] == 200
    PipelineRun.objects.filter(pk=run.pk).update(status="cancelled")
    assert http("PUT", base + "dirs/build/", token, tgz({"a.txt": b"2"}))[0] == 409
    assert http("PUT", base + "caches/?key=deps", token, tgz({"a.txt": b"2"}))[0] == 409
    assert (paths.action_dir(run.pk, "build") / "a.txt").read_text() == "1"
    assert http("GET", base + "dirs/build/", token)[0] == 200  # reading is still fine


def test_a_body_that_is_not_a_tarball_is_400(console):
    run = console
    base, token = context_store.run_url(run.pk), context_store.run_token(run.pk)
    assert http("PUT", base + "dirs/build/", token, b"hello, not gzip")[0] == 400
    assert http("PUT", base + "caches/?key=deps", token, b"\x1f\x8b garbage")[0] == 400
    assert files_under(paths.run_dir(run.pk)) == set()
    assert not paths.cache_archive(run.application.project_id, "deps").exists()


def test_entries_pointing_outside_are_skipped_on_the_console_and_in_the_pod(console, tmp_path):
    run = console
    base, token = context_store.run_url(run.pk), context_store.run_token(run.pk)
    evil = tgz({"ok.txt": b"fine", "../escaped.txt": b"no", "sub/../../escaped2.txt": b"no",
                "/abs.txt": b"no"}, links={"passwd": "/etc/passwd", "up": "../../.."})
    code, body = http("PUT", base + "dirs/build/", token, evil)
    assert code == 200, body
    answer = json.loads(body)
    assert answer["files"] == 2 and len(answer["skipped"]) >= 4  # ok.txt and abs.txt (made relative)
    action_dir = paths.action_dir(run.pk, "build")
    assert files_under(paths.run_dir(run.pk) / "dirs") == {"build/ok.txt", "build/abs.txt"}
    assert not (action_dir / "passwd").exists() and not (action_dir / "up").exists()

    spec = pod_spec(run, "test", tmp_path / "pod")
    lines = Lines()
    assert agent_pod.restore_context(spec, out=lines) == 0
    build = Path(spec["dirs"]["build"])
    assert files_under(tmp_path / "pod") == {"dice/step/restore.log", *(
        str(build.relative_to(tmp_path / "pod") / name) for name in ("ok.txt", "abs.txt"))}
    assert not (tmp_path / "escaped.txt").exists()
    assert any("skipped an entry" in t and "outside the destination" in t for t in lines.texts), lines.texts
    assert any(t.startswith("context: restored dirs.build (2 files") for t in lines.texts)


# ---- failures reach the step's result -------------------------------------------------------------


def test_a_directory_that_cannot_be_restored_fails_the_step(console, tmp_path, monkeypatch):
    monkeypatch.setattr(agent_pod, "BACKOFF", 0.01)
    spec = pod_spec(console, "test", tmp_path / "pod")
    spec["context"]["url"] = "http://127.0.0.1:9/api/pipeline-context/1/"  # nothing listens there
    lines = Lines()
    assert agent_pod.restore_context(spec, out=lines) == 0  # the pod goes on, the step learns why
    assert Path(spec["output"]["restore_failed"]).read_text().startswith("dirs.build: no answer after 3 tries")
    Path(spec["output"]["exit"]).write_text("1\n")  # run.sh runs nothing when restore failed
    result = agent_pod.sidecar(spec, out=lines, linger=False)
    assert result["exit_code"] == 1
    assert result["error"].startswith("restoring the context failed: dirs.build: no answer")
    assert result["caches"] == []


def test_a_wrong_token_in_the_pod_fails_the_step_clearly(console, tmp_path):
    spec = pod_spec(console, "test", tmp_path / "pod")
    spec["context"]["token"] = "forged"
    agent_pod.restore_context(spec, out=Lines())
    assert "HTTP 403" in Path(spec["output"]["restore_failed"]).read_text()


def test_without_a_console_url_the_restore_says_nothing_is_carried(console, settings, tmp_path):
    settings.DICE_CONSOLE_URL = ""
    spec = pod_spec(console, "test", tmp_path / "pod")
    assert "context" not in spec
    lines = Lines()
    assert agent_pod.restore_context(spec, out=lines) == 0
    assert lines.texts[0] == agent_pod.NOT_CARRIED
    assert "DICE_CONSOLE_URL" in lines.texts[0]
    assert Path(spec["dirs"]["build"]).is_dir()


# ---- the Job and its Secret ---------------------------------------------------------------------------


def _objects(run: PipelineRun, alias: str):
    task = run.tasks.get(alias=alias)
    pipeline = reference.pipeline_of(run)
    action = pipeline.action(alias)
    ctx, masker = reference.context_for(run, pipeline)
    spec = steps.step_spec(task, run, action, pipeline, ctx, masker, {}, None)
    return k8s_steps.step_objects(steps.step_job(run, task, spec, action))


def test_the_token_travels_only_in_the_secret(console, settings):
    settings.DICE_CONSOLE_URL = "http://dice-console.dice.svc:8000/"
    job, secret = _objects(console, "test")
    token = context_store.run_token(console.pk)
    step_json = json.loads(secret["stringData"]["step.json"])
    assert step_json["context"] == {"url": f"http://dice-console.dice.svc:8000/api/pipeline-context/{console.pk}/",
                                    "token": token, "max_bytes": context_store.max_bytes()}
    assert token in step_json["mask"]
    assert token not in json.dumps(job)  # not in any env, command or annotation of the Job
    assert all(token not in value for key, value in secret["stringData"].items() if key != "step.json")
    pod = job["spec"]["template"]["spec"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    (step,) = pod["containers"]
    step_volumes = {m["name"] for m in step["volumeMounts"]}
    for name in step_volumes & {"spec", "agent-spec"}:  # the step container does not see step.json
        assert "step.json" not in {item["key"] for item in volumes[name]["secret"]["items"]}
    for container in pod["initContainers"]:
        mounted = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
        assert mounted["agent-spec"] == k8s_steps.SPEC_MOUNT
        assert container["command"][-1] == f"{k8s_steps.SPEC_MOUNT}/step.json"
        assert token not in json.dumps(container)


def test_without_a_console_url_the_secret_has_no_context(console, settings):
    settings.DICE_CONSOLE_URL = ""
    _, secret = _objects(console, "test")
    step_json = json.loads(secret["stringData"]["step.json"])
    assert "context" not in step_json
    assert context_store.run_token(console.pk) not in json.dumps(secret)


def test_run_sh_runs_nothing_when_the_restore_failed(console, tmp_path, monkeypatch):
    """run.sh with its mount points moved under tmp_path, run by a real /bin/sh."""
    monkeypatch.setattr(k8s_steps, "STEP_MOUNT", str(tmp_path / "step"))
    monkeypatch.setattr(k8s_steps, "SPEC_MOUNT", str(tmp_path / "spec"))
    (tmp_path / "spec").mkdir()
    (tmp_path / "step").mkdir()
    (tmp_path / "spec" / "script.sh").write_text("echo ran > ran.txt\n")
    spec = {"shell": "/bin/sh"}
    (tmp_path / "spec" / "run.sh").write_text(k8s_steps.run_sh(spec))
    (tmp_path / "step" / "stored").touch()  # the sidecar has stored: no waiting
    env = {"PATH": os.environ["PATH"], "WORKDIR": str(tmp_path / "work"), "METAFILE": str(tmp_path / "step" / "meta")}

    (tmp_path / "step" / "restore-failed").write_text("dirs.build: HTTP 403\n")
    done = subprocess.run(["/bin/sh", str(tmp_path / "spec" / "run.sh")], env=env, timeout=30)
    assert done.returncode == 1 and (tmp_path / "step" / "exit").read_text() == "1\n"
    assert not (tmp_path / "work" / "ran.txt").exists()

    (tmp_path / "step" / "restore-failed").unlink()
    done = subprocess.run(["/bin/sh", str(tmp_path / "spec" / "run.sh")], env=env, timeout=30)
    assert done.returncode == 0 and (tmp_path / "step" / "exit").read_text() == "0\n"
    assert (tmp_path / "work" / "ran.txt").read_text() == "ran\n"
