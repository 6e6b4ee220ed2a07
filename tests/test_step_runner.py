"""The compiled step runner (agent/bin/dice-step, agent/gorunner) against the Python agent: the
console must not be able to tell which ran a step. Masking (Masker over many generated lines),
the text rules it ports (utf-8 with replacement, strip, splitlines, JSON, repr, float repr), whole
runs side by side (log lines, outputs, result, environment, signals, process group, timeout,
notification, a git checkout), a spec it cannot run, and the fallback to the Python agent."""

from __future__ import annotations

import http.server
import json
import os
import random
import signal
import socket
import subprocess
import threading
from pathlib import Path

import pytest

from agent.masking import Masker, forms
from scheduler.local import steps as local_steps
from tests.conftest import ROOT

RUNNER = local_steps.RUNNER
PYTHON = local_steps.AGENT_PYTHON

needs_runner = pytest.mark.skipif(not os.access(RUNNER, os.X_OK) and not os.environ.get("CI"),
                                  reason=f"{RUNNER} is not built (`make install` with Go installed)")


def parity(request: dict) -> dict:
    done = subprocess.run([RUNNER, "_parity"], input=json.dumps(request), capture_output=True, text=True,
                          timeout=60, check=True)
    return json.loads(done.stdout)


# ---- masking ------------------------------------------------------------------------------------

ALPHABETS = [
    "abcdefghijklmnopqrstuvwxyz", "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789", "+/=-_.*?()[]{}|^$\\'\" %&",
    "éüßñçø", "中文字符测试", "😀🔑🚀", " \t\u00a0\u3000\x1c",
]


def _secret(rng: random.Random) -> str:
    length = rng.choice([1, 2, 3, 4, 5, 6, 8, 12, 20, 33])
    pool = "".join(rng.sample(ALPHABETS, rng.randint(1, 3)))
    return "".join(rng.choice(pool) for _ in range(length)).strip() or "x" * length


def _noise(rng: random.Random, n: int) -> str:
    pool = "".join(ALPHABETS) + "    "
    return "".join(rng.choice(pool) for _ in range(n))


