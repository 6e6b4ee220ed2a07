"""`dice repo ...`: an application's hosted git repository (clone URL, branches, recent commits)."""

from __future__ import annotations

from dice_cli.api_commands import find_application
from dice_cli.client import Client
from dice_cli.output import add_format_option, emit


def cmd_show(args) -> int:
    client = Client.from_login()
    app = find_application(client, args.app)
    repo = client.get(f"applications/{app['id']}/repository/")
    if args.format == "json":
        emit(repo, "json")
        return 0
    print(f"clone: git clone {repo['clone_url']}   (user: any, password: an API token)")
    if not repo["exists"]:
        print(f"no repository yet: git push {repo['clone_url']} main creates it")
        return 0
    print()
    emit([{"branch": b["name"], "commit": b["commit"][:12], "subject": b["subject"], "date": b["date"]}
          for b in repo["branches"]], "text", ["branch", "commit", "subject", "date"])
    print()
    emit([{"commit": c["sha"][:12], "subject": c["subject"], "author": c["author"], "date": c["date"]}
          for c in repo["commits"]], "text", ["commit", "subject", "author", "date"])
    return 0


def cmd_url(args) -> int:
    client = Client.from_login()
    app = find_application(client, args.app)
    print(client.get(f"applications/{app['id']}/repository/")["clone_url"])
    return 0


def register(subparsers) -> None:
    """Add the `repo` command group."""
    repo = subparsers.add_parser("repo", help="an application's hosted git repository").add_subparsers(
        dest="action", metavar="ACTION")
    repo.required = True
    p = repo.add_parser("show", help="clone URL, branches and recent commits")
    p.add_argument("app", metavar="ORG/PROJECT/APP")
    add_format_option(p)
    p.set_defaults(func=cmd_show)
    p = repo.add_parser("url", help="print the clone URL (for `git remote add dice $(dice repo url APP)`)")
    p.add_argument("app", metavar="ORG/PROJECT/APP")
    p.set_defaults(func=cmd_url)
