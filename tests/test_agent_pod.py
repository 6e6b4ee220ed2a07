"""The agent's Kubernetes roles, on real files and a real process: restore and the sidecar."""

import json
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from agent.pod import NOT_CARRIED, human, restore_context, sidecar
from tests.conftest import ROOT


def _spec(tmp_path: Path) -> dict:
    step = tmp_path / "step"
    step.mkdir()
    return {
        "task_run": 1, "job": "p1-build-1", "alias": "build", "workdir": str(tmp_path / "work"),
        "dirs": {"checkout": str(tmp_path / "dirs" / "checkout")}, "mask": ["s3cret"],
        "caches": [{"key": "deps", "path": str(tmp_path / "work" / "deps"), "archive": str(tmp_path / "deps.tgz")}],
        "metafile": str(step / "metafile"), "result": str(step / "result.json"),
        "output": {"stdout": str(step / "stdout.log"), "stderr": str(step / "stderr.log"),
                   "exit": str(step / "exit"), "stored": str(step / "stored")},
    }


class _Collected:
    """What the agent prints, kept."""

    def __init__(self) -> None:
        self.text = ""

    def write(self, text: str) -> None:
        self.text += text

    def flush(self) -> None:
        pass


def _fake_step(spec: dict, code: int) -> None:
    """What run.sh does in the step container: output that grows, then the exit code."""
    out = Path(spec["output"]["stdout"])
    with out.open("a") as fh:
        for i in range(50):
            fh.write(f"line {i} token s3cret\n")
            fh.flush()
            if i % 10 == 0:
                time.sleep(0.05)
        fh.write("action meta: image=registry.example/app:1\n")
    Path(spec["output"]["stderr"]).write_text("a warning\nno newline at the end")
    Path(spec["metafile"]).write_text("version=1.2.3\n")
    (Path(spec["workdir"]) / "deps").mkdir(parents=True, exist_ok=True)
    (Path(spec["workdir"]) / "deps" / "lib.txt").write_text("cached")
    Path(spec["output"]["exit"]).write_text(f"{code}\n")


def test_restore_makes_the_context(tmp_path, capsys):
    spec = _spec(tmp_path)
    assert restore_context(spec) == 0
    assert Path(spec["workdir"]).is_dir() and Path(spec["dirs"]["checkout"]).is_dir()
    out = capsys.readouterr().out
    assert "nothing stored yet" in out
    # no context store in the spec (the console has no DICE_CONSOLE_URL): the log says so
    assert json.loads(out.splitlines()[0])["text"] == NOT_CARRIED and "DICE_CONSOLE_URL" in NOT_CARRIED


def test_sizes_read_as_people_write_them():
    assert [human(n) for n in (0, 1023, 1536, 3.4 * 1024 * 1024, 5 * 1024**3)] == [
        "0 B", "1023 B", "1.5 KiB", "3.4 MiB", "5.0 GiB"]


def test_sidecar_follows_collects_stores_and_reports(tmp_path):
    spec = _spec(tmp_path)
    restore_context(spec, out=open("/dev/null", "w"))  # noqa: SIM115
    out = _Collected()
    writer = threading.Thread(target=_fake_step, args=(spec, 0))
    writer.start()
    result = sidecar(spec, out=out, linger=False)
    writer.join()
    records = [json.loads(x) for x in out.text.splitlines()]
    stdout = [r["text"] for r in records if r["stream"] == "stdout"]
    assert stdout[:50] == [f"line {i} token ******" for i in range(50)]
    assert [r["text"] for r in records if r["stream"] == "stderr"] == ["a warning", "no newline at the end"]
    assert [r["n"] for r in records] == list(range(1, len(records) + 1))
    assert result["exit_code"] == 0
    assert result["outputs"] == {"version": "1.2.3", "image": "registry.example/app:1"}
    assert json.loads(Path(spec["result"]).read_text())["outputs"] == result["outputs"]
    assert Path(spec["output"]["stored"]).exists()
    assert Path(spec["caches"][0]["archive"]).stat().st_size > 0


def test_sidecar_does_not_store_caches_of_a_failed_step(tmp_path):
    spec = _spec(tmp_path)
    restore_context(spec, out=open("/dev/null", "w"))  # noqa: SIM115
    _fake_step(spec, 3)
    result = sidecar(spec, out=open("/dev/null", "w"), linger=False)  # noqa: SIM115
    assert result["exit_code"] == 3 and result["caches"] == []
    assert not Path(spec["caches"][0]["archive"]).exists()


def test_sidecar_command_lingers_until_sigterm(tmp_path):
    spec = _spec(tmp_path)
    spec_file = tmp_path / "step.json"
    spec_file.write_text(json.dumps(spec))
    proc = subprocess.Popen([sys.executable, "-m", "agent", "sidecar", "--spec", str(spec_file)], cwd=ROOT,
                            stdout=subprocess.PIPE, text=True)
    try:
        _fake_step(spec, 0)
        deadline = time.monotonic() + 20
        while not Path(spec["output"]["stored"]).exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert Path(spec["output"]["stored"]).exists()
        time.sleep(0.3)
        assert proc.poll() is None  # a native sidecar stays up until the pod ends
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0
    assert json.loads(out.splitlines()[-1])["text"] == "exit code 0"


def test_sidecar_waits_for_the_exit_code_not_only_for_its_file(tmp_path):
    """run.sh's `echo "$code" >exit` creates the file, then writes the line: the sidecar looked
    for the file alone and read it empty in between, which it took for exit code 1 (seen in CI on
    the real node: a step that succeeded failed, its log saying only "exit code 1")."""
    spec = _spec(tmp_path)
    restore_context(spec, out=open("/dev/null", "w"))  # noqa: SIM115
    exit_file = Path(spec["output"]["exit"])
    exit_file.write_text("")  # created, not written yet

    def finish():
        time.sleep(0.6)  # a few of the sidecar's looks (every POLL) see the empty file
        exit_file.write_text("0\n")

    writer = threading.Thread(target=finish)
    writer.start()
    result = sidecar(spec, out=open("/dev/null", "w"), linger=False)  # noqa: SIM115
    writer.join()
    assert result["exit_code"] == 0 and result["error"] == ""


def test_a_step_that_left_no_exit_code_fails_saying_so(tmp_path):
    spec = _spec(tmp_path)
    restore_context(spec, out=open("/dev/null", "w"))  # noqa: SIM115
    Path(spec["output"]["exit"]).write_text("")  # killed between creating the file and writing it
    stop = threading.Event()
    stop.set()  # the pod is ending
    out = _Collected()
    result = sidecar(spec, out=out, stop=stop, linger=False)
    assert result["exit_code"] == 1 and result["error"] == "the step ended without an exit code"
    assert "the step ended without an exit code" in out.text