def _lines_for(rng: random.Random, secrets: list[str]) -> list[tuple[str, str]]:
    out = []
    for _ in range(rng.randint(5, 25)):
        stream = rng.choice(["stdout", "stdout", "stderr", "system"])
        secret = rng.choice(secrets)
        kind = rng.random()
        if kind < 0.3 and len(secret) >= 2:  # split across two lines of one stream
            cut = rng.randint(1, len(secret) - 1)
            space = rng.choice(["", " ", "  ", "\t", "\u00a0"])
            out.append((stream, _noise(rng, rng.randint(0, 12)) + secret[:cut] + rng.choice(["", " ", "\t"])))
            out.append((stream, space + secret[cut:] + _noise(rng, rng.randint(0, 12))))
        elif kind < 0.55:  # an encoded form inside text
            form = rng.choice(sorted(forms(secret)))
            out.append((stream, _noise(rng, rng.randint(0, 20)) + form + _noise(rng, rng.randint(0, 20))))
        elif kind < 0.65:  # a long line
            out.append((stream, _noise(rng, rng.randint(1000, 70000)) + secret + _noise(rng, 10)))
        elif kind < 0.75:  # several secrets, overlapping and adjacent
            a, b = rng.choice(secrets), rng.choice(secrets)
            out.append((stream, a + b + a[: len(a) // 2] + " " + b[::-1]))
        else:
            out.append((stream, _noise(rng, rng.randint(0, 60))))
    return out


@needs_runner
@pytest.mark.parametrize("seed", range(6))
def test_the_go_masker_masks_as_agent_masking_does(seed):
    """Generated secrets (ASCII, regex metacharacters, accents, CJK, emoji, whitespace), each
    case's lines in order per stream through Masker.line, values through Masker.__call__."""
    rng = random.Random(seed)
    compared = 0
    for _ in range(40):
        secrets = [_secret(rng) for _ in range(rng.randint(1, 4))]
        if rng.random() < 0.3:  # one secret containing another
            secrets.append(secrets[0] + _secret(rng))
        masker = Masker(secrets)
        all_forms = sorted({f for s in masker.secrets for f in forms(s)}, key=len, reverse=True)
        lines = _lines_for(rng, masker.secrets)
        values = [text for _, text in lines[:5]] + [f"{s}={s[::-1]}" for s in masker.secrets]
        expected = [masker.line(text, stream) for stream, text in lines]
        expected_values = [masker(v) for v in values]
        got = parity({"secrets": masker.secrets, "forms": all_forms, "lines": [list(x) for x in lines],
                      "values": values})
        for (stream, text), want, have in zip(lines, expected, got["lines"], strict=True):
            assert have == want, (secrets, stream, text[:200])
        assert got["values"] == expected_values, secrets
        compared += len(lines)
    assert compared > 200


@needs_runner
def test_no_secret_masks_nothing_and_a_split_secret_needs_its_next_line():
    got = parity({"secrets": [], "forms": [], "lines": [["stdout", "plain topsecret"]], "values": ["x"]})
    assert got["lines"] == ["plain topsecret"] and got["values"] == ["x"]
    masker = Masker(["topsecret"])
    lines = [["stdout", "key: tops"], ["stderr", "ecret"], ["stdout", "ecret done"]]
    got = parity({"secrets": masker.secrets, "forms": sorted(forms("topsecret"), key=len, reverse=True),
                  "lines": lines, "values": []})
    assert got["lines"] == [masker.line(t, s) for s, t in lines] == ["key: ******", "ecret", "****** done"]


# ---- the text rules it ports --------------------------------------------------------------------


@needs_runner
def test_decoding_stripping_splitting_and_json_as_python_does():
    rng = random.Random(7)
    raw = [b"", b"plain", "café 中 😀".encode(), b"\xff", b"\xc0\x80", b"\xe2\x82", b"\xe2\x82\xac\xe2",
           b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\xf0\x9f\x98", b"\xf0\x9f", b"\x80\x80abc", b"a\xe0\x80b",
           b"\xf8\x88\x80\x80\x80", b"\xef\xbb\xbfbom"]
    raw += [bytes(rng.randrange(256) for _ in range(rng.randint(1, 40))) for _ in range(300)]
    raw += [bytes(rng.choice([0x41, 0x80, 0xbf, 0xc2, 0xe0, 0xed, 0xef, 0xf0, 0xf4, 0xa0, 0x9f, 0x90])
                  for _ in range(rng.randint(1, 12))) for _ in range(300)]
    texts = ["", "a\nb\r\nc\rd\x0be\x0cf\x1cg\x1dh\x1ei\x1fj\x85k\u2028l\u2029m", "\r\n\r\n", "x\n",
             "  \t\u00a0\u3000\x1c tight \x1f\u2009 ", "quote ' and \" and \\ \x00\x07\x7f é 中 😀 \u200b\u00ad",
             "it's", "tab\there", "\ud7ff\ue000\uffff", "\r\n\n\r", "ends with cr\r"]
    texts += ["".join(rng.choice("ab \t\n\r\x0b\x0c\x1c\x1d\x1e\x1f\x85\u2028\u2029\u00a0é😀\"\\\x01")
                      for _ in range(rng.randint(0, 30))) for _ in range(300)]
    floats = [1764230400.0, 1764230400.123456, 1764230400.1234567, 0.1, 1e-05, 0.0001, 123456789012345678.0,
              1e16, 9999999999999998.0, 2.5e-7, 1.5, 100.0, 0.5, 1796636029.6466122, 1796636029.6466125]
    floats += [rng.uniform(1.7e9, 1.8e9) for _ in range(200)]
    timeouts = [1, 2, 30, 0.5, 1.5, 1234567, 100000, 1e6, 0.0001, 0.00001, 3600, 2.25]
    got = parity({"bytes": [b.hex() for b in raw], "texts": texts, "floats": floats, "timeouts": timeouts})
    assert got["decoded"] == [b.decode("utf-8", "replace") for b in raw]
    assert got["splitlines"] == [t.splitlines() for t in texts]
    assert got["strip"] == [[t.strip(), t.lstrip(), t.rstrip(), t.rstrip("\r\n")] for t in texts]
    assert got["json"] == [json.dumps(t, ensure_ascii=False) for t in texts]
    assert got["json_ascii"] == [json.dumps(t) for t in texts]
    assert got["repr"] == [repr(t) for t in texts]
    assert got["floats"] == [[repr(f), json.dumps(round(f, 6))] for f in floats]
    assert got["timeouts"] == [format(t, "g") for t in timeouts]


# ---- whole runs, side by side -------------------------------------------------------------------


def _write_spec(folder: Path, commands: list[str], **extra) -> tuple[Path, dict]:
    folder.mkdir(parents=True, exist_ok=True)
    spec = {"task_run": 5, "job": "p1-a-1", "alias": "a", "type": "custom-script", "workdir": str(folder / "work"),
            "dirs": {"b": str(folder / "dirs" / "b")}, "commands": commands, "shell": "/bin/sh", "params": {},
            "envs": {"GREETING": "hé", "N": 3, "F": 1.5, "ON": True}, "caches": [],
            # a doubled slash: the script's path ($0) is joined as os.path.join does, not cleaned
            "metafile": f"{folder}/step//metafile", "result": str(folder / "step" / "result.json"),
            "timeout": None, "mask": ["topsecret", "p4ss/w+rd"], "notify": None, **extra}
    path = folder / "step" / "spec.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(spec))
    return path, spec


def _ignoring(signals):
    def setup():
        for sig in signals:
            signal.signal(sig, signal.SIG_IGN)
    return setup


def run_agent(runner: str, path: Path, env: dict | None = None, new_session: bool = False, ignored=()):
    """One agent on the spec at `path` as the local cluster starts it: (exit status, lines, result,
    stderr). `ignored`: signals ignored where it is started (they stay ignored through exec)."""
    spec = json.loads(path.read_text())
    if runner == "go":
        path.write_text(json.dumps(local_steps.runner_spec(spec)))
        argv = [RUNNER, "run", "--spec", str(path)]
        base = {"DICE_AGENT_PYTHON": PYTHON}
    else:
        argv = [PYTHON, "-S", "-P", "-c", local_steps.AGENT_BOOT, "run", "--spec", str(path)]
        base = {"PYTHONPATH": str(ROOT)}
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "PYTHONUNBUFFERED": "1", **(env or {}), **base}
    proc = subprocess.run(argv, capture_output=True, timeout=60, env=env, cwd="/", start_new_session=new_session,
                          preexec_fn=_ignoring(ignored) if ignored else None)
    lines = [json.loads(line) for line in proc.stdout.decode().splitlines()]
    result_path = Path(spec["result"]) if isinstance(spec, dict) and spec.get("result") else path.parent / "result.json"
    result = result_path.read_text() if result_path.exists() else None
    return proc.returncode, lines, result, proc.stderr.decode()


def _both(tmp_path: Path, commands: list[str], env: dict | None = None, new_session: bool = False, ignored=(),
          **extra):
    out = {}
    for runner in ("go", "python"):
        path, _ = _write_spec(tmp_path / runner, commands, **extra)
        out[runner] = run_agent(runner, path, env, new_session, ignored)
    return out


def _comparable(run, folder: Path):
    """What the console reads of a run, with times dropped and the run's own folder named alike."""
    code, lines, result, _ = run
    per_stream: dict[str, list] = {}
    for line in lines:
        per_stream.setdefault(line["stream"], []).append(line["text"].replace(str(folder), "<dir>"))
        assert isinstance(line["ts"], float) and list(line) == ["n", "ts", "stream", "text"]
    assert [line["n"] for line in lines] == list(range(1, len(lines) + 1))
    res = json.loads(result)
    assert res["started"] <= res["finished"]
    res["started"] = res["finished"] = 0
    return code, per_stream, json.dumps(res).replace(str(folder), "<dir>")


@needs_runner
def test_a_run_prints_and_reports_what_the_python_agent_does(tmp_path):
    big = "x" * 70000
    commands = [
        'echo "$GREETING from $(pwd) N=$N F=$F ON=$ON as $0"',
        "echo to stderr >&2",
        "printf 'k1=v1\\r\\n  k2 = spaced \\n\\034k3=after-fs\\nnot a pair\\n=novalue\\nk1=again\\n' >> $METAFILE",
        "echo 'action meta:  k4 = with topsecret '",
        "echo 'action meta: k2=from-meta'",
        "echo 'action meta:nokey'",
        "echo the topsecret and cDRzcy93K3Jk and p4ss%2Fw%2Brd",
        "printf 'split tops\\necret here\\n'",
        "printf 'caf\\303\\251 \\377\\376 \\342\\202 tab\\there\\r\\n'",
        f"printf '%s\\n' {big}",
        "head -c 65536 /dev/zero | tr '\\0' y; echo",
        "head -c 65535 /dev/zero | tr '\\0' z; printf '\\342\\202\\254tail\\n'",
        "printf 'no newline at the end'",
    ]
    runs = _both(tmp_path, commands)
    go, python = (_comparable(runs[r], tmp_path / r) for r in ("go", "python"))
    assert go == python
    code, streams, result = go
    assert code == 0 and "exit code 0" in streams["system"]
    assert json.loads(result)["outputs"] == {"k1": "again", "k2": "from-meta", "k3": "after-fs",
                                             "k4": "with ******"}
    assert not any("topsecret" in t or "p4ss" in t for t in streams["stdout"])


@needs_runner
def test_failures_timeouts_and_a_shell_that_is_missing_read_alike(tmp_path):
    cases = [
        (["echo before", "exit 3"], {}),
        (["kill -9 $$"], {}),
        (["trap 'echo got TERM; exit 7' TERM", "echo waiting", "sleep 20 & wait"], {"timeout": 0.5}),
        (["sleep 30"], {"timeout": 1}),
        (["true"], {"shell": "/nonexistent/shell"}),
        (["true"], {"shell": "no-such-shell-anywhere"}),
        ([], {}),
        (["   ", ""], {}),
    ]
    for i, (commands, extra) in enumerate(cases):
        runs = _both(tmp_path / str(i), commands, **extra)
        go, python = (_comparable(runs[r], tmp_path / str(i) / r) for r in ("go", "python"))
        assert go == python, (commands, extra)
        assert runs["go"][0] == runs["python"][0]


GLIBC_INTERNAL = (1 << 31) | (1 << 32)  # SIGCANCEL (32) and SIGSETXID (33) in a SigIgn mask


def _sig_ign(text: str) -> str:
    """glibc's posix_spawn (the Python agent's) leaves its two internal signals ignored in what it
    starts; Go's fork leaves them at their default. Nothing but /proc shows it: programs linked
    with glibc install their own handlers for them, others (Go's, static ones) theirs."""
    if not text.startswith("SigIgn:"):
        return text
    return f"SigIgn:\t{int(text.split()[1], 16) & ~GLIBC_INTERNAL:016x}"


@needs_runner
def test_the_step_sees_the_same_environment_signals_limits_and_process_group(tmp_path):
    commands = ["env", "grep -E '^Sig(Ign|Blk)' /proc/self/status", "ulimit -n", "umask",
                "echo pgid=$(cut -d' ' -f5 /proc/$$/stat) shell=$$ parent=$PPID"]
    for i, env in enumerate([{}, {"LANG": "C.UTF-8"}, {"LANG": "en_US.UTF-8"}, {"LC_ALL": "C"},
                             {"LC_CTYPE": "POSIX", "LANG": "C.UTF-8"}, {"PYTHONPATH": "/elsewhere", "TZ": "UTC"}]):
        for new_session in (False, True):
            runs = _both(tmp_path / f"{i}{new_session}", commands, env=env, new_session=new_session)
            seen = {}
            for runner in ("go", "python"):
                _, lines, _, _ = runs[runner]
                texts = [_sig_ign(line["text"]) for line in lines if line["stream"] == "stdout"]
                group = next(t for t in texts if t.startswith("pgid="))
                fields = dict(f.split("=") for f in group.split())
                # as a job's command the agent leads its group and the step shares it; run by hand
                # the step gets a group of its own
                assert fields["pgid"] == (fields["parent"] if new_session else fields["shell"]), (runner, group)
                seen[runner] = [t.replace(str(tmp_path / f"{i}{new_session}" / runner), "<dir>") for t in texts
                                if not t.startswith("pgid=")]
            assert seen["go"] == seen["python"], env


@needs_runner
def test_notifications_carry_the_same_message(tmp_path):
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(10)
    posted = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            posted.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        datagrams = {}
        for runner in ("go", "python"):
            path, _ = _write_spec(tmp_path / runner, ["echo hi"], notify=f"udp://127.0.0.1:{sock.getsockname()[1]}",
                                  task_run=42, job="p1-é-1")
            run_agent(runner, path)
            datagrams[runner] = sock.recv(65536)
            path, _ = _write_spec(tmp_path / f"{runner}-http", ["echo hi"],
                                  notify=f"http://127.0.0.1:{server.server_address[1]}/hint")
            run_agent(runner, path)
    finally:
        server.shutdown()
        sock.close()
    assert datagrams["go"] == datagrams["python"] == b'{"task_run": 42, "job": "p1-\\u00e9-1"}'
    assert len(posted) == 2
    for body in posted:
        body["result"]["started"] = body["result"]["finished"] = 0
    assert posted[0] == posted[1] and posted[0]["result"]["exit_code"] == 0


@needs_runner
def test_a_git_checkout_rendered_by_the_console_runs_alike(tmp_path):
    origin = tmp_path / "origin"
    env = {"GIT_AUTHOR_NAME": "A", "GIT_AUTHOR_EMAIL": "a@x", "GIT_COMMITTER_NAME": "A",
           "GIT_COMMITTER_EMAIL": "a@x", "HOME": str(tmp_path)}
    subprocess.run(["git", "init", "-q", "-b", "main", str(origin)], check=True)
    (origin / "f").write_text("x")
    subprocess.run(["git", "-C", str(origin), "add", "f"], check=True)
    subprocess.run(["git", "-C", str(origin), "commit", "-q", "-m", "first"], check=True, env={**os.environ, **env})
    runs = _both(tmp_path / "runs", [], env={"HOME": str(tmp_path)}, type="git-checkout",
                 params={"url": str(origin), "branch": "main"})
    go, python = (_comparable(runs[r], tmp_path / "runs" / r) for r in ("go", "python"))
    assert go == python
    outputs = json.loads(go[2])["outputs"]
    assert go[0] == 0 and outputs["message"] == "first" and outputs["branch"] == "main" and len(outputs["commit"]) == 40


# ---- a spec it cannot run, and what it leaves to the Python agent -------------------------------

BAD_SPECS = [
    ("not JSON at all", None),
    ('{"workdir": "/w", ', None),
    ("[1, 2]", "the spec must be a JSON object, not a list"),
    ({"metafile": "m", "result": "r"}, "`workdir` is missing"),
    ({"workdir": "", "metafile": "m", "result": "r"}, "`workdir` is empty"),
    ({"workdir": "/w", "metafile": "m", "result": "r", "commands": "echo hi"}, "`commands` must be a list of text"),
    ({"workdir": "/w", "metafile": "m", "result": "r", "commands": ["ok", 3]}, "`commands` item 2 must be text"),
    ({"workdir": "/w", "metafile": "m", "result": "r", "envs": {"A": [1]}}, "`envs` entry 'A' must be text"),
    ({"workdir": "/w", "metafile": "m", "result": "r", "timeout": "5"}, "`timeout` must be a number of seconds"),
    ({"workdir": "/w", "metafile": "m", "result": "r", "caches": [{"key": "k"}]}, "`caches` item 1: `path` is missing"),
    ({"workdir": "/w", "metafile": "m", "result": "r", "dirs": {"a": 1}}, "`dirs` entry 'a' must be text"),
    ({"workdir": "/w", "metafile": "m", "result": 5}, "`result` must be text, not an integer"),
    ({"workdir": "/w", "metafile": "m", "result": "r", "alias": None}, "`alias` must be text, not null"),
    ({"workdir": "/w", "metafile": "m", "result": "r", "timeout": float("nan")},
     "`timeout` must be a finite number of seconds, not nan"),
    ({"workdir": "/w", "metafile": "m", "result": "r", "timeout": 1e300},
     "`timeout` must be a finite number of seconds, not 1e+300"),
]


@pytest.mark.usefixtures("step_runner")
@pytest.mark.parametrize("case", range(len(BAD_SPECS) + 1))
def test_a_bad_spec_gets_a_clear_error_and_a_result_file(tmp_path, case, step_runner):
    folder = tmp_path / "step"
    folder.mkdir()
    path = folder / "spec.json"
    expected_result = folder / "result.json"
    if case == len(BAD_SPECS):
        problem = "cannot read it: [Errno 2] No such file or directory"
    else:
        content, problem = BAD_SPECS[case]
        if isinstance(content, dict):
            if isinstance(content.get("result"), str):
                content = {**content, "result": str(folder / "named-result.json"),
                           "metafile": str(folder / "metafile")}
                expected_result = folder / "named-result.json"
            content = json.dumps(content)
        path.write_text(content)
        problem = problem or "not JSON"
    argv = ([RUNNER, "run", "--spec", str(path)] if step_runner == "go" else
            [PYTHON, "-S", "-P", "-c", local_steps.AGENT_BOOT, "run", "--spec", str(path)])
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=30, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    assert proc.returncode == 1, proc.stderr
    assert f"agent: bad step spec {path}: {problem}" in proc.stderr
    result = json.loads(expected_result.read_text())
    assert result["exit_code"] == 1 and result["error"].startswith(f"bad step spec {path}: {problem}")
    assert result["lines"] == 0 and not result["timed_out"] and result["outputs"] == {}
    assert not Path("/w").exists()


@needs_runner
def test_the_two_agents_word_a_bad_spec_alike(tmp_path):
    for i, (content, _) in enumerate(BAD_SPECS):
        if not isinstance(content, dict):
            continue  # a JSON parser's own words differ: both say "not JSON" (the test above)
        errors = {}
        for runner, argv in (("go", [RUNNER]), ("python", [PYTHON, "-S", "-P", "-c", local_steps.AGENT_BOOT])):
            folder = tmp_path / str(i)
            folder.mkdir(exist_ok=True)
            path = folder / "spec.json"
            path.write_text(json.dumps(content))
            subprocess.run([*argv, "run", "--spec", str(path)], capture_output=True, timeout=30,
                           env={"PYTHONPATH": str(ROOT)}, cwd=folder)
            errors[runner] = json.loads((folder / (content["result"] if isinstance(content.get("result"), str)
                                                   else "result.json")).read_text())["error"]
        assert errors["go"] == errors["python"]


@needs_runner
def test_the_runner_is_used_when_built_and_leaves_caches_to_the_python_agent(tmp_path, monkeypatch):
    monkeypatch.delenv("DICE_STEP_RUNNER", raising=False)
    from tests.local.test_step_start import _step

    job = _step(tmp_path, "a", ["echo hi"])
    job.spec["mask"] = ["topsecret"]
    built = local_steps.step_job(job)
    assert built.command == [RUNNER, "run", "--spec", f"{job.folder}/spec.json"]
    spec = json.loads(built.files[f"{job.folder}/spec.json"])
    assert spec["script"] == "set -e\necho hi\n" and "dG9wc2VjcmV0" in spec["mask_forms"]
    job.spec["caches"] = [{"key": "k", "path": "/p", "archive": "/a.tar.gz"}]
    assert local_steps.step_job(job).command[0] == PYTHON
    monkeypatch.setenv("DICE_STEP_RUNNER", "python")
    job.spec["caches"] = []
    assert local_steps.step_job(job).command[0] == PYTHON


@needs_runner
def test_a_spec_without_what_the_console_renders_goes_to_the_python_agent(tmp_path):
    """Run by hand on a spec the console did not render for it (secrets without their forms), the
    runner execs the Python agent rather than mask less; without DICE_AGENT_PYTHON it says so."""
    path, spec = _write_spec(tmp_path, ["echo the topsecret"])
    proc = subprocess.run([RUNNER, "run", "--spec", str(path)], capture_output=True, text=True, timeout=30,
                          env={"PATH": "/usr/bin:/bin", "DICE_AGENT_PYTHON": PYTHON})
    assert proc.returncode == 0, proc.stderr
    assert "the ******" in proc.stdout and "topsecret" not in proc.stdout
    proc = subprocess.run([RUNNER, "run", "--spec", str(path)], capture_output=True, text=True, timeout=30,
                          env={"PATH": "/usr/bin:/bin"})
    assert proc.returncode == 1 and "topsecret" not in proc.stdout
    error = json.loads(Path(spec["result"]).read_text())["error"]
    assert "need the Python agent, which cannot start: DICE_AGENT_PYTHON is not set" in error


@needs_runner
def test_the_step_starts_with_every_signal_at_its_default_whatever_its_agent_was_started_with(tmp_path):
    """A console started in the background (`cmd &` in a script, as CI starts its lanes) has SIGINT
    and SIGQUIT ignored, and an ignored signal stays ignored through exec: both agents gave it on
    to the step (the Python agent all of them, the runner SIGHUP and SIGINT), so a step's program
    could not be interrupted. Every signal starts at its default, as in a container."""
    ignored = (signal.SIGHUP, signal.SIGINT, signal.SIGQUIT, signal.SIGUSR1, signal.SIGTERM)
    runs = _both(tmp_path, ["grep '^SigIgn' /proc/self/status"], ignored=ignored)
    for runner, (code, lines, _, stderr) in runs.items():
        assert code == 0, (runner, stderr)
        texts = [_sig_ign(line["text"]) for line in lines if line["stream"] == "stdout"]
        assert texts == ["SigIgn:\t0000000000000000"], (runner, texts)

