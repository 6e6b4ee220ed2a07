"""The release action packs the files beside a step's dice.yml, never anything a link leads to."""

from __future__ import annotations

import io
import os
import tarfile

import pytest

from apps.pipelines.builtin import _step_folder_archive


def _names(data: bytes) -> list[str]:
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        return sorted(m.name for m in tar.getmembers())


def test_links_out_of_the_run_and_vcs_folders_are_left_out(tmp_path):
    secret = tmp_path / "console-secret"
    secret.write_text("key")
    dirs = tmp_path / "run" / "dirs"
    folder = dirs / "checkout"
    (folder / "pkg").mkdir(parents=True)
    (folder / "dice.yml").write_text("version: '2.0'\n")
    (folder / "pkg" / "front.py").write_text("print(1)\n")
    (folder / ".git").mkdir()
    (folder / ".git" / "HEAD").write_text("ref\n")
    os.symlink(secret, folder / "stolen")
    os.symlink(tmp_path, folder / "up")
    os.mkfifo(folder / "pipe")
    assert _names(_step_folder_archive(folder, dirs)) == ["dice.yml", "pkg/front.py"]


def test_a_folder_outside_the_runs_directories_is_refused(tmp_path):
    (tmp_path / "dirs").mkdir()
    with pytest.raises(ValueError, match="not in the run's directories"):
        _step_folder_archive(tmp_path, tmp_path / "dirs")
