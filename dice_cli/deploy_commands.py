"""`dice deploy ...` and `dice runtime ...`: roll releases out onto runtimes and operate them over the API."""

from __future__ import annotations

import json
import time
from pathlib import Path

from dice_cli import drift_commands, log_commands
from dice_cli.api_commands import find_application, find_runtime
from dice_cli.client import Client, post_spec
from dice_cli.errors import CliError
from dice_cli.folders import spec_folder_archive
from dice_cli.inputs import read_spec_file
from dice_cli.output import add_format_option, emit
from dice_cli.release_commands import parse_images

FINAL = {"healthy", "failed", "cancelled", "superseded"}


def _release_id(client: Client, app: dict, value: str) -> int:
    """A release given as its id (`42`) or its version (`v3`)."""
    if value.lower().startswith("v") and value[1:].isdigit():
        found = client.get("releases/", application=app["id"], version=int(value[1:]))["results"]
        if not found:
            raise CliError(f"{app['full_name']} has no release {value}")
        return found[0]["id"]
    if not value.isdigit():
        raise CliError(f"--release must be a release id or vN, got {value!r}", 2)
    return int(value)


def _progress_lines(progress: dict) -> list[str]:
    lines = []
    for section in ("addons", "services"):
        for name, p in (progress.get(section) or {}).items():
            reason = f" ({p['reason']})" if p.get("reason") else ""
            lines.append(f"  {name}: {p['ready']}/{p['desired']} ready, {p['health']}{reason}")
    for name, p in (progress.get("jobs") or {}).items():  # a data engine's jobs: their run's state
        message = f" ({p['message']})" if p.get("message") else ""
        lines.append(f"  job {name}: run {p['run']} {p['state']}{message}")
    return lines


def wait_for(client: Client, deployment: dict, timeout: float, quiet: bool = False) -> dict:
    """Poll the deployment until it ends, printing each change; returns its last state."""
    deadline = time.monotonic() + timeout
    seen: list[str] = []
    while True:
        lines = [f"deployment #{deployment['id']}: {deployment['status']}", *_progress_lines(deployment["progress"])]
        if lines != seen and not quiet:
            for line in lines:
                if line not in seen:
                    print(line, flush=True)
            seen = lines
        if deployment["status"] in FINAL:
            return deployment
        if time.monotonic() > deadline:
            raise CliError(f"deployment #{deployment['id']} is still {deployment['status']} after {timeout:.0f}s")
        time.sleep(1.0)
        deployment = client.get(f"deployments/{deployment['id']}/")


def _finish(client: Client, deployment: dict, args) -> int:
    if args.wait:
        deployment = wait_for(client, deployment, args.timeout, quiet=args.format == "json")
    if args.format == "json":
        emit(deployment, "json")
    else:
        print(f"{deployment['application_name']} v{deployment['version']} -> {deployment['workspace']}/"
              f"{deployment['runtime_name']}: deployment #{deployment['id']} {deployment['status']}"
              + (f": {deployment['message']}" if deployment.get("message") else ""))
    if args.wait and deployment["status"] != "healthy":
        return 1
    return 0


# ---- dice deploy -------------------------------------------------------------------------------------


def _post_deploy(client: Client, data: dict, filename: str, archive: bytes | None = None) -> dict | None:
    """POST /api/deployments/ (a deploy may take a while to accept); None when the spec was refused."""
    return post_spec(client, "deployments/", data, filename=filename, timeout=max(client.timeout, 300.0),
                     archive=archive)


def cmd_deploy(args) -> int:
    if bool(args.release) == bool(args.spec):
        raise CliError("give either --release or --spec", 2)
    client = Client.from_login()
    app = find_application(client, args.app)
    data = {"application": app["id"], "workspace": args.workspace.upper(), "runtime": args.runtime}
    archive = None
    if args.release:
        data["release"] = _release_id(client, app, args.release)
    else:
        raw = read_spec_file(args.spec)
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise CliError(f"{args.spec}: not UTF-8 text")
        data.update(spec_text=text, images=parse_images(args.image), description=args.description,
                    source_name="stdin" if args.spec == "-" else Path(args.spec).name)
        archive = spec_folder_archive(args.spec, app, args.no_files)
    deployment = _post_deploy(client, data, args.spec or "dice.yml", archive)
    if deployment is None:
        return 1
    return _finish(client, deployment, args)


# ---- dice runtime ------------------------------------------------------------------------------------


def _runtime_rows(runtime: dict) -> list[dict]:
    rows = []
    for s in runtime["status"]["services"]:
        rows.append({
            "service": s["name"], "replicas": f"{s['ready']}/{s['desired']}", "health": s["health"],
            "url": s["url"] if s["exposed"] else "", "reason": s["reason"],
        })
    for a in runtime["status"]["addons"]:
        rows.append({"service": f"{a['name']} (addon)", "replicas": f"{a['ready']}/{a['desired']}",
                     "health": a["health"], "url": "", "reason": a["reason"]})
    for j in runtime["status"].get("jobs") or []:  # a data engine's jobs: their latest run
        rows.append({"service": f"{j['name']} (job)", "replicas": j["run"], "health": j["state"], "url": "",
                     "reason": j["message"]})
    return rows


