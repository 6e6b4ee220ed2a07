"""The compiled shim (`agent/bin/dice-shim`) against the Python one (scheduler/local/shim.py):
each scenario is run through both, and what the console reads of it (the log's numbers, streams
and texts, the exitfile's code and signal, the pidfile's keys, the files left beside them) must be
the same. The Python shim's result is checked first against what it is meant to be, so that a
difference is the compiled shim's; the comparison is skipped while the runner is not built."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import random
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from agent.masking import forms
from scheduler.local import jail
from scheduler.local.sandbox import Sandboxes, isolation, write_spec
from scheduler.local.supervisor import priority_prefix
from tests.local.conftest import wait_for
from tests.local.test_shim import STARTED, go_shim_missing, kill_sessions, shim_argv, start

SIZE = 65536  # the longest piece of a line (shim.Lines.SIZE)
GLIBC_INTERNAL = (1 << 31) | (1 << 32)  # SIGCANCEL (32) and SIGSETXID (33) in a SigIgn mask
STAMP = re.compile(r"^\d{10}\.\d{6}$")


@pytest.fixture(autouse=True)
def _end_what_was_started():
    yield
    kill_sessions(STARTED)


def same_in_go(python: object, go_of) -> None:
    """The comparison: `go_of()` (the compiled shim's run of the scenario) must equal `python`."""
    if go_shim_missing():
        pytest.skip(f"the Go shim: {go_shim_missing()} (the Python shim's side passed)")
    go = go_of()
    assert go == python


# ---- running a shim and reading what it left ---------------------------------------------------



def _json_file(path: str, what: str) -> dict | str:
    """The JSON a shim wrote, or what is wrong with it (compared as text between the shims)."""
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError:
        return f"no {what}"
    except ValueError as exc:
        return f"bad {what}: {exc}"

class Run:
    def __init__(self, impl: str, folder: Path, command: list[str], extra: tuple[str, ...] = (),
                 env: dict[str, str] | None = None, log: Path | None = None, wait: bool = True,
                 prefix: tuple[str, ...] = (), **popen) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "wd").mkdir(exist_ok=True)
        self.log = str(log or folder / "log")
        self.pidfile, self.exitfile = str(folder / "pid"), str(folder / "exit")
        self.argv = [*prefix, *shim_argv(impl), "--log", self.log, "--pidfile", self.pidfile,
                     "--exitfile", self.exitfile, *extra, "--", *command]
        self.t0 = time.time()
        self.proc = start(self.argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
                          cwd=str(folder / "wd"), **popen)
        self.out = self.err = b""
        if wait:
            self.wait()

    def wait(self, timeout: float = 10) -> Run:
        self.out, self.err = self.proc.communicate(timeout=timeout)
        self.t1 = time.time()
        return self

    @property
    def rc(self) -> int:
        return self.proc.returncode

    def exit_info(self) -> dict | str:
        info = _json_file(self.exitfile, "exitfile")
        if isinstance(info, str):
            return info
        stamp = info.get("time")
        return {"code": info.get("code"), "signal": info.get("signal"), "keys": sorted(info),
                "time is the end": isinstance(stamp, (int, float)) and self.t0 - 1 <= stamp <= time.time() + 1}

    def pid_info(self) -> dict | str:
        info = _json_file(self.pidfile, "pidfile")
        if isinstance(info, str):
            return info
        seen = {"keys": sorted(info), "shim is the shim's pid": info.get("shim") == self.proc.pid,
                "pid is another process": isinstance(info.get("pid"), int) and info["pid"] > 0
                and info["pid"] != self.proc.pid}
        if "init" not in info:  # sandboxed, it depends on whether the command was seen before it ended
            seen["group is the pid"] = info.get("group", info.get("pid")) == info.get("pid")
        return seen

    def lines(self, path: str | None = None, whole: bool = False) -> list:
        return log_lines(path or self.log, self.t0, whole)

    def left(self) -> list[str]:
        """The files beside the log (temporary files a shim forgot would show here)."""
        return sorted(name for name in os.listdir(self.folder) if name != "wd")

    def seen(self, whole: bool = False) -> dict:
        """What the console reads of a finished run (long texts shortened unless `whole`)."""
        lines = self.lines(whole=whole)
        numbers = [line[0] for line in lines if isinstance(line, tuple)]
        return {"rc": self.rc, "exit": self.exit_info(), "pidfile": self.pid_info(), "files": self.left(),
                "numbered 1..n": numbers == list(range(1, len(lines) + 1)),
                "stdout": [text for line in lines if isinstance(line, tuple) and line[1] == "stdout"
                           for text in [line[2]]],
                "stderr": [text for line in lines if isinstance(line, tuple) and line[1] == "stderr"
                           for text in [line[2]]],
                "malformed": [line for line in lines if not isinstance(line, tuple)]}


def short(text: str) -> str:
    """A long text as its length, ends and digest (equal texts stay equal, diffs stay readable)."""
    if len(text) <= 120:
        return text
    digest = hashlib.sha1(text.encode("utf-8", "surrogateescape")).hexdigest()[:10]
    return f"{text[:16]!r}...({len(text)} chars, sha1 {digest})...{text[-16:]!r}"


def log_lines(path: str, since: float = 0, whole: bool = False) -> list:
    """(number, stream, text) per line; a malformed line as ("MALFORMED", raw). Invalid UTF-8 in
    the file shows as surrogate escapes (the Python shim writes none: it encodes with replace)."""
    try:
        raw = Path(path).read_bytes()
    except FileNotFoundError:
        return []
    if not raw:
        return []
    out: list = []
    if raw and not raw.endswith(b"\n"):
        out.append(("MALFORMED", "the file does not end with a newline"))
    for line in raw.split(b"\n")[:-1] if raw.endswith(b"\n") else raw.split(b"\n"):
        text = line.decode("utf-8", "surrogateescape")
        parts = text.split("\t", 3)
        if (len(parts) != 4 or not parts[0].isdigit() or not STAMP.match(parts[1])
                or not since - 1 <= float(parts[1]) <= time.time() + 1 or parts[2] not in ("stdout", "stderr")):
            out.append(("MALFORMED", short(text)))
            continue
        out.append((int(parts[0]), parts[2], parts[3] if whole else short(parts[3])))
    return out


def reference_lines(data: bytes) -> list[str]:
    """A stream as the console must see it: cut at newlines and every SIZE bytes (readline(SIZE)),
    each piece decoded with Python's decode("utf-8", "replace"), its line ending stripped."""
    out = []
    while data:
        cut = data.find(b"\n")
        end = cut + 1 if 0 <= cut < SIZE else min(len(data), SIZE)
        piece, data = data[:end], data[end:]
        out.append(short(piece.decode("utf-8", "replace").rstrip("\r\n")))
    return out


def marker() -> str:
    """A `sleep` argument no other process has: 3000 and some seconds, with a unique fraction."""
    return f"3{random.randrange(100, 999)}.{random.randrange(10**5, 10**6)}"


def sleeping(mark: str) -> list[int]:
    """Processes running `sleep <mark>`."""
    needle = f"sleep\0{mark}\0".encode()
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError):
                if Path(f"/proc/{entry}/cmdline").read_bytes().endswith(needle):
                    found.append(int(entry))
    return found


