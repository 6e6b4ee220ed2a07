"""The console reads files its tenants' steps leave behind: never through a link elsewhere."""

from __future__ import annotations

import pytest

from apps.pipelines.builtin import _read_step_file


def test_release_reads_dice_yml_only_from_the_runs_directories(tmp_path):
    dirs = tmp_path / "runs" / "1" / "dirs"
    (dirs / "checkout").mkdir(parents=True)
    (dirs / "checkout" / "dice.yml").write_text("version: 2.0\n")
    secret = tmp_path / "var" / "secret_key"
    secret.parent.mkdir()
    secret.write_text("CONSOLE-SECRET-KEY")
    assert _read_step_file(dirs / "checkout" / "dice.yml", dirs) == "version: 2.0\n"
    with pytest.raises(ValueError, match="not in the run's directories"):
        _read_step_file(secret, dirs)  # `dice_yml: /path/to/the/console/secret_key`
    (dirs / "checkout" / "evil.yml").symlink_to(secret)
    with pytest.raises(ValueError, match="not in the run's directories"):
        _read_step_file(dirs / "checkout" / "evil.yml", dirs)
    (dirs / "checkout" / "sub").symlink_to(secret.parent, target_is_directory=True)
    with pytest.raises(ValueError, match="not in the run's directories"):
        _read_step_file(dirs / "checkout" / "sub" / "secret_key", dirs)


def test_a_result_file_that_is_a_link_is_not_read(tmp_path, settings):
    from types import SimpleNamespace

    from apps.pipelines import paths, steps

    settings.DICE_PIPELINE_ROOT = str(tmp_path / "pipelines")
    task = SimpleNamespace(run_id=4242, alias="build", attempt=1)
    folder = paths.step_dir(task)
    folder.mkdir(parents=True)
    other = tmp_path / "other-tenant-result.json"
    other.write_text('{"exit_code": 0, "outputs": {"token": "OTHER-TENANT"}}')
    (folder / "result.json").symlink_to(other)
    assert steps.read_result(task) is None
    (folder / "result.json").unlink()
    (folder / "result.json").write_text('{"exit_code": 0, "outputs": {}}')
    assert steps.read_result(task) == {"exit_code": 0, "outputs": {}}
