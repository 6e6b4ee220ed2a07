"""agent.safetar: the same refusals with the standard filter and with the fallback used on
Pythons without tarfile filters (Debian bookworm's 3.11.2, the real node's python image)."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from agent import safetar


def _archive(entries) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, kind, extra in entries:
            info = tarfile.TarInfo(name)
            if kind == "file":
                data = extra.encode()
                info.size, info.mode = len(data), 0o4777
                tar.addfile(info, io.BytesIO(data))
            elif kind == "sym":
                info.type, info.linkname = tarfile.SYMTYPE, extra
                tar.addfile(info)
            elif kind == "fifo":
                info.type = tarfile.FIFOTYPE
                tar.addfile(info)
    return buf.getvalue()


HOSTILE = [("ok.txt", "file", "fine"), ("../escape.txt", "file", "no"), ("/abs.txt", "file", "stripped"),
           ("link", "sym", "/etc/passwd"), ("up", "sym", "../../x"), ("fifo", "fifo", None),
           ("sub/inner.txt", "file", "deep")]


@pytest.mark.parametrize("fallback", [False, True])
def test_hostile_entries_are_refused(tmp_path, monkeypatch, fallback):
    if fallback:
        monkeypatch.setattr(safetar, "data_filter", safetar._fallback_filter)
        monkeypatch.delattr(tarfile, "data_filter", raising=False)
    dest = tmp_path / "dest"
    dest.mkdir()
    skipped = []

    def keep_going(member, path):
        try:
            return safetar.data_filter(member, path)
        except safetar.FilterError as exc:
            skipped.append(str(exc))
            return None

    with tarfile.open(fileobj=io.BytesIO(_archive(HOSTILE)), mode="r|gz") as tar:
        safetar.extract_all(tar, dest, keep_going)
    names = sorted(str(p.relative_to(dest)) for p in dest.rglob("*"))
    assert not (tmp_path / "escape.txt").exists()
    assert (dest / "ok.txt").read_text() == "fine" and (dest / "sub" / "inner.txt").read_text() == "deep"
    assert "link" not in names and "up" not in names and "fifo" not in names
    assert (dest / "ok.txt").stat().st_mode & 0o7777 == 0o755  # no setuid, no group/other write
    assert len(skipped) >= 4, skipped
    if "abs.txt" in names:  # both filters strip the leading slash: inside the destination
        assert (dest / "abs.txt").read_text() == "stripped"


def test_debian_python_without_filters(tmp_path):
    """With Debian's own python3.11 (3.11.2, no tarfile.data_filter) when this machine has it."""
    debian = Path("/usr/bin/python3.11")
    if not debian.exists():
        pytest.skip("no /usr/bin/python3.11 here")
    probe = subprocess.run([str(debian), "-c", "import tarfile; print(hasattr(tarfile, 'data_filter'))"],
                           capture_output=True, text=True)
    if probe.stdout.strip() != "False":
        pytest.skip("this python3.11 has tarfile filters")
    archive = tmp_path / "a.tgz"
    archive.write_bytes(_archive(HOSTILE))
    dest = tmp_path / "dest"
    code = ("import sys, tarfile; from agent import safetar; skipped=[]\n"
            "def f(m, p):\n"
            "    try: return safetar.data_filter(m, p)\n"
            "    except safetar.FilterError as e: skipped.append(str(e))\n"
            f"t = tarfile.open({str(archive)!r}, 'r:gz'); safetar.extract_all(t, {str(dest)!r}, f); print(len(skipped))")
    out = subprocess.run([str(debian), "-c", code], capture_output=True, text=True,
                         cwd=Path(__file__).resolve().parents[2], env={**os.environ, "PYTHONPATH": "."})
    assert out.returncode == 0, out.stderr
    assert int(out.stdout) >= 4
    assert (dest / "ok.txt").read_text() == "fine" and not (tmp_path / "escape.txt").exists()
    assert not (dest / "link").exists() and not (dest / "fifo").exists()
    assert sys.version_info >= (3, 11)
