"""The `flink` action's command: the Flink CLI (`flink run`) submitting the step's job to a
session cluster, followed until it ends, in the step's sandbox.

The Flink kind places this file in the step's folder and the step agent runs it with the Flink
engine's interpreter (standard library only: it must not import the console), so the step is an
ordinary step of the agent: its output is the step's live log, `action meta:` lines its
outputs, the agent's timeout and a cancel stop it. What it adds to the bare CLI:

- a private FLINK_CONF_DIR (the cluster's REST address, the distribution's JVM options and log
  configuration) and log directory, so the client never reads the cluster's own configuration;
- the job's states as the cluster reports them (`flink job <id>: RUNNING`), once each;
- on failure, the job's exceptions from the REST API (root exception and history, each as its
  first line and its causes), which the CLI's own trace buries or, detached, never shows;
- a stop (SIGTERM from the agent's timeout or the step's cancel) cancels the job on the cluster
  first: a client's death alone leaves a session job running;
- the step ends with the job, even when the CLI returned at its submission (a program that does
  not wait for its job: the Table API's executeSql); `detach`: once every task of the job runs
  (a streaming job).

Usage: python stepclient.py CONFIG.json, CONFIG = {argv, env, conf, flink_home, rest, job_id,
detach, notes, cluster, poll}.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request

ENDED = {"FINISHED", "FAILED", "CANCELED", "SUSPENDED"}
LIVE = {"CREATED", "INITIALIZING", "RUNNING", "RESTARTING", "FAILING", "RECONCILING"}


def say(text: str) -> None:
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


class Cluster:
    """The few REST calls the client needs (urllib: nothing beyond the standard library)."""

    def __init__(self, url: str, job_id: str):
        self.url = url.rstrip("/")
        self.job_id = job_id

    def call(self, method: str, path: str) -> dict | None:
        request = urllib.request.Request(self.url + path, method=method)
        try:
            with urllib.request.urlopen(request, timeout=10) as answer:
                body = answer.read()
        except urllib.error.HTTPError as exc:
            if exc.code == 404:
                return None
            raise
        return json.loads(body) if body else {}

    def job(self) -> dict | None:
        try:
            return self.call("GET", f"/jobs/{self.job_id}")
        except (OSError, ValueError):
            return None

    def cancel(self) -> None:
        try:
            if self.call("PATCH", f"/jobs/{self.job_id}?mode=cancel") is None:
                say(f"flink job {self.job_id}: not on the cluster (never submitted): nothing to cancel")
                return
            say(f"flink job {self.job_id}: cancelled")
        except (OSError, ValueError) as exc:
            say(f"flink job {self.job_id}: cancel failed: {exc}")

    def exceptions(self) -> list[str]:
        """The job's root exception and its history, each as its first line and its causes."""
        try:
            answer = self.call("GET", f"/jobs/{self.job_id}/exceptions") or {}
        except (OSError, ValueError) as exc:
            return [f"(the job's exceptions could not be read: {exc})"]
        traces = []
        if answer.get("root-exception"):
            traces.append(answer["root-exception"])
        for entry in (answer.get("exceptionHistory") or {}).get("entries") or []:
            trace = entry.get("stacktrace") or entry.get("exceptionName") or ""
            if trace and trace not in traces:
                traces.append(trace)
        return [line for trace in traces[:5] for line in summary(trace)]


def summary(trace: str) -> list[str]:
    lines = [line.rstrip() for line in trace.splitlines() if line.strip()]
    if not lines:
        return []
    return [lines[0]] + [line.strip() for line in lines[1:] if line.strip().startswith("Caused by:")]


def all_tasks_running(details: dict) -> bool:
    vertices = details.get("vertices") or []
    return bool(vertices) and all(v.get("status") in ("RUNNING", "FINISHED") for v in vertices)