# ---- the streams ----------------------------------------------------------------------------

EURO = "€".encode()  # 3 bytes
STDOUT = b"".join([
    b"first\n",
    b"x" * 70000 + b"\n",  # a long line: 65536 + the rest
    b"y" * (SIZE - 1) + b"\n",  # exactly SIZE with its newline: one piece
    b"z" * SIZE + b"\n",  # SIZE and a newline: the piece, then an empty line
    b"w" * (SIZE - 1) + EURO + b" euro cut at the piece's end\n",  # a character split by the cut
    b"crlf\r\n", b"cr inside\rkept\n", b"two cr\r\r\n", b"\n", b"tab\there\tand there\n",
    b"bad \xff \xfe\xfd \xe2\x82 end \xc0\xaf \xed\xa0\x80 \xf4\x90\x80\x80 \xf0\x9f\x98 ok\n",
    "unicode: ü 漢字 😀\n".encode(), b"nul \x00 byte, bell \x07, escape \x1b[31mred\x1b[0m\n",
    b"last without newline \xe2\x82",
])
STDERR = b"".join([
    b"err one\r\n", b"err \x80\x80\n", b"e" * (2 * SIZE + 10) + b"\n", b"stderr last\r",
])
# The command writes both in pieces of odd sizes (some smaller than a character), so that a
# character or a line ending is split across the reads of the shim too.
WRITER = """
import os, sys, time
out, err = (open(p, "rb").read() for p in sys.argv[1:3])
sizes = [1, 2, 7, 4093, 65537, 3, 30000]
i = j = k = 0
while i < len(out) or j < len(err):
    n = sizes[k % len(sizes)]; k += 1
    if i < len(out):
        i += os.write(1, out[i:i + n])
    if j < len(err):
        j += os.write(2, err[j:j + n])
    if k % 5 == 0:
        time.sleep(0.001)
"""


def test_both_streams_long_lines_invalid_utf8_crlf_and_the_last_lines_without_newline(tmp_path):
    (tmp_path / "out.bin").write_bytes(STDOUT)
    (tmp_path / "err.bin").write_bytes(STDERR)

    def scenario(impl: str) -> dict:
        run = Run(impl, tmp_path / impl, [sys.executable, "-S", "-c", WRITER, str(tmp_path / "out.bin"),
                                          str(tmp_path / "err.bin")])
        return run.seen()

    python = scenario("python")
    assert python["stdout"] == reference_lines(STDOUT)
    assert python["stderr"] == reference_lines(STDERR)
    assert python["rc"] == 0 and python["numbered 1..n"] and not python["malformed"]
    assert python["exit"] == {"code": 0, "signal": None, "keys": ["code", "signal", "time"], "time is the end": True}
    assert python["pidfile"] == {"keys": python["pidfile"]["keys"], "shim is the shim's pid": True,
                                 "pid is another process": True, "group is the pid": True}
    assert {"pid", "shim"} <= set(python["pidfile"]["keys"]) and "init" not in python["pidfile"]["keys"]
    assert python["files"] == ["exit", "log", "pid"]
    same_in_go(python, lambda: scenario("go"))


# ---- rotation -----------------------------------------------------------------------------------


def test_rotation_keeps_n_files_and_the_numbering_continues_in_the_next_run(tmp_path):
    def scenario(impl: str, max_bytes: str) -> dict:
        folder = tmp_path / impl / max_bytes
        first = Run(impl, folder, ["/bin/sh", "-c", "i=1; while [ $i -le 30 ]; do echo line-$i; i=$((i+1)); done"],
                    extra=("--max-bytes", max_bytes, "--keep", "2"))
        after_first = {name: first.lines(str(folder / name)) for name in first.left() if name.startswith("log")}
        second = Run(impl, folder, ["/bin/sh", "-c", "echo again-1; echo again-2; echo again-3"],
                     extra=("--max-bytes", max_bytes, "--keep", "2"))
        after_second = {name: second.lines(str(folder / name)) for name in second.left() if name.startswith("log")}
        return {"rc": (first.rc, second.rc), "first run": after_first, "second run": after_second,
                "exit": (first.exit_info(), second.exit_info())}

    for max_bytes in ("200", "1"):  # "1": every line rotates, the current log is always empty
        python = scenario("python", max_bytes)
        assert sorted(python["first run"]) == ["log", "log.1", "log.2"]
        kept = [line for name in ("log.2", "log.1", "log") for line in python["first run"][name]]
        assert kept == [(n, "stdout", f"line-{n}") for n in range(kept[0][0], 31)]
        kept = [line for name in ("log.2", "log.1", "log") for line in python["second run"][name]]
        assert [n for n, _, _ in kept] == list(range(34 - len(kept), 34))  # 31.. continue the first run's
        assert {text for n, _, text in kept if n > 30} <= {"again-1", "again-2", "again-3"}
        if max_bytes == "1":
            assert python["first run"]["log"] == [] and python["first run"]["log.1"] == [(30, "stdout", "line-30")]
        same_in_go(python, lambda max_bytes=max_bytes: scenario("go", max_bytes))


# ---- how the command ended ----------------------------------------------------------------------

ENDINGS = {"exit 0": (0, None), "exit 3": (3, None), "kill -KILL $$": (None, 9), "kill -TERM $$": (None, 15)}


def test_exit_codes_and_killing_signals(tmp_path):
    def scenario(impl: str) -> dict:
        out = {}
        for i, script in enumerate(ENDINGS):
            run = Run(impl, tmp_path / impl / str(i), ["/bin/sh", "-c", f"echo before; {script}"])
            out[script] = {"rc": run.rc, "exit": run.exit_info(), "stdout": run.seen()["stdout"]}
        return out

    python = scenario("python")
    for script, (code, sig) in ENDINGS.items():
        assert python[script]["exit"]["code"] == code and python[script]["exit"]["signal"] == sig, script
        assert python[script]["rc"] == (code if sig is None else 128 + sig)
        assert python[script]["stdout"] == ["before"]
    same_in_go(python, lambda: scenario("go"))


CANNOT_START = {
    "absolute path": (["/nonexistent/program"], ()),
    "not on PATH": (["no-such-program-dice-parity"], ()),
    "not executable": (["./plain.txt"], ()),
    "missing --cwd": (["true"], ("--cwd", "MISSING")),
    "unknown --user": (["true"], ("--user", "no-such-user-dice-parity")),
    "numeric --user": (["true"], ("--user", "65534")),  # a name, looked up as one (getpwnam)
}


