"""`dice user` (staff: accounts and invitations) and `dice member` (roles on an organization,
project or application), through the console's REST API."""

from __future__ import annotations

from dice_cli.api_commands import find_application, find_project, split_name
from dice_cli.client import Client
from dice_cli.errors import CliError
from dice_cli.output import add_format_option, emit

ROLES = ("owner", "lead", "developer", "ops", "guest")


def _user(client: Client, username: str) -> dict:
    found = client.get("users/", username=username)["results"]
    if not found:
        raise CliError(f"no user {username}")
    return found[0]


def cmd_user_list(args):
    emit(Client.from_login().list_all("users/"), args.format,
         ["username", "email", "is_active", "is_superuser", "organizations"])


def cmd_user_invite(args):
    body = {"username": args.username, "email": args.email or "", "role": args.role}
    if args.org:
        (body["organization"],) = split_name(args.org, 1, "an organization")
    invitation = Client.from_login().post("invitations/", body)
    if args.format == "json":
        emit(invitation, "json")
    else:
        print(f"Invited {invitation['username']}. One-time link (shown only now): {invitation['link']}")


def _set_active(args, active: bool):
    client = Client.from_login()
    user = _user(client, args.username)
    updated = client.request("PATCH", f"users/{user['id']}/", json={"is_active": active})
    emit(updated, args.format, ["username", "is_active"])


def cmd_user_deactivate(args):
    _set_active(args, False)


def cmd_user_activate(args):
    _set_active(args, True)


def _target(client: Client, name: str) -> tuple[dict, dict]:
    """(filter for members/, body fields) of ORG, ORG/PROJECT or ORG/PROJECT/APP."""
    parts = name.split("/")
    if len(parts) == 1:
        (org,) = split_name(name, 1, "an organization")
        client.get(f"orgs/{org}/")
        return {"org": org}, {"organization": org}
    if len(parts) == 2:
        org, project = split_name(name, 2, "a project")
        proj = find_project(client, org, project)
        return {"org": org, "project": proj["id"]}, {"organization": org, "project": proj["id"]}
    app = find_application(client, name)
    return ({"org": app["organization"], "application": app["id"]},
            {"organization": app["organization"], "project": app["project"], "application": app["id"]})


def _level(filters: dict) -> str:
    return "application" if "application" in filters else "project" if "project" in filters else "organization"


def _members(client: Client, filters: dict) -> list[dict]:
    level = _level(filters)
    return [m for m in client.list_all("members/", **filters) if m["level"] == level]


def _member(client: Client, filters: dict, username: str) -> dict:
    for m in _members(client, filters):
        if m["username"] == username:
            return m
    raise CliError(f"{username} has no role there")


def cmd_member_list(args):
    client = Client.from_login()
    filters, _ = _target(client, args.target)
    emit(_members(client, filters), args.format, ["username", "level", "role"])


def cmd_member_add(args):
    client = Client.from_login()
    _, body = _target(client, args.target)
    member = client.post("members/", {**body, "username": args.username, "role": args.role})
    emit(member, args.format, ["username", "level", "role"])


def cmd_member_set_role(args):
    client = Client.from_login()
    filters, _ = _target(client, args.target)
    member = _member(client, filters, args.username)
    updated = client.request("PATCH", f"members/{member['id']}/", json={"role": args.role})
    emit(updated, args.format, ["username", "level", "role"])


def cmd_member_remove(args):
    client = Client.from_login()
    filters, _ = _target(client, args.target)
    member = _member(client, filters, args.username)
    client.request("DELETE", f"members/{member['id']}/")
    print(f"Removed {args.username} from {args.target}")


def register(subparsers):
    user = subparsers.add_parser("user", help="user accounts and invitations (staff; owners may invite)")
    user = user.add_subparsers(dest="action", metavar="ACTION")
    user.required = True
    p = user.add_parser("list", help="list user accounts (staff)")
    add_format_option(p)
    p.set_defaults(func=cmd_user_list)
    p = user.add_parser("invite", help="make an account and print its one-time link to set a password")
    p.add_argument("username")
    p.add_argument("--email", default="")
    p.add_argument("--org", default="", help="give a role in this organization (owners may invite into theirs)")
    p.add_argument("--role", choices=ROLES, default="guest")
    add_format_option(p)
    p.set_defaults(func=cmd_user_invite)
    for name, func, text in (("deactivate", cmd_user_deactivate, "stop an account: sign-in, tokens, sockets"),
                             ("activate", cmd_user_activate, "let a deactivated account back in")):
        p = user.add_parser(name, help=f"{text} (staff)")
        p.add_argument("username")
        add_format_option(p)
        p.set_defaults(func=func)

    member = subparsers.add_parser("member", help="roles on an organization, project or application")
    member = member.add_subparsers(dest="action", metavar="ACTION")
    member.required = True
    target_help = "ORG, ORG/PROJECT or ORG/PROJECT/APP"
    p = member.add_parser("list", help="list the members with a role there")
    p.add_argument("target", metavar="TARGET", help=target_help)
    add_format_option(p)
    p.set_defaults(func=cmd_member_list)
    p = member.add_parser("add", help="give an existing user a role (guest unless --role)")
    p.add_argument("target", metavar="TARGET", help=target_help)
    p.add_argument("username")
    p.add_argument("--role", choices=ROLES, default="guest")
    add_format_option(p)
    p.set_defaults(func=cmd_member_add)
    p = member.add_parser("set-role", help="change a member's role")
    p.add_argument("target", metavar="TARGET", help=target_help)
    p.add_argument("username")
    p.add_argument("role", choices=ROLES)
    add_format_option(p)
    p.set_defaults(func=cmd_member_set_role)
    p = member.add_parser("remove", help="take a member's role away")
    p.add_argument("target", metavar="TARGET", help=target_help)
    p.add_argument("username")
    p.set_defaults(func=cmd_member_remove)
