"""`dice workspace list|set`: a project's workspaces, their cluster and data clusters, quotas."""

from __future__ import annotations

from dice_cli.client import Client
from dice_cli.errors import CliError
from dice_cli.output import add_format_option, emit

_COLUMNS = ["project", "kind", "cluster", "data_clusters", "cpu_quota", "mem_quota", "protected"]


def _split(project: str) -> tuple[str, str]:
    org, sep, slug = project.partition("/")
    if not sep or not org or not slug:
        raise CliError(f"name the project as ORG/PROJECT, not {project!r}", 2)
    return org, slug


def _rows(items: list[dict]) -> list[dict]:
    return [{**w, "data_clusters": ",".join(w.get("data_clusters") or []) or "-"} for w in items]


def cmd_list(args):
    org, slug = _split(args.project)
    items = Client.from_login().list_all("workspaces/", org=org, project=slug)
    emit(items if args.format == "json" else _rows(items), args.format, _COLUMNS)


def cmd_set(args):
    org, slug = _split(args.project)
    client = Client.from_login()
    found = client.list_all("workspaces/", org=org, project=slug, kind=args.kind.upper())
    if not found:
        raise CliError(f"no workspace {args.kind.upper()} in project {args.project}")
    body: dict = {}
    if args.cluster:
        body["cluster"] = args.cluster
    if args.no_data_clusters:
        body["data_clusters"] = []
    elif args.data_cluster:
        body["data_clusters"] = list(dict.fromkeys(args.data_cluster))
    if not body:
        raise CliError("nothing to change: give --cluster, --data-cluster NAME (repeatable) or --no-data-clusters", 2)
    result = client.request("PATCH", f"workspaces/{found[0]['id']}/", json=body)
    emit(result if args.format == "json" else _rows([result]), args.format, _COLUMNS)


def register(subparsers):
    workspace = subparsers.add_parser("workspace", help="a project's workspaces").add_subparsers(
        dest="action", metavar="ACTION")
    workspace.required = True
    p = workspace.add_parser("list", help="the workspaces of a project")
    p.add_argument("project", metavar="ORG/PROJECT")
    add_format_option(p)
    p.set_defaults(func=cmd_list)
    p = workspace.add_parser("set", help="bind a workspace to its cluster and data clusters")
    p.add_argument("project", metavar="ORG/PROJECT")
    p.add_argument("kind", metavar="WORKSPACE", help="DEV, TEST, STAGING or PROD")
    p.add_argument("--cluster", default="", help="the workspace's main cluster")
    p.add_argument("--data-cluster", dest="data_cluster", action="append", default=[], metavar="NAME",
                   help="a data cluster (kind spark or flink; repeat for one of each); replaces the current ones")
    p.add_argument("--no-data-clusters", dest="no_data_clusters", action="store_true", help="unbind every data cluster")
    add_format_option(p)
    p.set_defaults(func=cmd_set)