def test_a_command_that_cannot_start(tmp_path):
    def scenario(impl: str) -> dict:
        out = {}
        for i, (name, (command, extra)) in enumerate(CANNOT_START.items()):
            folder = tmp_path / impl / str(i)
            (folder / "wd").mkdir(parents=True)
            (folder / "wd" / "plain.txt").write_text("echo not a program\n")
            extra = tuple(str(folder / "missing") if e == "MISSING" else e for e in extra)
            if name.endswith("--user") and os.geteuid() != 0:
                continue
            run = Run(impl, folder, command, extra=extra)
            seen = run.seen(whole=True)
            info = json.loads(Path(run.exitfile).read_text()) if Path(run.exitfile).exists() else {}
            error = str(info.get("error", ""))
            # The reason's wording is each implementation's own: its gist is compared.
            gist = ("no such file" if "no such file" in error.lower() else
                    "permission denied" if "permission denied" in error.lower() else
                    "names the directory" if str(folder / "missing") in error else
                    "names the user" if "no-such-user-dice-parity" in error or "65534" in error else error)
            out[name] = {"rc": seen["rc"], "exit": seen["exit"], "pidfile": seen["pidfile"],
                         "files": seen["files"], "error gist": gist, "stdout": seen["stdout"],
                         "stderr": [text.split(": ", 1)[0] for text in seen["stderr"]],
                         "stderr ends with the error": [text.endswith(error) for text in seen["stderr"]]}
        return out

    python = scenario("python")
    for name, seen in python.items():
        assert seen["rc"] == 127 and seen["exit"]["code"] == 127 and seen["exit"]["signal"] is None, name
        assert seen["exit"]["keys"] == ["code", "error", "signal", "time"], name
        command = CANNOT_START[name][0][0]
        assert seen["stderr"] == [f"cannot start {command}"] and seen["stdout"] == [], name
        assert seen["pidfile"] == "no pidfile", name
    assert python["absolute path"]["error gist"] == python["not on PATH"]["error gist"] == "no such file"
    assert python["not executable"]["error gist"] == "permission denied"
    assert python["missing --cwd"]["error gist"] in ("no such file", "names the directory")
    same_in_go(python, lambda: scenario("go"))


def test_no_command(tmp_path):
    def scenario(impl: str) -> dict:
        folder = tmp_path / impl
        folder.mkdir()
        argv = [*shim_argv(impl), "--log", str(folder / "log"), "--pidfile", str(folder / "pid"),
                "--exitfile", str(folder / "exit"), "--"]
        done = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, timeout=10, cwd=folder)
        info = json.loads((folder / "exit").read_text()) if (folder / "exit").exists() else {}
        return {"rc": done.returncode, "code": info.get("code"), "keys": sorted(info),
                "log": [(n, s, t) for n, s, t in log_lines(str(folder / "log"))],
                "files": sorted(os.listdir(folder))}

    python = scenario("python")
    assert python["rc"] == 127 and python["code"] == 127 and "error" in python["keys"]
    assert python["log"] == [(1, "stderr", "cannot start (nothing): no command")]
    same_in_go(python, lambda: scenario("go"))


# ---- --claim ----------------------------------------------------------------------------------


def test_a_claim_taken_runs_nothing_and_writes_nothing(tmp_path):
    def scenario(impl: str) -> dict:
        folder = tmp_path / impl
        claim = folder / "claim"
        ran = folder / "ran"
        first = Run(impl, folder / "first", ["/bin/sh", "-c", f"echo first; touch {ran}.first"],
                    extra=("--claim", str(claim)))
        held = json.loads(claim.read_text())
        second = Run(impl, folder / "second", ["/bin/sh", "-c", f"echo second; touch {ran}.second"],
                     extra=("--claim", str(claim)))
        (folder / "console-claim").write_text('{"console": 1}')  # the console took it first
        third = Run(impl, folder / "third", ["/bin/sh", "-c", f"touch {ran}.third"],
                    extra=("--claim", str(folder / "console-claim")))
        return {
            "first": {**first.seen(), "claim keys": sorted(held), "claim names the shim": held.get("shim") == first.proc.pid,
                      "start time": isinstance(held.get("start_time"), int)},
            "claim unchanged": json.loads(claim.read_text()) == held,
            "console claim unchanged": json.loads((folder / "console-claim").read_text()) == {"console": 1},
            "second": {"rc": second.rc, "files": second.left(), "stdout": second.out, "stderr": second.err},
            "third": {"rc": third.rc, "files": third.left(), "stdout": third.out, "stderr": third.err},
            "ran": sorted(p.name for p in folder.glob("ran.*")),
            "beside the claim": sorted(os.listdir(folder)),
        }

    python = scenario("python")
    assert python["first"]["stdout"] == ["first"] and python["first"]["claim names the shim"]
    assert python["first"]["claim keys"] == ["shim", "start_time"] and python["first"]["start time"]
    assert python["second"] == {"rc": 0, "files": [], "stdout": b"", "stderr": b""}
    assert python["third"] == {"rc": 0, "files": [], "stdout": b"", "stderr": b""}
    assert python["ran"] == ["ran.first"] and python["claim unchanged"] and python["console claim unchanged"]
    assert python["beside the claim"] == ["claim", "console-claim", "first", "ran.first", "second", "third"]
    same_in_go(python, lambda: scenario("go"))


# ---- what the command gets: user, limits, directory, environment, signals ---------------------------


@pytest.mark.skipif(os.geteuid() != 0, reason="--user needs root")
def test_user(tmp_path):
    def scenario(impl: str) -> dict:
        return Run(impl, tmp_path / impl, ["/bin/sh", "-c", "id -u; id -g; id -G; echo $HOME"],
                   extra=("--user", "nobody")).seen()

    python = scenario("python")
    assert python["stdout"][:3] == ["65534", "65534", "65534"], python
    same_in_go(python, lambda: scenario("go"))


def test_mem_mib_is_the_address_space_limit(tmp_path):
    def scenario(impl: str) -> dict:
        out = {}
        for mib in ("256", "0", None):
            extra = ("--mem-mib", mib) if mib is not None else ()
            run = Run(impl, tmp_path / impl / str(mib), ["/bin/sh", "-c", "grep 'Max address space' /proc/self/limits"],
                      extra=extra)
            out[mib] = [" ".join(text.split()) for text in run.seen()["stdout"]]
        return out

    python = scenario("python")
    assert python["256"] == [f"Max address space {256 << 20} {256 << 20} bytes"]
    assert python["0"] == python[None] == ["Max address space unlimited unlimited bytes"]
    same_in_go(python, lambda: scenario("go"))


def test_cwd(tmp_path):
    def scenario(impl: str) -> dict:
        folder = tmp_path / impl
        (folder / "elsewhere").mkdir(parents=True)
        run = Run(impl, folder, ["/bin/sh", "-c", "pwd; echo made > here.txt"], extra=("--cwd", str(folder / "elsewhere")))
        return {"seen": run.seen(), "pwd is": run.seen()["stdout"] == [str(folder / "elsewhere")],
                "made there": (folder / "elsewhere" / "here.txt").exists()}

    python = scenario("python")
    python["seen"]["stdout"] = ["(the directory)"]
    assert python["pwd is"] and python["made there"]

    def go() -> dict:
        seen = scenario("go")
        seen["seen"]["stdout"] = ["(the directory)"] if seen["pwd is"] else seen["seen"]["stdout"]
        return seen

    same_in_go(python, go)


SECRET = "s3cr3t-Value-42"
SHORT_SECRET = "pw1"  # under MIN_FORM_LENGTH: only the value itself is masked


