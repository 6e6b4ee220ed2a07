"""The one git-checkout: the shell script both cluster kinds run (agent/checkout.py)."""

from __future__ import annotations

import subprocess

from agent.checkout import git_checkout_script, step_script


def _git(*args, cwd):
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True,
                   env={"PATH": "/usr/bin:/bin", "HOME": str(cwd), "GIT_AUTHOR_NAME": "Ann", "GIT_AUTHOR_EMAIL": "a@x",
                        "GIT_COMMITTER_NAME": "Ann", "GIT_COMMITTER_EMAIL": "a@x"})


def _run(script: str, workdir, metafile):
    workdir.mkdir(exist_ok=True)
    return subprocess.run(["/bin/sh", "-c", script], cwd=workdir, capture_output=True, text=True, timeout=60,
                          env={"PATH": "/usr/bin:/bin", "HOME": str(workdir), "METAFILE": str(metafile)})


def test_checkout_clones_the_branch_and_writes_the_outputs(tmp_path):
    repo = tmp_path / "repo"
    repo.mkdir()
    _git("init", "-q", "-b", "main", cwd=repo)
    (repo / "a.txt").write_text("a\n")
    _git("add", ".", cwd=repo)
    _git("commit", "-q", "-m", "first 'quoted' $(not run)", cwd=repo)
    meta = tmp_path / "meta"
    done = _run(git_checkout_script({"url": str(repo), "branch": "main", "depth": 1}), tmp_path / "w", meta)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == f"git clone {repo} (branch main)"
    assert lines[-1].startswith("checked out ") and lines[-1].endswith("first 'quoted' $(not run)")
    outputs = dict(line.split("=", 1) for line in meta.read_text().splitlines())
    assert outputs["branch"] == "main" and outputs["author"] == "Ann <a@x>" and len(outputs["commit"]) == 40


def test_hostile_params_stay_data(tmp_path):
    marker = tmp_path / "pwned"
    script = git_checkout_script({"url": f"/nonexistent/$(touch {marker})", "branch": f"x'; touch {marker}; '"})
    done = _run(script, tmp_path / "w", tmp_path / "meta")
    assert done.returncode != 0 and not marker.exists()


def test_without_a_url_the_step_fails_saying_why(tmp_path):
    done = _run(step_script({"type": "git-checkout", "params": {}}), tmp_path / "w", tmp_path / "meta")
    assert done.returncode == 2 and "needs the param `url`" in done.stderr


def test_commands_become_one_script_and_no_commands_none():
    assert step_script({"commands": ["echo a", "  ", "echo b"]}) == "set -e\necho a\necho b\n"
    assert step_script({"commands": []}) is None