def private_conf(config: dict) -> dict[str, str]:
    """FLINK_CONF_DIR and FLINK_LOG_DIR of this client, in a temporary directory of its own."""
    top = tempfile.mkdtemp(prefix="flink-client-")
    conf_dir = os.path.join(top, "conf")
    os.makedirs(conf_dir)
    with open(os.path.join(conf_dir, "config.yaml"), "w") as fh:
        for key, value in sorted((config.get("conf") or {}).items()):
            fh.write(f"{json.dumps(str(key))}: {json.dumps(value)}\n")
    shipped = os.path.join(config.get("flink_home") or "", "conf")
    for name in ("log4j-cli.properties", "log4j-console.properties"):
        if os.path.exists(os.path.join(shipped, name)):
            shutil.copy(os.path.join(shipped, name), os.path.join(conf_dir, name))
    return {"FLINK_CONF_DIR": conf_dir, "FLINK_LOG_DIR": top}


class Follower:
    """Reports each state the job is seen in, once."""

    def __init__(self, cluster: Cluster):
        self.cluster = cluster
        self.last = ""
        self.details: dict = {}

    def look(self) -> str:
        details = self.cluster.job()
        if details is None:
            return ""
        self.details = details
        state = str(details.get("state") or "")
        if state == "RUNNING" and not all_tasks_running(details):
            state = "DEPLOYING"  # every task must run before the job does its work
        if state and state != self.last:
            say(f"flink job {self.cluster.job_id}: {state}")
            self.last = state
        return state


def main(path: str) -> int:
    with open(path) as fh:
        config = json.load(fh)
    for note in config.get("notes") or []:
        say(note)
    cluster = Cluster(config["rest"], config["job_id"])
    follower = Follower(cluster)
    env = {**os.environ, **(config.get("env") or {}), **private_conf(config)}
    say(f"action meta: job_id={cluster.job_id}")
    say(f"action meta: cluster={config.get('cluster', '')}")
    stopping = threading.Event()
    client: subprocess.Popen | None = None

    def stop(signum, frame) -> None:  # the agent's timeout, or the step's cancel
        if stopping.is_set():
            return
        stopping.set()
        say(f"flink job {cluster.job_id}: the step is stopping: cancelling the job")
        if client is not None and client.poll() is None:
            client.terminate()
            try:
                client.wait(timeout=5)
            except subprocess.TimeoutExpired:
                client.kill()
        # after the client: a submission it had under way when stopped is cancelled too
        if follower.look() not in ENDED:
            cluster.cancel()
        sys.exit(143)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    say("$ " + " ".join(config["argv"]))
    client = subprocess.Popen(config["argv"], env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT)

    def pump() -> None:
        for raw in iter(client.stdout.readline, b""):
            say(raw.decode("utf-8", errors="replace").rstrip("\n"))

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    poll = float(config.get("poll") or 1.0)
    while client.poll() is None:
        follower.look()
        time.sleep(poll)
    reader.join(timeout=5)
    code = client.returncode
    state = follower.look()
    if code == 0:
        # The CLI may return once the job is submitted (detached, or a program that does not wait
        # for its job, as the Table API's executeSql does): the step ends with the job, or once
        # it runs when detached.
        while state and state not in ENDED and not (config.get("detach") and state == "RUNNING"):
            time.sleep(poll)
            state = follower.look()
    elif code != 0 and state in LIVE | {"DEPLOYING"}:
        say(f"flink job {cluster.job_id}: the client failed (exit code {code}) while the job is {state}: "
            "cancelling it")
        cluster.cancel()
        state = follower.look() or state
    say(f"action meta: state={state or 'NOT SUBMITTED'}")
    failed = code != 0 or state in ("FAILED", "CANCELED", "SUSPENDED") or not state
    if failed and state:
        lines = cluster.exceptions()
        if lines:
            say(f"flink job {cluster.job_id}: exceptions:")
            for line in lines:
                say("  " + line)
    if not state and code == 0:
        say("the program ended without submitting a job")
    return (code or 1) if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