def test_masking_with_dice_mask_and_its_forms(tmp_path):
    values = [SECRET, SHORT_SECRET]
    all_forms = sorted({f for s in values for f in forms(s)}, key=len, reverse=True)
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "S": SECRET, "B": base64.b64encode(SECRET.encode()).decode(),
           "H": SECRET.encode().hex(), "P": SHORT_SECRET,
           "DICE_MASK": json.dumps(values), "DICE_MASK_FORMS": json.dumps(all_forms)}
    script = "\n".join([
        'echo "plain $S end"', 'echo "base64 $B"', 'echo "hex $H" >&2', 'echo "short $P, pw12"',
        'echo "reversed $(echo "$S" | rev)"',
        "echo 'split start s3cr3t-'", "echo 'Value-42 rest'",  # a value split across two lines
        'echo "nothing secret here"',
    ])

    def scenario(impl: str) -> dict:
        masked = Run(impl, tmp_path / impl / "masked", ["/bin/sh", "-c", script], env=env).seen()
        broken = Run(impl, tmp_path / impl / "broken", ["/bin/sh", "-c", 'echo "$S"'],
                     env={**env, "DICE_MASK": "not json", "DICE_MASK_FORMS": "[1, "}).seen()
        return {"masked": masked, "bad mask variables": broken}

    python = scenario("python")
    texts = python["masked"]["stdout"] + python["masked"]["stderr"]
    assert not any(form in text for text in texts for form in all_forms if len(form) > 3), texts
    assert "plain ****** end" in texts and "base64 ******" in texts and "hex ******" in texts
    assert "short ******, ******2" in texts and "nothing secret here" in texts
    assert python["bad mask variables"]["stdout"][0] == SECRET  # unreadable: nothing masked, the command runs
    same_in_go(python, lambda: scenario("go"))


@pytest.mark.parametrize("impl", ["python", "go"])
@pytest.mark.parametrize("mask", ["valid", "unreadable"])
def test_the_mask_variables_are_not_in_the_commands_environment(tmp_path, impl, mask):
    """Each shim removes DICE_MASK and DICE_MASK_FORMS before the command starts, whether it could
    read them or not (checked per shim: the console sets both for either)."""
    if impl == "go" and go_shim_missing():
        pytest.skip(f"the Go shim: {go_shim_missing()}")
    values = {"valid": (json.dumps([SECRET]), json.dumps(sorted(forms(SECRET), key=len, reverse=True))),
              "unreadable": ("not json", "[1, ")}[mask]
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "DICE_MASK": values[0], "DICE_MASK_FORMS": values[1]}
    run = Run(impl, tmp_path, ["/bin/sh", "-c", "env | grep ^DICE_MASK | cut -d= -f1; echo done"], env=env)
    assert run.seen()["stdout"] == ["done"]


def test_usage_errors(tmp_path):
    cases = {
        "no --log": ["--pidfile", "P", "--exitfile", "E", "--", "true"],
        "no --pidfile": ["--log", "L", "--exitfile", "E", "--", "true"],
        "no --exitfile": ["--log", "L", "--pidfile", "P", "--", "true"],
        "nothing": [],
        "--max-bytes not a number": ["--log", "L", "--pidfile", "P", "--exitfile", "E", "--max-bytes", "ten", "--", "true"],
        "--keep without its value": ["--log", "L", "--pidfile", "P", "--exitfile", "E", "--keep"],
        "unknown option": ["--log", "L", "--pidfile", "P", "--exitfile", "E", "--bogus", "--", "true"],
    }
    words = {"no --log": "--log", "no --pidfile": "--pidfile", "no --exitfile": "--exitfile", "nothing": "--log",
             "--max-bytes not a number": "--max-bytes", "--keep without its value": "--keep",
             "unknown option": "--bogus"}

    def scenario(impl: str) -> dict:
        out = {}
        for i, (name, args) in enumerate(cases.items()):
            folder = tmp_path / impl / str(i)
            folder.mkdir(parents=True)
            argv = [*shim_argv(impl), *(str(folder / a) if a in ("L", "P", "E") else a for a in args)]
            done = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, timeout=10, cwd=folder)
            said = done.stderr.decode(errors="replace")
            out[name] = {"rc": done.returncode, "stdout": done.stdout.decode(errors="replace"),
                         "names the option": words[name] in said, "says usage": "usage" in said.lower(),
                         "files": sorted(os.listdir(folder))}
        return out

    python = scenario("python")
    for name, seen in python.items():
        assert seen == {"rc": 2, "stdout": "", "names the option": True, "says usage": True, "files": []}, name
    same_in_go(python, lambda: scenario("go"))


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT], ids=lambda s: s.name)
def test_a_stop_signal_is_forwarded_to_the_group_and_leftovers_are_killed_at_the_end(tmp_path, sig):
    """The signal reaches the whole group: the command's shell and a child of it that traps it too
    (SIGINT and SIGQUIT are ignored in a shell's background jobs: only the shell traps those);
    what ignores it is killed when the command ends."""
    name = sig.name[3:]
    group_wide = sig in (signal.SIGTERM, signal.SIGHUP)

    def scenario(impl: str) -> dict:
        mark, left = marker(), marker()
        script = "\n".join([
            f"(trap 'echo child-got-{name}; exit 0' {name}; sleep {mark} & wait) & c=$!" if group_wide else ":",
            f"(trap '' {name}; exec sleep {left}) &",
            f"trap 'echo got-{name}; {'wait $c; ' if group_wide else ''}exit 7' {name}",
            "echo started", "wait", "echo not-reached",
        ])
        run = Run(impl, tmp_path / impl, ["/bin/sh", "-c", script], wait=False)
        wait_for(lambda: Path(run.pidfile).exists() and sleeping(left) and (sleeping(mark) or not group_wide)
                 and any(line[2] == "started" for line in run.lines() if isinstance(line, tuple)),
                 5, "the command and its children to start")
        group = json.loads(Path(run.pidfile).read_text())["pid"]
        in_group = all(os.getpgid(pid) == group for pid in sleeping(left) + sleeping(mark))
        run.proc.send_signal(sig)
        run.wait(8)
        gone = wait_for(lambda: not sleeping(left) and not sleeping(mark), 5, "what the command left to be killed")
        seen = run.seen()
        return {**seen, "stdout": sorted(seen["stdout"]), "children in the command's group": in_group,
                "leftover killed": gone}

    python = scenario("python")
    expected = sorted(["started", f"got-{name}", *([f"child-got-{name}"] if group_wide else [])])
    assert python["stdout"] == expected and python["rc"] == 7
    assert python["exit"]["code"] == 7 and python["exit"]["signal"] is None
    assert python["children in the command's group"] and python["leftover killed"]
    same_in_go(python, lambda: scenario("go"))


def test_the_command_dies_with_its_shim(tmp_path):
    """A shim killed outright (SIGKILL: nothing forwarded, no exitfile) takes its command with it
    (the parent-death signal); the command's own children are not the shim's to end."""
    def scenario(impl: str) -> dict:
        mark = marker()
        run = Run(impl, tmp_path / impl, ["/bin/sh", "-c", f"sleep {mark} & echo started; wait"], wait=False)
        wait_for(lambda: Path(run.pidfile).exists() and sleeping(mark), 5, "the command to start")
        command = json.loads(Path(run.pidfile).read_text())["pid"]
        child = sleeping(mark)[0]
        run.proc.kill()
        run.wait(5)
        dead = wait_for(lambda: not Path(f"/proc/{command}").exists() or _state(command) in ("Z", "X"), 5,
                        "the command to die with its shim")
        with contextlib.suppress(ProcessLookupError):
            os.kill(child, signal.SIGKILL)
        return {"rc": run.rc, "exit": run.exit_info(), "command died": dead, "files": run.left()}

    python = scenario("python")
    assert python == {"rc": -9, "exit": "no exitfile", "command died": True, "files": ["log", "pid"]}
    same_in_go(python, lambda: scenario("go"))


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return "X"


