"""`dice alert list|add|remove`: alert rules on a runtime's service metrics, through the API."""

from __future__ import annotations

from dice_cli.api_commands import find_application, find_runtime
from dice_cli.client import Client
from dice_cli.errors import CliError
from dice_cli.output import add_format_option, emit

_COLUMNS = ["id", "runtime_name", "name", "service", "metric", "operator", "threshold", "duration", "state", "value"]


def _runtime(client: Client, args) -> dict:
    return find_runtime(client, find_application(client, args.app), args.workspace, args.runtime)


def cmd_list(args):
    client = Client.from_login()
    rules = client.list_all("alerts/rules/", runtime=_runtime(client, args)["id"])
    emit(rules, args.format, _COLUMNS)


def cmd_add(args):
    client = Client.from_login()
    rule = client.post("alerts/rules/", {
        "runtime": _runtime(client, args)["id"], "name": args.name, "service": args.service, "metric": args.metric,
        "operator": args.operator, "threshold": args.threshold, "duration": args.duration})
    emit(rule if args.format == "json" else [rule], args.format, _COLUMNS)


def cmd_remove(args):
    client = Client.from_login()
    runtime = _runtime(client, args)
    for rule in client.list_all("alerts/rules/", runtime=runtime["id"]):
        if rule["name"] == args.name:
            client.request("DELETE", f"alerts/rules/{rule['id']}/")
            print(f"removed {args.name}")
            return
    raise CliError(f"runtime {args.runtime} has no alert rule named {args.name!r}")


def register(subparsers):
    alert = subparsers.add_parser("alert", help="alert rules on a runtime's metrics").add_subparsers(
        dest="action", metavar="ACTION")
    alert.required = True
    for verb, helptext, func in (("list", "list a runtime's alert rules", cmd_list),
                                 ("add", "add a rule: SERVICE METRIC above|below THRESHOLD for DURATION", cmd_add),
                                 ("remove", "remove a rule by name", cmd_remove)):
        p = alert.add_parser(verb, help=helptext)
        p.add_argument("app", metavar="ORG/PROJECT/APP")
        p.add_argument("--workspace", "-w", metavar="W", required=True)
        p.add_argument("--runtime", "-r", metavar="NAME", default="main")
        if verb in ("add", "remove"):
            p.add_argument("name", metavar="NAME")
        if verb == "add":
            p.add_argument("--service", required=True)
            p.add_argument("--metric", required=True, choices=("cpu_millicores", "memory_mib", "restarts", "ready"))
            p.add_argument("--operator", choices=("above", "below"), default="above")
            p.add_argument("--threshold", type=float, required=True)
            p.add_argument("--duration", type=int, default=300, help="seconds beyond the threshold (default 300)")
        if verb != "remove":
            add_format_option(p)
        p.set_defaults(func=func)
