"""A runtime's secrets on the local cluster: the console's secret variables and the project configs
its `((KEY))` placeholders name are in no file under the root (the state file keeps environments
sealed, scheduler/local/sealed.py), a process that prints them has them masked in its log (its
shim masks, as a step's agent does), and a supervisor that takes over still starts replicas with
them."""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path

from scheduler.base import Health
from scheduler.local import LocalExecutor
from scheduler.local.sealed import SEALED
from tests.local.conftest import group_of, pid_alive, wait_for

SECRET_VAR = "tok-7Hq2-SECRET-VARIABLE"
SECRET_CFG = "pw-Zk81-SECRET-CONFIG"
SPEC = """
version: "2.0"
services:
  web:
    cmd: >-
      echo "token=$API_TOKEN url=$DB_URL b64=$(printf %s "$API_TOKEN" | base64)";
      echo "plain=$GREETING";
      exec sleep 600
    envs:
      DB_URL: "postgres://app:((DB_PASS))@db/app"
      GREETING: hello
    resources: {cpu: 0.05, mem: 32}
"""


def _group(runtime):
    return group_of(SPEC, runtime, secret_variables={"API_TOKEN": SECRET_VAR}, secret_configs={"DB_PASS": SECRET_CFG},
                    variables={"PLAIN_VAR": "visible"})


def _forms() -> list[bytes]:
    return [s.encode() for s in (SECRET_VAR, SECRET_CFG)] + [base64.b64encode(SECRET_VAR.encode())]


def _files_holding_secrets(root) -> list[str]:
    found = []
    for path in root.rglob("*"):
        if path.is_file() and not path.is_socket():
            data = path.read_bytes()
            if any(form in data for form in _forms()):
                found.append(str(path.relative_to(root)))
    return found


def _log_lines(executor, runtime) -> list[str]:
    return [line.text for line in executor.logs(runtime, "web")]


def test_secrets_are_masked_in_logs_and_sealed_in_the_state_file(make_executor, local_root, runtime):
    executor = make_executor()
    executor.apply(_group(runtime))
    wait_for(lambda: any(t.startswith("plain=") for t in _log_lines(executor, runtime)), 30, "the service's lines")
    lines = _log_lines(executor, runtime)
    assert "token=****** url=postgres://app:******@db/app b64=******" in lines, lines
    assert "plain=hello" in lines  # only secrets are masked

    state = json.loads((executor.runtime_dir(runtime.namespace) / "state.json").read_text())
    assert set(state["units"]["web"]["env"]) == {SEALED}
    assert _files_holding_secrets(local_root) == []

    # The process has them, and not the list of what to mask.
    pid = executor.pids(runtime)["web-0"]["process"]
    environ = dict(item.split("=", 1) for item in
                   Path(f"/proc/{pid}/environ").read_bytes().decode().split("\0") if "=" in item)
    assert environ["API_TOKEN"] == SECRET_VAR and SECRET_CFG in environ["DB_URL"]
    assert "DICE_MASK" not in environ

    # A supervisor that takes the root over starts the replica again with its secrets.
    executor.close()
    successor = make_executor()
    assert successor.leader
    assert not successor.drift(_group(runtime)).items  # the sealed environment reads back as applied
    os.kill(pid, 9)
    wait_for(lambda: successor.pids(runtime).get("web-0", {}).get("process") not in (None, 0, pid), 30,
             "the replica restarted by the successor")
    wait_for(lambda: successor.status(runtime).health is Health.HEALTHY, 30, "the restarted replica")
    wait_for(lambda: len([t for t in _log_lines(successor, runtime) if t.startswith("token=")]) == 2, 30,
             "the restarted replica's line")
    again = [t for t in _log_lines(successor, runtime) if t.startswith("token=")]
    assert again[-1] == "token=****** url=postgres://app:******@db/app b64=******"
    new_pid = successor.pids(runtime)["web-0"]["process"]
    assert pid_alive(new_pid)
    assert f"API_TOKEN={SECRET_VAR}".encode() in Path(f"/proc/{new_pid}/environ").read_bytes()
    assert _files_holding_secrets(local_root) == []


def test_a_follower_reads_the_sealed_state(make_executor, local_root, runtime):
    executor = make_executor()
    executor.apply(_group(runtime))
    wait_for(lambda: executor.status(runtime).health is Health.HEALTHY, 30, "the service")
    other = LocalExecutor(local_root)
    try:
        assert not other.leader
        assert not other.drift(_group(runtime)).items
        changed = _group(runtime)
        changed.secret_variables["API_TOKEN"] = "another"
        assert [(i.field, i.desired) for i in other.drift(changed).items] == [("variables.API_TOKEN", "(secret)")]
    finally:
        other.close()