def test_the_commands_process(tmp_path):
    """Its standard input (/dev/null), descriptors, group, session, parent, environment and
    directory (the shim's own without --cwd), umask."""
    probe = ("import os, json; print(json.dumps({'stdin': os.readlink('/proc/self/fd/0'), "
             "'fds': sorted(int(f) for f in os.listdir('/proc/self/fd')), 'own group': os.getpgid(0) == os.getpid(), "
             "'session': os.getsid(0), 'parent': os.getppid(), 'cwd': os.getcwd(), 'umask': os.umask(0), "
             "'env': {k: v for k, v in os.environ.items() if k.startswith('PARITY_')}}))")

    def scenario(impl: str) -> dict:
        run = Run(impl, tmp_path / impl, [sys.executable, "-S", "-c", probe],
                  env={"PATH": "/usr/bin:/bin", "PARITY_A": "a b", "PARITY_EMPTY": ""})
        seen = run.seen(whole=True)
        got = json.loads(seen["stdout"][0]) if seen["stdout"] else seen
        if isinstance(got, dict) and "session" in got:
            got["session"] = "the shim's" if got["session"] == run.proc.pid else got["session"]
            got["parent"] = "the shim" if got["parent"] == run.proc.pid else got["parent"]
            got["cwd"] = "the shim's" if got["cwd"] == str(tmp_path / impl / "wd") else got["cwd"]
        return {"rc": seen["rc"], "process": got}

    python = scenario("python")
    assert python["process"] == {"stdin": "/dev/null", "fds": [0, 1, 2, 3], "own group": True, "session": "the shim's",
                                 "parent": "the shim", "cwd": "the shim's", "umask": python["process"]["umask"],
                                 "env": {"PARITY_A": "a b", "PARITY_EMPTY": ""}}
    same_in_go(python, lambda: scenario("go"))


def test_many_lines_quickly(tmp_path):
    """A burst of output: no line lost, reordered or merged, numbering whole."""
    writer = "import sys\nw = sys.stdout.write\nfor i in range(60000): w(f'line {i} ' + 'p' * (i % 97) + '\\n')"

    def scenario(impl: str) -> dict:
        run = Run(impl, tmp_path / impl, [sys.executable, "-S", "-c", writer])
        lines = run.lines(whole=True)
        texts = [line[2] for line in lines if isinstance(line, tuple)]
        return {"rc": run.rc, "count": len(lines), "numbers": [line[0] for line in lines] == list(range(1, len(lines) + 1)),
                "texts": hashlib.sha1("\n".join(texts).encode()).hexdigest(), "first": texts[:2], "last": texts[-1:]}

    python = scenario("python")
    assert python["count"] == 60000 and python["numbers"] and python["last"] == ["line 59999 " + "p" * (59999 % 97)]
    same_in_go(python, lambda: scenario("go"))


def test_numbering_continues_after_an_existing_log(tmp_path):
    """The first number is one more than the last numbered line of the log (or of log.1 when the
    log is empty); a last line without a number (cut short) is passed over."""
    def scenario(impl: str) -> dict:
        out = {}
        cases = {"numbered": (b"7\t1.000000\tstdout\tseven\n", None),
                 "cut short": (b"7\t1.000000\tstdout\tseven\n8\t1.0000", None),
                 "empty, log.1 has it": (b"", b"41\t1.000000\tstderr\tx\n"),
                 "garbage": (b"not a log line\n", None)}
        for i, (name, (log, rotated)) in enumerate(cases.items()):
            folder = tmp_path / impl / str(i)
            folder.mkdir(parents=True)
            (folder / "log").write_bytes(log)
            if rotated is not None:
                (folder / "log.1").write_bytes(rotated)
            run = Run(impl, folder, ["/bin/sh", "-c", "echo next"])
            out[name] = (folder / "log").read_bytes()[len(log):].split(b"\t")[0]
            out[name + ", rc"] = run.rc
        return out

    python = scenario("python")
    assert python["numbered"] == b"8" and python["empty, log.1 has it"] == b"42" and python["garbage"] == b"1"
    same_in_go(python, lambda: scenario("go"))


def test_keep_zero_drops_the_rotated_log_and_keep_one_keeps_one(tmp_path):
    def scenario(impl: str) -> dict:
        out = {}
        for keep in ("0", "1"):
            folder = tmp_path / impl / keep
            run = Run(impl, folder, ["/bin/sh", "-c", "for i in 1 2 3 4 5 6 7 8 9; do echo line-$i; done; "
                                                     "printf '%0300d\\n' 0"],  # a line longer than --max-bytes
                      extra=("--max-bytes", "100", "--keep", keep))
            out[keep] = {"rc": run.rc, "files": run.left(),
                         **{name: run.lines(str(folder / name)) for name in run.left() if name.startswith("log")}}
        return out

    python = scenario("python")
    assert python["0"]["files"] == ["exit", "log", "pid"] and python["0"]["log"] == []
    assert python["1"]["files"] == ["exit", "log", "log.1", "pid"] and python["1"]["log.1"] == [(10, "stdout", short("0" * 300))]
    same_in_go(python, lambda: scenario("go"))


def test_a_log_that_cannot_be_written(tmp_path):
    """The log's directory is missing: the shim fails before the command (which never runs)."""
    def scenario(impl: str) -> dict:
        folder = tmp_path / impl
        run = Run(impl, folder, ["/bin/sh", "-c", f"touch {folder}/ran"], log=folder / "missing" / "log")
        return {"rc": run.rc, "ran": (folder / "ran").exists(), "files": run.left(), "says why": b"missing" in run.err}

    python = scenario("python")
    assert python == {"rc": 1, "ran": False, "files": [], "says why": True}
    same_in_go(python, lambda: scenario("go"))


def test_the_command_starts_with_no_signal_ignored(tmp_path):
    def ignoring():
        for sig in (signal.SIGHUP, signal.SIGINT, signal.SIGQUIT, signal.SIGUSR1, signal.SIGTERM, signal.SIGPIPE):
            signal.signal(sig, signal.SIG_IGN)

    def scenario(impl: str) -> dict:
        run = Run(impl, tmp_path / impl, ["/bin/sh", "-c", "grep -E '^Sig(Ign|Blk)' /proc/self/status"],
                  preexec_fn=ignoring)
        seen = run.seen()
        masks = dict(text.split(":\t") for text in seen["stdout"] if ":\t" in text)
        return {"rc": seen["rc"], "exit": seen["exit"],
                "ignored": int(masks.get("SigIgn", "-1"), 16) & ~GLIBC_INTERNAL,
                "blocked": int(masks.get("SigBlk", "-1"), 16) & ~GLIBC_INTERNAL}

    python = scenario("python")
    assert python["rc"] == 0 and python["ignored"] == 0 and python["blocked"] == 0, python
    same_in_go(python, lambda: scenario("go"))