def cmd_status(args) -> int:
    client = Client.from_login()
    app = find_application(client, args.app)
    runtime = client.get(f"runtimes/{find_runtime(client, app, args.workspace, args.runtime)['id']}/")
    if args.format == "json":
        emit({
            "runtime": runtime["name"], "workspace": runtime["workspace"], "cluster": runtime["cluster"],
            "release": runtime["release"], "version": runtime["version"], **runtime["status"],
            "latest_deployment": runtime["latest_deployment"],
        }, "json")
        return 0
    status = runtime["status"]
    version = f"v{runtime['version']}" if runtime.get("version") else "no release"
    print(f"{app['full_name']} {runtime['workspace']}/{runtime['name']} on {runtime['cluster']}: {version}, "
          f"{status['health']}" + (f" ({status['reason']})" if status["reason"] else ""))
    emit(_runtime_rows(runtime), "text", ["service", "replicas", "health", "url", "reason"])
    if status.get("jobs"):
        print()
        emit(_job_rows(status["jobs"]), "text", ["job", "run", "state", "message"])
    return 0


def _job_rows(jobs: list[dict]) -> list[dict]:
    return [{"job": j["name"], "run": j["run"], "state": j["state"], "message": j["message"]} for j in jobs]


def cmd_jobs(args) -> int:
    """The runtime's data engine jobs (`engine: spark|flink`), each with its latest run."""
    client = Client.from_login()
    app = find_application(client, args.app)
    runtime = client.get(f"runtimes/{find_runtime(client, app, args.workspace, args.runtime)['id']}/")
    jobs = runtime["status"].get("jobs") or []
    if args.format == "json":
        emit(jobs, "json")
    else:
        emit(_job_rows(jobs), "text", ["job", "run", "state", "message"])
    return 0


def cmd_job_log(args) -> int:
    client = Client.from_login()
    app = find_application(client, args.app)
    runtime = find_runtime(client, app, args.workspace, args.runtime)
    found = client.get(f"runtimes/{runtime['id']}/job-log/", job=args.job)
    if args.format == "json":
        emit(found, "json")
        return 0
    print(f"job {found['job']}: " + (f"run {found['run']} " if found["run"] else "no run yet, ") + found["state"]
          + (f" ({found['message']})" if found["message"] else ""))
    for line in found["lines"]:
        print(line)
    return 0


def cmd_cancel_job(args) -> int:
    found = _runtime_action(args, "cancel-job", {"job": args.job})
    print(f"Cancelled {', '.join(found['cancelled'])} of job {args.job}" if found["cancelled"]
          else f"Job {args.job} had no run going")
    return 0


def cmd_list(args) -> int:
    client = Client.from_login()
    app = find_application(client, args.app)
    params = {"application": app["id"]}
    if args.workspace:
        params["workspace"] = args.workspace
    runtimes = client.list_all("runtimes/", **params)
    if args.format == "json":
        emit(runtimes, "json")
    else:
        emit([{**r, "version": f"v{r['version']}" if r.get("version") else ""} for r in runtimes], "text",
             ["workspace", "name", "cluster", "version", "updated"])
    return 0


def _runtime_action(args, action: str, data: dict | None = None) -> dict:
    client = Client.from_login()
    app = find_application(client, args.app)
    runtime = find_runtime(client, app, args.workspace, args.runtime)
    return client.post(f"runtimes/{runtime['id']}/{action}/", data or {})


def cmd_scale(args) -> int:
    if args.replicas < 0:
        raise CliError("REPLICAS must be 0 or more", 2)
    _runtime_action(args, "scale", {"service": args.service, "replicas": args.replicas})
    print(f"Scaled {args.service} to {args.replicas}")
    return 0


def cmd_custom_addon(args) -> int:
    """List the runtime's custom addons (with the keys given), or replace one's values."""
    client = Client.from_login()
    app = find_application(client, args.app)
    runtime = find_runtime(client, app, args.workspace, args.runtime)
    path = f"runtimes/{runtime['id']}/custom-addons/"
    if args.addon is None:
        if args.values:
            raise CliError("--set needs --addon NAME", 2)
        found = client.get(path)
    else:
        values: dict[str, str] = {}
        for item in args.values:
            key, sep, value = item.partition("=")
            if not sep or not key:
                raise CliError(f"expected KEY=VALUE, got {item!r}", 2)
            values[key] = value
        found = client.post(path, {"addon": args.addon, "values": values})
        print(f"Set {', '.join(sorted(values)) or 'no values'} of custom addon {args.addon}; deploy again to use them")
    if getattr(args, "format", "text") == "json":
        print(json.dumps(found))
    elif args.addon is None:
        for name, keys in found.items():
            print(f"{name}: {', '.join(keys) or '(no values given)'}")
        if not found:
            print("no custom addons in this runtime's spec")
    return 0


def cmd_restart(args) -> int:
    _runtime_action(args, "restart", {"service": args.service})
    print(f"Restarting {args.service}")
    return 0


