"""`dice notify list|add|update|remove|test|deliveries`: a project's notification channels through the API."""

from __future__ import annotations

from dice_cli.client import Client
from dice_cli.errors import CliError
from dice_cli.output import add_format_option, emit

_COLUMNS = ["id", "project_name", "name", "kind", "target", "events", "enabled"]
_DELIVERY_COLUMNS = ["id", "created", "channel_name", "event", "status", "attempts", "response_code", "last_error"]


def _row(channel: dict) -> dict:
    return {**channel, "target": channel.get("url_hint") or channel.get("recipients") or "",
            "events": ",".join(channel.get("events") or []), "enabled": "yes" if channel.get("enabled") else "no"}


def _channel(client: Client, project: str, name: str) -> dict:
    for channel in client.list_all("notifications/channels/", project=project):
        if channel["name"] == name:
            return channel
    raise CliError(f"project {project} has no notification channel named {name!r}")


def _events(text: str | None) -> list[str] | None:
    return [e.strip() for e in text.split(",") if e.strip()] if text else None


def cmd_list(args):
    channels = Client.from_login().list_all("notifications/channels/", project=args.project)
    emit(channels if args.format == "json" else [_row(c) for c in channels], args.format, _COLUMNS)


def cmd_add(args):
    body: dict = {"project": args.project, "name": args.name, "kind": args.kind}
    if args.kind == "email":
        if not args.to:
            raise CliError("an email channel needs --to ADDRESS[,ADDRESS...]", 2)
        body["recipients"] = args.to
    else:
        if not args.url:
            raise CliError(f"a {args.kind} channel needs --url URL", 2)
        body["url"] = args.url
    if args.events:
        body["events"] = _events(args.events)
    channel = Client.from_login().post("notifications/channels/", body)
    if args.format == "json":
        emit(channel, "json")
        return
    emit([_row(channel)], "text", _COLUMNS)
    if channel.get("secret"):
        print(f"signing secret (shown once): {channel['secret']}")


def cmd_update(args):
    client = Client.from_login()
    channel = _channel(client, args.project, args.name)
    body: dict = {}
    if args.url:
        body["url"] = args.url
    if args.to:
        body["recipients"] = args.to
    if args.events:
        body["events"] = _events(args.events)
    if args.enable or args.disable:
        body["enabled"] = bool(args.enable)
    if not body:
        raise CliError("nothing to change: give --url, --to, --events, --enable or --disable", 2)
    emit([_row(client.request("PATCH", f"notifications/channels/{channel['id']}/", json=body))], "text", _COLUMNS)


def cmd_remove(args):
    client = Client.from_login()
    channel = _channel(client, args.project, args.name)
    client.request("DELETE", f"notifications/channels/{channel['id']}/")
    print(f"removed {args.name}")


def cmd_test(args):
    client = Client.from_login()
    channel = _channel(client, args.project, args.name)
    delivery = client.post(f"notifications/channels/{channel['id']}/test/", {})
    print(f"test delivery {delivery['id']} queued for {args.name}; `dice notify deliveries {args.project}` shows it")


def cmd_deliveries(args):
    client = Client.from_login()
    params = {"project": args.project}
    if args.channel:
        params["channel"] = _channel(client, args.project, args.channel)["id"]
    deliveries = client.get("notifications/deliveries/", limit=args.limit, **params)["results"]
    emit(deliveries, args.format, _DELIVERY_COLUMNS)


def register(subparsers):
    notify = subparsers.add_parser("notify", help="notification channels of a project").add_subparsers(
        dest="action", metavar="ACTION")
    notify.required = True
    p = notify.add_parser("list", help="list a project's channels")
    p.add_argument("project", metavar="ORG/PROJECT")
    add_format_option(p)
    p.set_defaults(func=cmd_list)
    for verb, helptext in (("add", "add a channel (webhook, slack or email)"), ("update", "change a channel")):
        p = notify.add_parser(verb, help=helptext)
        p.add_argument("project", metavar="ORG/PROJECT")
        p.add_argument("name", metavar="NAME")
        if verb == "add":
            p.add_argument("--kind", choices=("webhook", "slack", "email"), required=True)
            add_format_option(p)
        else:
            p.add_argument("--enable", action="store_true")
            p.add_argument("--disable", action="store_true")
        p.add_argument("--url", metavar="URL", help="the webhook's URL")
        p.add_argument("--to", metavar="ADDRESSES", help="e-mail addresses, comma-separated")
        p.add_argument("--events", metavar="E1,E2", help="events to send (default: all), e.g. deployment.failed")
        p.set_defaults(func=cmd_add if verb == "add" else cmd_update)
    p = notify.add_parser("remove", help="remove a channel")
    p.add_argument("project", metavar="ORG/PROJECT")
    p.add_argument("name", metavar="NAME")
    p.set_defaults(func=cmd_remove)
    p = notify.add_parser("test", help="send a test notification to a channel")
    p.add_argument("project", metavar="ORG/PROJECT")
    p.add_argument("name", metavar="NAME")
    p.set_defaults(func=cmd_test)
    p = notify.add_parser("deliveries", help="the delivery history")
    p.add_argument("project", metavar="ORG/PROJECT")
    p.add_argument("--channel", metavar="NAME")
    p.add_argument("--limit", type=int, default=50)
    add_format_option(p)
    p.set_defaults(func=cmd_deliveries)
