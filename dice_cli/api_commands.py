"""Commands that talk to the console's REST API: login, organizations, projects, applications."""

from __future__ import annotations

import re

from dice_cli.client import Client, save_login
from dice_cli.errors import CliError
from dice_cli.output import add_format_option, emit

_SLUG = re.compile(r"^[-a-zA-Z0-9_]+$")


def split_name(value: str, parts: int, what: str) -> list[str]:
    """`ORG`, `ORG/PROJECT` or `ORG/PROJECT/APP`, each part a slug."""
    pieces = value.split("/")
    if len(pieces) != parts or not all(_SLUG.match(p) for p in pieces):
        raise CliError(f"{what} must be written as {'/'.join(['ORG', 'PROJECT', 'APP'][:parts])}, got {value!r}", 2)
    return pieces


def find_project(client: Client, org: str, project: str) -> dict:
    client.get(f"orgs/{org}/")  # a clear "not found" for an unknown organization
    found = client.get("projects/", org=org, slug=project)["results"]
    if not found:
        raise CliError(f"no project {org}/{project}")
    return found[0]


def find_application(client: Client, name: str) -> dict:
    """Resolve ORG/PROJECT/APP to the application's API record."""
    org, project, app = split_name(name, 3, "an application")
    find_project(client, org, project)
    found = client.get("applications/", org=org, project=project, slug=app)["results"]
    if not found:
        raise CliError(f"no application {org}/{project}/{app}")
    return found[0]


def find_runtime(client: Client, app: dict, workspace: str, name: str) -> dict:
    """The application's runtime `name` in `workspace`, as its API record."""
    found = client.get("runtimes/", application=app["id"], workspace=workspace, name=name)["results"]
    if not found:
        raise CliError(f"{app['full_name']} has no runtime {name!r} in {workspace.upper()}")
    return found[0]


# ---- handlers --------------------------------------------------------------------------


def cmd_login(args):
    client = Client(args.server, args.token)
    me = client.get("me/")
    path = save_login(args.server, args.token)
    print(f"Logged in to {args.server} as {me['username']} (saved in {path})")


def cmd_org_create(args):
    (slug,) = split_name(args.org, 1, "an organization")
    org = Client.from_login().post("orgs/", {"slug": slug, "name": args.name or slug, "description": args.description})
    emit(org, args.format, ["slug", "name"])


def cmd_org_list(args):
    orgs = Client.from_login().list_all("orgs/")
    emit(orgs, args.format, ["slug", "name", "description"])


def cmd_project_create(args):
    org, slug = split_name(args.project, 2, "a project")
    client = Client.from_login()
    client.get(f"orgs/{org}/")
    project = client.post(
        "projects/", {"organization": org, "slug": slug, "name": args.name or slug, "description": args.description}
    )
    emit(project, args.format, ["full_name", "name"])


def cmd_project_list(args):
    client = Client.from_login()
    params = {}
    if args.org:
        (params["org"],) = split_name(args.org, 1, "an organization")
        client.get(f"orgs/{params['org']}/")
    emit(client.list_all("projects/", **params), args.format, ["full_name", "name", "description"])


def cmd_app_create(args):
    org, project, slug = split_name(args.app, 3, "an application")
    client = Client.from_login()
    proj = find_project(client, org, project)
    app = client.post("applications/", {
        "project": proj["id"], "slug": slug, "name": args.name or slug,
        "description": args.description, "repo_url": args.repo or "",
    })
    emit(app, args.format, ["full_name", "name", "repo_url"])


def cmd_app_list(args):
    client = Client.from_login()
    params = {}
    if args.project:
        params["org"], params["project"] = split_name(args.project, 2, "a project")
        find_project(client, params["org"], params["project"])
    emit(client.list_all("applications/", **params), args.format, ["full_name", "name", "repo_url"])


# ---- parser ----------------------------------------------------------------------------


def register(subparsers):
    login = subparsers.add_parser("login", help="store the server URL and an API token")
    login.add_argument("--server", required=True, help="console URL, e.g. http://127.0.0.1:8000")
    login.add_argument("--token", required=True, help="an API token (see the console's API tokens page)")
    login.set_defaults(func=cmd_login)

    org = subparsers.add_parser("org", help="organizations").add_subparsers(dest="action", metavar="ACTION")
    org.required = True
    p = org.add_parser("create", help="create an organization")
    p.add_argument("org", metavar="ORG")
    p.add_argument("--name", default="")
    p.add_argument("--description", default="")
    add_format_option(p)
    p.set_defaults(func=cmd_org_create)
    p = org.add_parser("list", help="list organizations")
    add_format_option(p)
    p.set_defaults(func=cmd_org_list)

    project = subparsers.add_parser("project", help="projects").add_subparsers(dest="action", metavar="ACTION")
    project.required = True
    p = project.add_parser("create", help="create a project")
    p.add_argument("project", metavar="ORG/PROJECT")
    p.add_argument("--name", default="")
    p.add_argument("--description", default="")
    add_format_option(p)
    p.set_defaults(func=cmd_project_create)
    p = project.add_parser("list", help="list projects")
    p.add_argument("org", metavar="ORG", nargs="?")
    add_format_option(p)
    p.set_defaults(func=cmd_project_list)

    app = subparsers.add_parser("app", help="applications").add_subparsers(dest="action", metavar="ACTION")
    app.required = True
    p = app.add_parser("create", help="create an application")
    p.add_argument("app", metavar="ORG/PROJECT/APP")
    p.add_argument("--repo", default="", help="git repository URL")
    p.add_argument("--name", default="")
    p.add_argument("--description", default="")
    add_format_option(p)
    p.set_defaults(func=cmd_app_create)
    p = app.add_parser("list", help="list applications")
    p.add_argument("project", metavar="ORG/PROJECT", nargs="?")
    add_format_option(p)
    p.set_defaults(func=cmd_app_list)