# ---- --priority (the Go shim's own option; the Python shim is started under nice/chrt) -----------


def _scheduling(text: str) -> tuple[int, int]:
    fields = text.rsplit(")", 1)[1].split()
    return int(fields[16]), int(fields[38])  # nice (field 19), policy (field 41)


@pytest.mark.parametrize("priority", ["", "normal", "5", "19", "idle"])
def test_priority(tmp_path, priority):
    def scenario(impl: str) -> dict:
        if impl == "go":
            run = Run(impl, tmp_path / impl, ["/bin/cat", "/proc/self/stat"], extra=("--priority", priority))
        else:
            run = Run(impl, tmp_path / impl, ["/bin/cat", "/proc/self/stat"], prefix=priority_prefix(priority))
        seen = run.seen(whole=True)
        return {"rc": seen["rc"], "exit": seen["exit"],
                "nice, policy": _scheduling(seen["stdout"][0]) if seen["stdout"] else seen}

    python = scenario("python")
    expected = {"": (0, 0), "normal": (0, 0), "5": (5, 0), "19": (19, 0), "idle": (0, 5)}[priority]
    idle = priority_prefix("idle")
    if priority == "idle" and not (idle and idle[0].endswith("chrt")):
        expected = (19, 0)
    assert python["nice, policy"] == expected
    same_in_go(python, lambda: scenario("go"))


@pytest.mark.parametrize("priority", ["20", "-1", "high"])
def test_a_bad_priority_is_a_usage_error(tmp_path, priority):
    if go_shim_missing():
        pytest.skip(f"the Go shim: {go_shim_missing()}")
    with pytest.raises(ValueError):
        priority_prefix(priority)  # refused by the console too
    run = Run("go", tmp_path, ["/bin/sh", "-c", f"touch {tmp_path}/ran"], extra=("--priority", priority))
    assert run.rc == 2 and b"--priority" in run.err, (run.rc, run.err)
    assert not (tmp_path / "ran").exists() and run.left() == []


# ---- in a sandbox -------------------------------------------------------------------------------

TENANT = "shim-parity-org"


@pytest.fixture
def sandbox(tmp_path):
    """make(impl, mem_mib) -> (spec path, spec, its read-write directory) for a sandbox of TENANT."""
    if os.geteuid() != 0:
        pytest.skip("sandboxed shims need root")
    if not isolation().enabled:
        pytest.skip(f"no sandbox on this machine: {isolation().reason}")
    sandboxes = Sandboxes(tmp_path / "local")

    def make(impl: str, mem_mib: int = 0) -> tuple[str, dict, Path]:
        rw = tmp_path / impl / "rw"
        rw.mkdir(parents=True)
        sandboxes.own(rw, TENANT)
        spec = sandboxes.spec(TENANT, binds=[(str(rw), str(rw), "rw")], mem_mib=mem_mib, cpu=0.5,
                              hostname="parity")
        return write_spec(str(tmp_path / impl / "sandbox.json"), spec), spec, rw

    return make


def _cgroup_dirs(pid: int) -> dict[str, Path]:
    """controller ("" for v2) -> the directory of the cgroup `pid` is in."""
    found = {}
    for entry in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
        _, names, path = entry.split(":", 2)
        for name in names.split(",") if names else [""]:
            found[name] = Path("/sys/fs/cgroup", name, path.lstrip("/"))
    return found


def _uid_of(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Uid:"):
            return int(line.split()[1])
    return -1


PIDFILES: dict[str, object] = {}


def test_sandboxed_identity_and_files(tmp_path, sandbox):
    outside = tmp_path / "outside.txt"
    script = "\n".join([
        "id -u; id -G; echo passwd:; cat /etc/passwd; echo :passwd",
        'echo made > "$RW/made.txt" && echo wrote-rw',
        f"(echo x > {outside}) 2>/dev/null && echo wrote-outside-path",
        "(echo x > /etc/dice-parity) 2>/dev/null && echo LEAK-etc",
        "(echo x > /usr/dice-parity) 2>/dev/null && echo LEAK-usr",
        'test -e "$RW/../sandbox.json" && echo LEAK-sees-spec',
        "echo home=$HOME user=$USER; hostname",
    ])

    def scenario(impl: str) -> dict:
        spec_path, spec, rw = sandbox(impl)
        run = Run(impl, tmp_path / impl / "run", ["/bin/sh", "-c", script], extra=("--sandbox", spec_path),
                  env={"PATH": "/usr/bin:/bin", "RW": str(rw)})
        seen = run.seen()
        PIDFILES[impl] = seen.pop("pidfile")  # compared in test_the_pidfile_is_written_even_...: a race here
        seen.pop("files")
        made = rw / "made.txt"
        return {**seen, "made by the tenant": made.exists() and made.stat().st_uid == spec["uid"],
                "passwd": seen["stdout"][seen["stdout"].index("passwd:") + 1:seen["stdout"].index(":passwd")]
                == Path(spec["passwd"]).read_text().splitlines(),
                "uid": seen["stdout"][:2] == [str(spec["uid"])] * 2,
                "outside written on the host": outside.exists()}

    python = scenario("python")
    assert python["uid"] and python["passwd"] and python["made by the tenant"], python
    assert not python["outside written on the host"]
    assert not any(text.startswith("LEAK") for text in python["stdout"]), python["stdout"]
    assert python["exit"]["code"] == 0 and {"init", "pid", "shim"} <= set(PIDFILES["python"]["keys"])
    same_in_go(python, lambda: scenario("go"))


BY_THE_SHIM: dict[str, bool] = {}  # whether the shim itself removed its cgroup (not compared: a race)


def test_sandboxed_while_running_pidfile_cgroup_and_after_it_ended(tmp_path, sandbox):
    def scenario(impl: str) -> dict:
        spec_path, spec, _ = sandbox(impl, mem_mib=96)
        mark = marker()
        run = Run(impl, tmp_path / impl / "run",
                  ["/bin/sh", "-c", f"sleep {mark} >/dev/null 2>&1 & echo started; wait"],
                  extra=("--sandbox", spec_path), env={"PATH": "/usr/bin:/bin"}, wait=False)
        wait_for(lambda: Path(run.pidfile).exists() and sleeping(mark)
                 and any(line[2] == "started" for line in run.lines() if isinstance(line, tuple)),
                 8, "the sandboxed command to start")
        record = json.loads(Path(run.pidfile).read_text())
        pid, init = record.get("pid", 0), record.get("init", 0)
        dirs = _cgroup_dirs(pid)
        memory = dirs.get("memory") or dirs.get("")
        limit_file = "memory.limit_in_bytes" if "memory" in dirs else "memory.max"
        running = {
            "keys": sorted(record), "shim": record.get("shim") == run.proc.pid,
            "pid is a live tenant process": _uid_of(pid) == spec["uid"],
            "init is alive": Path(f"/proc/{init}").exists() and init != pid,
            "pid's parent is init": Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1] == str(init),
            "group is pid's process group": record.get("group", pid) == os.getpgid(pid),
            "cgroup name": memory.name == f"dice-{run.proc.pid}",
            "memory limit": (memory / limit_file).read_text().strip(),
            "sleep in the cgroup": all(_cgroup_dirs(p).get("memory", _cgroup_dirs(p).get("")) == memory
                                       for p in sleeping(mark)),
        }
        run.proc.send_signal(signal.SIGTERM)
        run.wait(8)
        ended = {"sleep killed": wait_for(lambda: not sleeping(mark), 5, "the sandbox's processes to end")}
        # The shim removes its cgroup as it ends; one whose processes are still exiting refuses,
        # and the console's sweep (jail.sweep_cgroups) removes it: gone either way, and empty.
        deadline = time.monotonic() + 2
        while memory.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        BY_THE_SHIM[impl] = not memory.exists()
        jail.sweep_cgroups(spec["cgroup"])
        ended["cgroup removed"] = not memory.exists()
        return {"running": running, "ended": ended, "exit": run.exit_info(), "rc": run.rc,
                "stdout": run.seen()["stdout"], "files": run.left()}

    python = scenario("python")
    assert {"init", "pid", "shim"} <= set(python["running"]["keys"])
    assert python["running"] == {"keys": python["running"]["keys"], "shim": True, "pid is a live tenant process": True,
                                 "init is alive": True, "pid's parent is init": True,
                                 "group is pid's process group": True, "cgroup name": True,
                                 "memory limit": str(96 << 20), "sleep in the cgroup": True}
    assert python["exit"]["signal"] == signal.SIGTERM and python["exit"]["code"] is None
    assert python["stdout"] == ["started"] and python["ended"] == {"sleep killed": True, "cgroup removed": True}
    same_in_go(python, lambda: scenario("go"))


