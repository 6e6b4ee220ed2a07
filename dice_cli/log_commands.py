"""`dice logs RUN[/ALIAS] [-f]`: a pipeline run's logs; `dice runtime logs ...`: a runtime service's.

Pipeline logs are read from /api/task-runs/<id>/log/?after=N; -f polls that endpoint every
POLL seconds until every task's log is complete (the console persists every line, so polling
from the last number seen never loses or repeats one). Runtime logs are not persisted: without
-f the last --tail lines come from /api/logs/runtimes/<id>/<service>/; with -f the command
follows /ws/logs/ (token in the Authorization header) until Ctrl-C."""

from __future__ import annotations

import json
import sys
import time

from dice_cli.api_commands import find_application, find_runtime
from dice_cli.client import Client, load_login
from dice_cli.errors import CliError

POLL = 0.5
FINISHED = {"success", "failed", "cancelled", "skipped", "timed-out"}


def register(subparsers) -> None:
    p = subparsers.add_parser("logs", help="print (and follow) the logs of a pipeline run")
    p.add_argument("target", metavar="RUN[/ALIAS]", help="a pipeline run id, optionally /alias for one task")
    p.add_argument("-f", "--follow", action="store_true", help="keep printing until the log is complete")
    p.add_argument("--no-prefix", action="store_true", help="do not prefix lines with [alias]")
    p.add_argument("--timeout", type=float, default=0, help="with -f, give up after this many seconds (0: never)")
    p.set_defaults(func=cmd_logs)


def register_runtime(runtime_subparsers, target) -> None:
    """Add `dice runtime logs` to the `runtime` group (target adds ORG/PROJECT/APP, --workspace, --runtime)."""
    p = runtime_subparsers.add_parser("logs", help="a service's logs, all replicas merged (-f follows)")
    target(p)
    p.add_argument("--service", "-s", required=True, metavar="S")
    p.add_argument("-f", "--follow", action="store_true", help="follow new lines and events until Ctrl-C")
    p.add_argument("--tail", type=int, default=200, metavar="N", help="lines to show first (200)")
    p.set_defaults(func=cmd_runtime_logs)


def _poll(client: Client, path: str, follow: bool, **params):
    """GET through the client; while following, a server error or a dropped connection is tried
    again (a console restarting, a busy database) before giving up."""
    attempts = 10 if follow else 1
    for attempt in range(attempts):
        if attempt:
            time.sleep(min(5.0, 0.2 * 2 ** attempt))
        try:
            response = client.session.get(f"{client.server}/api/{path}", params=params, timeout=client.timeout)
        except Exception:
            if attempt == attempts - 1:
                return client.get(path, **params)  # the client's one-line error
            continue
        if response.status_code < 500 or attempt == attempts - 1:
            break
    return client.get(path, **params) if response.status_code >= 400 else response.json()


def _parse_target(text: str) -> tuple[int, str | None]:
    run, _, alias = text.partition("/")
    if not run.isdigit():
        raise CliError(f"RUN must be a pipeline run id, got {run!r}", 2)
    return int(run), alias or None


def cmd_logs(args) -> int:
    client = Client.from_login()
    run_id, alias = _parse_target(args.target)
    run = _poll(client, f"pipeline-runs/{run_id}/", args.follow)
    tasks = sorted(run.get("tasks") or [], key=lambda t: (t.get("stage", 0), t["id"]))
    if alias is not None:
        tasks = [t for t in tasks if t["alias"] == alias]
        if not tasks:
            raise CliError(f"run {run_id} has no task {alias!r}")
    prefix = alias is None and not args.no_prefix
    after = {t["id"]: 0 for t in tasks}
    complete = {t["id"]: False for t in tasks}
    deadline = time.monotonic() + args.timeout if args.timeout else None
    out = sys.stdout
    while True:
        for task in tasks:
            tid = task["id"]
            while not complete[tid]:
                page = _poll(client, f"task-runs/{tid}/log/", args.follow, after=after[tid])
                for line in page["lines"]:
                    out.write((f"[{task['alias']}] " if prefix else "") + line["text"] + "\n")
                    after[tid] = line["number"]
                complete[tid] = page["complete"]
                if not page["lines"]:
                    break
            out.flush()
        if not args.follow or all(complete.values()):
            break
        if alias is None:  # tasks of a run that is still being planned may appear later
            known = {t["id"] for t in tasks}
            fresh = _poll(client, f"pipeline-runs/{run_id}/", True).get("tasks") or []
            for task in fresh:
                if task["id"] not in known:
                    tasks.append(task)
                    after[task["id"]], complete[task["id"]] = 0, False
        if deadline is not None and time.monotonic() > deadline:
            raise CliError("timed out before the log was complete")
        time.sleep(POLL)
    return 0


def _runtime(client: Client, args) -> dict:
    app = find_application(client, args.app)
    return find_runtime(client, app, args.workspace, args.runtime)


def _print_runtime_line(line: list) -> None:
    sys.stdout.write(f"[{line[4]}] {line[3]}\n")


def cmd_runtime_logs(args) -> int:
    client = Client.from_login()
    runtime = _runtime(client, args)
    if args.follow:
        return follow_runtime(client, f"runtime:{runtime['id']}:{args.service}", max(0, args.tail))
    data = client.get(f"logs/runtimes/{runtime['id']}/{args.service}/", tail=max(0, args.tail))
    for line in data["lines"]:
        _print_runtime_line(line)
    sys.stdout.flush()
    return 0


def follow_runtime(client: Client, stream: str, tail: int) -> int:
    """Print the follower's recent lines (the last `tail` of its first message), then live ones."""
    try:
        from websockets.sync.client import connect
    except ImportError:
        raise CliError("-f needs the `websockets` package (pip install websockets)") from None
    login = load_login()
    base = login["server"]
    url = ("wss://" if base.startswith("https://") else "ws://") + base.split("://", 1)[1] + "/ws/logs/"
    last: dict[str, int] = {}
    first = True
    try:
        with connect(url, additional_headers={"Authorization": f"Bearer {login['token']}"}, origin=base,
                     open_timeout=client.timeout) as ws:
            ws.send(json.dumps({"type": "subscribe", "stream": stream, "from": {}}))
            while True:
                message = json.loads(ws.recv())
                if message.get("type") == "lines":
                    lines = message["lines"]
                    if first:
                        lines = lines[-tail:] if tail else []
                    first = False
                    for line in lines:
                        if line[0] > last.get(line[4], 0):
                            last[line[4]] = line[0]
                            _print_runtime_line(line)
                    sys.stdout.flush()
                elif message.get("type") == "events":
                    for ev in message["events"]:
                        sys.stdout.write(f"* {ev['type']} {ev['reason']} {ev['object']}: {ev['message']}\n")
                    sys.stdout.flush()
                elif message.get("type") == "error":
                    raise CliError(message.get("error", "error"))
    except OSError as exc:
        raise CliError(f"cannot follow {url}: {exc}") from None
    except Exception as exc:  # websockets' ConnectionClosed and InvalidStatus
        code = getattr(getattr(exc, "rcvd", None), "code", None)
        if code in (4401, 4404):
            raise CliError("not found or not allowed" if code == 4404 else "the server refused the token") from None
        if exc.__class__.__name__.startswith(("ConnectionClosed", "Invalid")):
            raise CliError(f"the log stream closed: {exc}") from None
        raise