def cmd_stop(args) -> int:
    _runtime_action(args, "stop")
    print(f"Stopped every service of {args.workspace.upper()}/{args.runtime} (addons keep running)")
    return 0


def cmd_rollback(args) -> int:
    client = Client.from_login()
    app = find_application(client, args.app)
    runtime = find_runtime(client, app, args.workspace, args.runtime)
    deployment = client.post(f"runtimes/{runtime['id']}/rollback/",
                             {"release": _release_id(client, app, args.release)})
    return _finish(client, deployment, args)


def cmd_delete(args) -> int:
    client = Client.from_login()
    app = find_application(client, args.app)
    runtime = find_runtime(client, app, args.workspace, args.runtime)
    client.request("DELETE", f"runtimes/{runtime['id']}/")
    print(f"Deleted runtime {args.workspace.upper()}/{args.runtime} of {app['full_name']}")
    return 0


def _target(p, *, workspace_required: bool = True) -> None:
    p.add_argument("app", metavar="ORG/PROJECT/APP")
    p.add_argument("--workspace", "-w", required=workspace_required, metavar="W", help="DEV, TEST, STAGING or PROD")
    p.add_argument("--runtime", "-r", default="main", metavar="NAME", help="runtime name (default: main)")


def _waiting(p) -> None:
    p.add_argument("--wait", action="store_true", help="follow the rollout; exit 1 unless it ends healthy")
    p.add_argument("--timeout", type=float, default=900, metavar="SECONDS", help="how long --wait waits (900)")
    add_format_option(p)


def register(subparsers) -> None:
    """Add the `deploy` and `runtime` commands."""
    p = subparsers.add_parser("deploy", help="deploy a release (or a dice.yml) onto a runtime")
    _target(p)
    p.add_argument("--release", metavar="ID|vN", help="an existing release")
    p.add_argument("--spec", metavar="FILE", help="a dice.yml: makes a release of it (with its folder's files "
                   "when the application has no repository) and deploys it")
    p.add_argument("--image", action="append", default=[], metavar="SERVICE=IMAGE", help="with --spec (repeatable)")
    p.add_argument("--description", default="", help="with --spec: the release's description")
    p.add_argument("--no-files", action="store_true", help="with --spec: do not upload the spec's folder")
    _waiting(p)
    p.set_defaults(func=cmd_deploy)

    runtime = subparsers.add_parser("runtime", help="operate an application's runtimes").add_subparsers(
        dest="action", metavar="ACTION"
    )
    runtime.required = True
    p = runtime.add_parser("list", help="the application's runtimes")
    p.add_argument("app", metavar="ORG/PROJECT/APP")
    p.add_argument("--workspace", "-w", metavar="W")
    add_format_option(p)
    p.set_defaults(func=cmd_list)
    p = runtime.add_parser("status", help="services, replicas, readiness and URLs, as the cluster reports them")
    _target(p)
    add_format_option(p)
    p.set_defaults(func=cmd_status)
    p = runtime.add_parser("jobs", help="the runtime's data engine jobs (engine: spark|flink) and their latest runs")
    _target(p)
    add_format_option(p)
    p.set_defaults(func=cmd_jobs)
    p = runtime.add_parser("job-log", help="the latest run of a data engine job: its state and log")
    _target(p)
    p.add_argument("job")
    add_format_option(p)
    p.set_defaults(func=cmd_job_log)
    p = runtime.add_parser("cancel-job", help="cancel the runs still going of a data engine job")
    _target(p)
    p.add_argument("job")
    p.set_defaults(func=cmd_cancel_job)
    p = runtime.add_parser("scale", help="set a service's replicas (until the next deployment)")
    _target(p)
    p.add_argument("service")
    p.add_argument("replicas", type=int)
    p.set_defaults(func=cmd_scale)
    p = runtime.add_parser("restart", help="rolling restart of a service")
    _target(p)
    p.add_argument("service")
    p.set_defaults(func=cmd_restart)
    p = runtime.add_parser(
        "custom-addon",
        help="list custom addons, or give one its connection values (secret; used from the next deploy)",
    )
    _target(p)
    p.add_argument("--addon", metavar="NAME", help="the custom addon to give values (omit to list them)")
    p.add_argument(
        "--set", dest="values", action="append", default=[], metavar="KEY=VALUE",
        help="a value of --addon (repeatable; together they replace its previous values)",
    )
    add_format_option(p)
    p.set_defaults(func=cmd_custom_addon)
    p = runtime.add_parser("stop", help="scale every service to zero")
    _target(p)
    p.set_defaults(func=cmd_stop)
    p = runtime.add_parser("rollback", help="deploy an earlier release onto the runtime again")
    _target(p)
    p.add_argument("--release", required=True, metavar="ID|vN")
    _waiting(p)
    p.set_defaults(func=cmd_rollback)
    p = runtime.add_parser("delete", help="remove everything the runtime runs, and the runtime")
    _target(p)
    p.set_defaults(func=cmd_delete)
    log_commands.register_runtime(runtime, _target)
    drift_commands.register_runtime(runtime, _target, _waiting, _finish)