def test_sandboxed_what_the_command_left_is_killed_when_it_exits(tmp_path, sandbox):
    def scenario(impl: str) -> dict:
        spec_path, _, _ = sandbox(impl, mem_mib=64)
        mark = marker()
        started = time.monotonic()
        run = Run(impl, tmp_path / impl / "run",
                  ["/bin/sh", "-c", f"setsid sleep {mark} >/dev/null 2>&1 & echo left; exit 4"],
                  extra=("--sandbox", spec_path), env={"PATH": "/usr/bin:/bin"})
        took = time.monotonic() - started
        # (not its pidfile: test_the_pidfile_is_written_even_for_a_command_that_ends_at_once)
        return {**run.seen(), "pidfile": "-", "files": "-", "prompt": took < 5,
                "left killed": wait_for(lambda: not sleeping(mark), 5, "the process left behind to end")}

    python = scenario("python")
    assert python["exit"]["code"] == 4 and python["rc"] == 4 and python["stdout"] == ["left"] and python["prompt"]
    same_in_go(python, lambda: scenario("go"))


def test_foreground_sandboxed(tmp_path, sandbox):
    cases = {"exit 5": 5, "exit 0": 0, "kill -TERM $$": 128 + 15}

    def scenario(impl: str) -> dict:
        spec_path, spec, rw = sandbox(impl)
        out = {}
        for script, _ in cases.items():
            done = subprocess.run([*shim_argv(impl), "--foreground", "--sandbox", spec_path, "--cwd", str(rw), "--",
                                   "/bin/sh", "-c", f"echo out; pwd; id -u; cat; echo err >&2; {script}"],
                                  input=b"from stdin\n", capture_output=True, timeout=10, cwd="/",
                                  env={"PATH": "/usr/bin:/bin"})
            out[script] = {"rc": done.returncode,
                           "stdout": done.stdout.decode().replace(str(rw), "RW").replace(str(spec["uid"]), "UID"),
                           "stderr has err": b"err\n" in done.stderr}
        done = subprocess.run([*shim_argv(impl), "--foreground", "--sandbox", spec_path, "--", "/nonexistent/program"],
                              stdin=subprocess.DEVNULL, capture_output=True, timeout=10, cwd="/")
        out["missing"] = {"rc": done.returncode, "stdout": done.stdout, "says": b"/nonexistent/program" in done.stderr}
        return out

    python = scenario("python")
    for script, rc in cases.items():
        assert python[script] == {"rc": rc, "stdout": "out\nRW\nUID\nfrom stdin\n", "stderr has err": True}, script
    assert python["missing"]["rc"] != 0 and python["missing"]["says"]
    same_in_go(python, lambda: scenario("go"))


def test_sandboxed_cwd_a_missing_program_and_the_memory_limit(tmp_path, sandbox):
    hog = "b = bytearray(1)\nwhile True: b += bytearray(8 << 20)"

    def scenario(impl: str) -> dict:
        spec_path, _, rw = sandbox(impl, mem_mib=64)
        folder = tmp_path / impl
        env = {"PATH": "/usr/bin:/bin"}
        cwd = Run(impl, folder / "cwd", ["/bin/sh", "-c", "pwd; echo x > here.txt"], env=env,
                  extra=("--sandbox", spec_path, "--cwd", str(rw)))
        missing = Run(impl, folder / "missing", ["/nonexistent/program"], env=env, extra=("--sandbox", spec_path))
        oom = Run(impl, folder / "oom", ["/usr/bin/python3", "-S", "-c", hog], env=env, extra=("--sandbox", spec_path))
        # (not their pidfiles: test_the_pidfile_is_written_even_for_a_command_that_ends_at_once)
        return {"cwd": {**cwd.seen(), "pidfile": "-", "files": "-",
                        "stdout": [t.replace(str(rw), "RW") for t in cwd.seen()["stdout"]],
                        "made": (rw / "here.txt").exists()},
                "missing": {**missing.seen(), "pidfile": "-", "files": "-"}, "oom": {"rc": oom.rc, "exit": oom.exit_info()}}

    python = scenario("python")
    assert python["cwd"]["stdout"] == ["RW"] and python["cwd"]["made"]
    assert python["missing"]["exit"]["code"] not in (0, None) and python["missing"]["stderr"], python["missing"]
    assert python["oom"]["exit"]["signal"] == signal.SIGKILL, python["oom"]
    same_in_go(python, lambda: scenario("go"))


def test_the_pidfile_is_written_even_for_a_command_that_ends_at_once(tmp_path, sandbox):
    """The console adopts a start by its pidfile: a sandboxed command that ends before the shim has
    seen it start still gets one (bubblewrap's init stands for it), every time."""
    def scenario(impl: str) -> dict:
        spec_path, _, _ = sandbox(impl)
        out = {}
        for command in (["/bin/true"], ["/bin/sh", "-c", "exit 3"], ["/nonexistent/program"]):
            runs = [Run(impl, tmp_path / impl / f"{command[-1][-6:]}-{i}", command, env={"PATH": "/usr/bin:/bin"},
                        extra=("--sandbox", spec_path)) for i in range(6)]
            out[" ".join(command)] = sorted({json.dumps(run.pid_info(), sort_keys=True) for run in runs})
        return out

    python = scenario("python")
    for command, records in python.items():
        assert len(records) == 1 and json.loads(records[0])["shim is the shim's pid"], (command, records)
    same_in_go(python, lambda: scenario("go"))


