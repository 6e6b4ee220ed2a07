# ruff: noqa: F811
"""What a sandboxed step sees of its run's directories, and what that costs its sandbox: the
run's directories are one bind whatever the number of steps it needs (a step of a wide stage
needs the whole stage before it; one bind each made a hundred starts fight over the mount
table), and a step never sees another run's."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from apps.pipelines import paths
from scheduler.local import sandbox
from scheduler.local.jail import CommandWatch
from tests.pipelines_helpers import engine  # noqa: F401

pytestmark = pytest.mark.django_db(transaction=True)

WIDTH = 6


@pytest.fixture(autouse=True)
def _needs_the_sandbox():
    if not sandbox.isolation().enabled or os.geteuid() != 0:
        pytest.skip("needs the local sandbox as root (bubblewrap, per-tenant uids)")


def _source(width: int, probe: str) -> str:
    lines = ['version: "1.1"', "stages:", "  - stage:"]
    for i in range(width):
        lines += ["      - custom-script:", f"          alias: s{i}", f'          commands: ["echo from-s{i} > out"]']
    reads = " ".join(f"${{{{ dirs.s{i} }}}}/out" for i in range(width))
    lines += ["  - stage:", "      - custom-script:", "          alias: gather",
              f'          commands: ["cat {reads}", "echo gathered > out", "{probe}"]']
    return "\n".join(lines) + "\n"


def test_a_step_needing_a_whole_stage_gets_one_bind_for_the_runs_directories(engine, tenant_a, settings):
    first = engine.wait(engine.run(tenant_a, _source(WIDTH, "true")), timeout=60)
    assert first.status == "success", first.reason
    other = paths.dirs_root(first.pk)
    # The second run's last step looks for the first run's directories: they are not in its sandbox.
    second = engine.wait(engine.run(tenant_a, _source(WIDTH, f"test ! -e {other} && echo other-run-unseen")),
                         timeout=60)
    assert second.status == "success", second.reason
    gather = engine.tasks(second)["gather"]
    from apps.logs.services import read_task_lines

    texts = [line.text for line in read_task_lines(gather)]
    assert all(any(t.strip() == f"from-s{i}" for t in texts) for i in range(WIDTH)), texts
    assert any(t.strip() == "other-run-unseen" for t in texts), texts
    assert (paths.dirs_root(second.pk) / "gather" / "out").read_text() == "gathered\n"

    # Its sandbox bound the run's directories once, not once per directory it needed.
    local_root = Path(settings.DICE_LOCAL_ROOT)
    spec = next((json.loads(p.read_text()) for p in local_root.rglob("job.sandbox.json")
                 if f"/{gather.job_name}/" in str(p)), None)
    assert spec is not None, sorted(str(p) for p in local_root.rglob("*.sandbox.json"))
    runs_dirs = str(paths.dirs_root(second.pk))
    bound = [dest for _source, dest, mode in spec["binds"] if mode == "rw"]
    assert runs_dirs in bound, bound
    assert not [d for d in bound if d.startswith(runs_dirs + "/")], bound  # nothing under it bound again
    assert len(bound) <= 3, bound  # the step's folder, the run's directories (and nothing per step)


def test_step_mounts_bind_the_runs_directories_once_and_only_when_they_are_all_in_it(tmp_path):
    root = tmp_path / "runs" / "7" / "dirs"
    spec = {"workdir": f"{root}/c", "dirs": {f"s{i}": f"{root}/s{i}" for i in range(100)}}
    mounts = sandbox.step_mounts("/f", spec, "/agent", str(root))
    assert {p for p, m in mounts.items() if m == "rw"} == {"/f", str(root)}
    # A directory outside the run's (never made so by the console): each is bound itself, the
    # run's directories are not.
    spec["dirs"]["x"] = str(tmp_path / "elsewhere")
    mounts = sandbox.step_mounts("/f", spec, "/agent", str(root))
    assert str(root) not in mounts and mounts[str(tmp_path / "elsewhere")] == "rw"
    assert sum(1 for m in mounts.values() if m == "rw") == 1 + 1 + 101
    # A path that only looks inside by its text (`..`, `.`, a doubled or trailing slash) is bound
    # on its own, never taken for a directory of the run.
    for odd in (f"{root}/..", f"{root}/../../etc", f"{root}/s1/../../x", f"{root}/.", f"{root}//s1", f"{root}/s1/"):
        spec = {"workdir": f"{root}/c", "dirs": {"s1": f"{root}/s1", "odd": odd}}
        mounts = sandbox.step_mounts("/f", spec, "/agent", str(root))
        assert str(root) not in mounts and mounts[odd] == "rw", odd
    # Without the run's directory (an older caller): one bind each, as before.
    assert len(sandbox.step_mounts("/f", {"workdir": "/w", "dirs": {"a": "/a"}}, "/agent")) >= 3


def test_looking_for_a_sandboxed_command_backs_off():
    """A hundred shims wait for their commands at once in a wide stage: each looks at growing
    intervals, not every 0.5 ms (that kept two cores busy looking while bubblewrap waited)."""
    pid = os.fork()
    if pid == 0:  # an "init" without children for a while
        import time

        time.sleep(0.5)
        os._exit(0)
    try:
        watch = CommandWatch(pid, timeout=0.3)
        looks = 0
        import time

        start = time.monotonic()
        while not watch.look():
            looks += 1
            time.sleep(watch.wait() or 0)
        elapsed = time.monotonic() - start
        assert watch.pid is None and elapsed >= 0.3
        # 4, 8, 16, 32 ms, then every 50 ms: ~9 looks in 0.3 s (polling every 0.5 ms: 600)
        assert looks <= 12, looks
    finally:
        os.waitpid(pid, 0)
