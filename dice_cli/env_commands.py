"""`dice env list|set|unset ORG/PROJECT/APP WORKSPACE ...`: the console's environment variables of
an application in one workspace, over /api/variables/, each with `--format json`. Runtimes take a
change on their next deploy; a secret's value is never printed (it reads back as ******)."""

from __future__ import annotations

import sys

from dice_cli.api_commands import find_application
from dice_cli.client import Client
from dice_cli.errors import CliError
from dice_cli.output import add_format_option, emit

WORKSPACES = ("DEV", "TEST", "STAGING", "PROD")
COLUMNS = ["name", "value", "secret", "updated"]


def _target(client: Client, args) -> tuple[dict, str]:
    workspace = args.workspace.upper()
    if workspace not in WORKSPACES:
        raise CliError(f"WORKSPACE must be one of {', '.join(WORKSPACES)}, got {args.workspace!r}", 2)
    return find_application(client, args.app), workspace


def _existing(client: Client, app: dict, workspace: str) -> dict[str, dict]:
    return {v["name"]: v for v in client.list_all("variables/", application=app["id"], workspace=workspace)}


def _pairs(args) -> list[tuple[str, str]]:
    if args.stdin:
        if len(args.pairs) != 1 or "=" in args.pairs[0]:
            raise CliError("with --stdin give one NAME (its value is read from standard input)", 2)
        value = sys.stdin.read()
        return [(args.pairs[0], value[:-1] if value.endswith("\n") else value)]
    out = []
    for pair in args.pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise CliError(f"give NAME=VALUE, got {pair!r} (or NAME with --stdin)", 2)
        out.append((name, value))
    return out


def cmd_env_list(args):
    client = Client.from_login()
    app, workspace = _target(client, args)
    emit(list(_existing(client, app, workspace).values()), args.format, COLUMNS)


def cmd_env_set(args):
    client = Client.from_login()
    app, workspace = _target(client, args)
    pairs = _pairs(args)
    existing = _existing(client, app, workspace)
    saved = []
    for name, value in pairs:
        data = {"application": app["id"], "workspace": workspace, "name": name, "value": value, "secret": args.secret}
        if name in existing:
            saved.append(client.request("PATCH", f"variables/{existing[name]['id']}/", json=data))
        else:
            saved.append(client.post("variables/", data))
    if args.format == "json":
        emit(saved, "json")
    else:
        for v in saved:
            print(f"Set {'secret ' if v['secret'] else ''}{v['name']} of {app['full_name']} in {workspace}.")
        print("Runtimes in that workspace take it on their next deploy.")


def cmd_env_unset(args):
    client = Client.from_login()
    app, workspace = _target(client, args)
    existing = _existing(client, app, workspace)
    missing = [n for n in args.names if n not in existing]
    if missing:
        raise CliError(f"{app['full_name']} has no variable {', '.join(missing)} in {workspace}; nothing was removed")
    for name in args.names:
        client.request("DELETE", f"variables/{existing[name]['id']}/")
    if args.format == "json":
        emit({"unset": args.names, "application": app["full_name"], "workspace": workspace}, "json")
    else:
        print(f"Unset {', '.join(args.names)} of {app['full_name']} in {workspace}; runtimes drop them on their next deploy.")


def register(subparsers):
    group = subparsers.add_parser(
        "env", help="environment variables of an application per workspace (taken on the next deploy)"
    ).add_subparsers(dest="action", metavar="ACTION", required=True)

    def command(name, func, help_text):
        p = group.add_parser(name, help=help_text)
        add_format_option(p)
        p.set_defaults(func=func)
        p.add_argument("app", metavar="ORG/PROJECT/APP")
        p.add_argument("workspace", metavar="WORKSPACE", help="DEV, TEST, STAGING or PROD")
        return p

    command("list", cmd_env_list, "the variables (secret values read as ******)")
    p = command("set", cmd_env_set, "set or replace variables")
    p.add_argument("pairs", nargs="+", metavar="NAME=VALUE")
    p.add_argument("--secret", action="store_true", help="keep it encrypted and write-only (a Secret on Kubernetes)")
    p.add_argument("--stdin", action="store_true", help="read the value of one NAME from standard input")
    p = command("unset", cmd_env_unset, "remove variables")
    p.add_argument("names", nargs="+", metavar="NAME")
