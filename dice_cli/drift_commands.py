"""`dice runtime diff` and `dice runtime sync`: is a runtime in sync with its release, and put it back."""

from __future__ import annotations

import json

from dice_cli.api_commands import find_application, find_runtime
from dice_cli.client import Client
from dice_cli.output import add_format_option, emit


def _show(value) -> str:
    return "(absent)" if value is None else json.dumps(value) if not isinstance(value, str) else value


def cmd_diff(args) -> int:
    client = Client.from_login()
    app = find_application(client, args.app)
    runtime = find_runtime(client, app, args.workspace, args.runtime)
    drift = client.get(f"runtimes/{runtime['id']}/drift/")
    if args.format == "json":
        emit(drift, "json")
    else:
        version = f"v{drift['release']}" if drift.get("release") else "no release"
        print(f"{app['full_name']} {args.workspace.upper()}/{args.runtime}: {drift['sync']} with {version}"
              + (f" ({drift['reason']})" if drift.get("reason") else ""))
        for item in drift["items"]:
            where = f"{item['object']}" + (f" {item['field']}" if item["field"] else "")
            print(f"- {where}: release {_show(item['desired'])}, live {_show(item['live'])}")
    return 1 if args.exit_code and drift["sync"] != "in sync" else 0


def register_runtime(runtime, target, waiting, finish) -> None:
    """Add `diff` and `sync` to the `runtime` command group."""
    p = runtime.add_parser("diff", help="in sync or out of sync with its release, and the differences")
    target(p)
    p.add_argument("--exit-code", action="store_true", help="exit 1 when out of sync (or unknown)")
    add_format_option(p)
    p.set_defaults(func=cmd_diff)
    p = runtime.add_parser("sync", help="apply the runtime's release again, putting back what drifted")
    target(p)
    waiting(p)

    def cmd_sync(args) -> int:
        client = Client.from_login()
        app = find_application(client, args.app)
        runtime_record = find_runtime(client, app, args.workspace, args.runtime)
        return finish(client, client.post(f"runtimes/{runtime_record['id']}/sync/", {}), args)

    p.set_defaults(func=cmd_sync)