def test_command_line_forms(tmp_path):
    """--name=value, the command after `--` or from the first argument that is no option, an
    option's name after `--` belonging to the command."""
    def scenario(impl: str) -> dict:
        out = {}
        forms_ = {
            "equals": lambda f: [f"--log={f}/log", f"--pidfile={f}/pid", f"--exitfile={f}/exit", "--keep=1",
                                 "--", "echo", "a"],
            "no --": lambda f: ["--log", f"{f}/log", "--pidfile", f"{f}/pid", "--exitfile", f"{f}/exit", "echo", "--log", "b"],
            "option after --": lambda f: ["--log", f"{f}/log", "--pidfile", f"{f}/pid", "--exitfile", f"{f}/exit", "--",
                                          "echo", "--", "--cwd", "c"],
            "repeated": lambda f: ["--log", f"{f}/other", "--log", f"{f}/log", "--pidfile", f"{f}/pid", "--exitfile",
                                   f"{f}/exit", "--", "echo", "d"],
        }
        for name, argv in forms_.items():
            folder = tmp_path / impl / name.replace(" ", "-")
            folder.mkdir(parents=True)
            done = subprocess.run([*shim_argv(impl), *argv(folder)], stdin=subprocess.DEVNULL, capture_output=True,
                                  timeout=10, cwd=folder)
            out[name] = {"rc": done.returncode, "log": [t for _, _, t in log_lines(str(folder / "log"))],
                         "files": sorted(os.listdir(folder)), "stderr": done.stderr.decode(errors="replace")[-200:]}
        return out

    python = scenario("python")
    assert python["equals"]["log"] == ["a"] and python["no --"]["log"] == ["--log b"]
    assert python["option after --"]["log"] == ["-- --cwd c"] and python["repeated"]["log"] == ["d"]
    same_in_go(python, lambda: scenario("go"))


@pytest.mark.parametrize("impl", ["python", "go"])
@pytest.mark.parametrize("locale", [{}, {"LANG": "C"}, {"LANG": "C.UTF-8"}, {"LC_ALL": "C"}],
                         ids=["no locale", "LANG=C", "LANG=C.UTF-8", "LC_ALL=C"])
def test_the_commands_environment_is_the_shims(tmp_path, locale, impl):
    """Nothing added, nothing taken but DICE_MASK and DICE_MASK_FORMS. One exception, the Python
    shim's when run as a script: its interpreter coerces a C locale (PEP 538: without LC_ALL, and
    with no locale or the C one, it sets LC_CTYPE=C.UTF-8 in its own environment, which the
    command inherits). Forked from the process starter, which replaces the environment with the
    request's, it adds nothing either; the compiled shim never does."""
    if impl == "go" and go_shim_missing():
        pytest.skip(f"the Go shim: {go_shim_missing()}")
    given = {"PATH": "/usr/bin:/bin", "PARITY": "x", **locale}
    run = Run(impl, tmp_path, ["/usr/bin/env"],  # not a Python probe: it would coerce the locale itself
              env={**given, "DICE_MASK": "[]", "DICE_MASK_FORMS": "[]"})
    seen = dict(text.split("=", 1) for text in run.seen(whole=True)["stdout"])
    if impl == "python" and seen.get("LC_CTYPE") == "C.UTF-8" and "LC_CTYPE" not in given:
        del seen["LC_CTYPE"]
    assert seen == given


WHOLE: dict[str, list[str]] = {}


def test_masking_edge_cases(tmp_path):
    """Secrets beyond ASCII split across lines, a secret across the cut of a long line, beside
    invalid UTF-8, in its JSON-escaped and URL-encoded forms, on both streams."""
    unicode_secret, quoted_secret = "pässwörd-ünïcode", 'a"b\\c/d €-123'
    values = [SECRET, unicode_secret, quoted_secret]
    all_forms = sorted({f for s in values for f in forms(s)}, key=len, reverse=True)
    out = b"".join([
        f"pre {unicode_secret} post\n".encode(),
        "x pässw\n".encode(), "örd-ünïcode y\n".encode(),  # split across two lines
        b"a" * (SIZE - 6) + SECRET.encode() + b"tail\n",  # across a long line's cut
        b"\xff" + SECRET.encode() + b"\xfe\n",
        json.dumps(quoted_secret)[1:-1].encode() + b"\n",
        __import__("urllib.parse").parse.quote(quoted_secret).encode() + b"\n",
        SECRET[::-1].encode() + b"\n",
        SECRET.encode().hex().upper().encode() + b"\n",
    ])
    err = f"err {SECRET}\nerr s3cr\nerr 3t-Value-42\n".encode()
    (tmp_path / "out.bin").write_bytes(out)
    (tmp_path / "err.bin").write_bytes(err)
    env = {"PATH": "/usr/bin:/bin", "DICE_MASK": json.dumps(values), "DICE_MASK_FORMS": json.dumps(all_forms)}
    writer = "import sys, os\nos.write(1, open(sys.argv[1], 'rb').read())\nos.write(2, open(sys.argv[2], 'rb').read())"

    def scenario(impl: str) -> dict:
        run = Run(impl, tmp_path / impl, [sys.executable, "-S", "-c", writer, str(tmp_path / "out.bin"),
                                          str(tmp_path / "err.bin")], env=env)
        seen = run.seen(whole=True)
        WHOLE[impl] = seen["stdout"] + seen["stderr"]
        return {**seen, "stdout": [short(t) for t in seen["stdout"]], "stderr": [short(t) for t in seen["stderr"]]}

    python = scenario("python")
    texts = WHOLE["python"]
    assert not any(form in text for text in texts for form in all_forms if len(form) >= 6), texts
    assert python["stdout"][0] == "pre ****** post" and python["stderr"][0] == "err ******"
    assert python["stdout"][1:3] == ["x ******", "****** y"]
    cut = next(i for i, t in enumerate(texts) if t.startswith("aaaa"))
    assert texts[cut].endswith("a******") and texts[cut + 1] == "******tail", [t[-20:] for t in texts[cut:cut + 2]]
    same_in_go(python, lambda: scenario("go"))


SANDBOX_ENDINGS = {"exit 0": (0, None, 0), "exit 3": (3, None, 3), "exit 130": (None, 2, 130),
                   "kill -TERM $$": (None, 15, 143), "kill -KILL $$": (None, 9, 137)}


def test_sandboxed_exit_codes(tmp_path, sandbox):
    """bubblewrap reports a command killed by signal N as 128+N, read back as that signal (so an
    exit 130 reads as SIGINT: the shims agree on it)."""
    def scenario(impl: str) -> dict:
        spec_path, _, _ = sandbox(impl)
        out = {}
        for i, script in enumerate(SANDBOX_ENDINGS):
            run = Run(impl, tmp_path / impl / str(i), ["/bin/sh", "-c", f"echo before; {script}"],
                      extra=("--sandbox", spec_path), env={"PATH": "/usr/bin:/bin"})
            info = run.exit_info()
            out[script] = (info["code"], info["signal"], run.rc) if isinstance(info, dict) else info
        return out

    python = scenario("python")
    assert python == SANDBOX_ENDINGS
    same_in_go(python, lambda: scenario("go"))
