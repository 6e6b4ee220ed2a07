"""`dice` commands for the console's remaining flows, each over the API and each with
`--format json`: tokens, workspaces (quota and cluster binding), cluster settings and node labels,
project configs and secrets, branch rules, pipeline definitions (`dice pipeline save|list|show|
delete`), runs (`dice run list|status|cancel|rerun|approve`), release diff, deployments,
CMDB, audit, the resource report, inspection, and edit/delete of organizations, projects and
applications."""

from __future__ import annotations

import json
from pathlib import Path

from dice_cli.api_commands import find_application, find_project, split_name
from dice_cli.client import Client
from dice_cli.errors import CliError
from dice_cli.output import add_format_option, emit

WORKSPACES = ("DEV", "TEST", "STAGING", "PROD")


def _read_text(file: str) -> str:
    try:
        return Path(file).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise CliError(f"cannot read {file}: no such file") from None
    except UnicodeDecodeError:
        raise CliError(f"{file}: not UTF-8 text") from None
    except OSError as exc:
        raise CliError(f"cannot read {file}: {exc.strerror or exc}") from None


def _done(args, data: dict, text: str) -> None:
    if args.format == "json":
        emit(data, "json")
    else:
        print(text)


def _patch(client: Client, path: str, data: dict):
    return client.request("PATCH", path, json=data)


def _delete(client: Client, path: str):
    return client.request("DELETE", path)


def _workspace(client: Client, project: dict, kind: str) -> dict:
    kind = kind.upper()
    if kind not in WORKSPACES:
        raise CliError(f"--workspace must be one of {', '.join(WORKSPACES)}, got {kind!r}", 2)
    found = [w for w in client.list_all("workspaces/", project=project["id"]) if w["kind"] == kind]
    if not found:
        raise CliError(f"{project['full_name']} has no {kind} workspace")
    return found[0]


def _project(client: Client, name: str) -> dict:
    org, slug = split_name(name, 2, "a project")
    return find_project(client, org, slug)


# ---- tokens ---------------------------------------------------------------------------------------

def cmd_token_list(args):
    emit(Client.from_login().list_all("tokens/"), args.format, ["id", "name", "prefix", "created", "last_used", "expires"])


def cmd_token_create(args):
    token = Client.from_login().post("tokens/", {"name": args.name})
    _done(args, token, f"Token {token['name']} (id {token['id']}): {token['key']}\nCopy it now: it is not shown again.")


def cmd_token_revoke(args):
    client = Client.from_login()
    token = next((t for t in client.list_all("tokens/") if str(t["id"]) == args.token or t["name"] == args.token), None)
    if token is None:
        raise CliError(f"no token {args.token!r} (give its id or name)")
    _delete(client, f"tokens/{token['id']}/")
    _done(args, {"revoked": token["id"], "name": token["name"]}, f"Revoked token {token['name']}.")


# ---- organizations, projects, applications: edit and delete -------------------------------------

def _confirmed(args, name: str) -> None:
    if args.confirm != name:
        raise CliError(f"deleting asks for the name: add --confirm {name}", 2)


def cmd_org_edit(args):
    (slug,) = split_name(args.org, 1, "an organization")
    data = {k: v for k, v in (("name", args.name), ("description", args.description)) if v is not None}
    org = _patch(Client.from_login(), f"orgs/{slug}/", data)
    _done(args, org, f"Saved organization {org['slug']}.")


def cmd_org_delete(args):
    (slug,) = split_name(args.org, 1, "an organization")
    _confirmed(args, slug)
    _delete(Client.from_login(), f"orgs/{slug}/")
    _done(args, {"deleted": slug}, f"Deleted organization {slug}.")


def cmd_project_edit(args):
    client = Client.from_login()
    project = _project(client, args.project)
    data = {k: v for k, v in (("name", args.name), ("description", args.description)) if v is not None}
    project = _patch(client, f"projects/{project['id']}/", data)
    _done(args, project, f"Saved project {project['full_name']}.")


def cmd_project_delete(args):
    client = Client.from_login()
    project = _project(client, args.project)
    _confirmed(args, project["slug"])
    _delete(client, f"projects/{project['id']}/")
    _done(args, {"deleted": project["full_name"]}, f"Deleted project {project['full_name']}.")


def cmd_app_edit(args):
    client = Client.from_login()
    app = find_application(client, args.app)
    data = {k: v for k, v in (("name", args.name), ("description", args.description), ("repo_url", args.repo))
            if v is not None}
    app = _patch(client, f"applications/{app['id']}/", data)
    _done(args, app, f"Saved application {app['full_name']}.")


def cmd_app_delete(args):
    client = Client.from_login()
    app = find_application(client, args.app)
    _confirmed(args, app["slug"])
    _delete(client, f"applications/{app['id']}/")
    _done(args, {"deleted": app["full_name"]}, f"Deleted application {app['full_name']}.")


# ---- workspaces --------------------------------------------------------------------------------

def cmd_workspace_list(args):
    client = Client.from_login()
    project = _project(client, args.project)
    items = client.list_all("workspaces/", project=project["id"])
    if args.format != "json":
        items = [{**w, "data_clusters": ",".join(w.get("data_clusters") or []) or "-"} for w in items]
    emit(items, args.format, ["kind", "cluster", "data_clusters", "cpu_quota", "mem_quota", "protected"])


def cmd_workspace_set(args):
    client = Client.from_login()
    project = _project(client, args.project)
    kind = args.workspace or args.kind
    if not kind or (args.workspace and args.kind and args.workspace.upper() != args.kind.upper()):
        raise CliError("name one workspace: dice workspace set ORG/PROJECT DEV (or -w DEV)", 2)
    workspace = _workspace(client, project, kind)
    data = {}
    if args.cluster is not None:
        data["cluster"] = args.cluster
    if args.no_data_clusters:
        data["data_clusters"] = []
    elif args.data_cluster:
        data["data_clusters"] = list(dict.fromkeys(args.data_cluster))
    if args.cpu_quota is not None:
        data["cpu_quota"] = args.cpu_quota
    if args.mem_quota is not None:
        data["mem_quota"] = args.mem_quota
    if not data:
        raise CliError("nothing to change: give --cluster, --data-cluster NAME, --no-data-clusters, "
                       "--cpu-quota or --mem-quota", 2)
    saved = _patch(client, f"workspaces/{workspace['id']}/", data)
    _done(args, saved, f"Saved {project['full_name']} {saved['kind']}: cluster {saved['cluster']}, "
                       f"cpu quota {saved['cpu_quota']}, memory quota {saved['mem_quota']}.")


# ---- clusters: settings and node labels ---------------------------------------------------------

def cmd_cluster_update(args):
    data = {}
    for key in ("description", "wildcard_domain", "ingress_class", "storage_class"):
        value = getattr(args, key)
        if value is not None:
            data[key] = value
    if args.overcommit is not None:
        try:
            data["overcommit_ratios"] = json.loads(args.overcommit)
        except json.JSONDecodeError as exc:
            raise CliError(f"--overcommit must be JSON, e.g. '{{\"DEV\": {{\"cpu\": 2, \"mem\": 1}}}}': {exc}", 2) from None
    if not data:
        raise CliError("nothing to change: give --domain, --ingress-class, --storage-class, --description or --overcommit", 2)
    cluster = _patch(Client.from_login(), f"clusters/{args.name}/", data)
    _done(args, cluster, f"Saved cluster {cluster['name']}.")


def cmd_node_labels(args):
    client = Client.from_login()
    if args.set is None:
        nodes = client.get(f"clusters/{args.name}/nodes/")
        nodes = nodes["results"] if isinstance(nodes, dict) else nodes
        emit([{"name": n["name"], "dice_labels": ", ".join(n.get("dice_labels") or [])} for n in nodes]
             if args.format == "text" else nodes, args.format, ["name", "dice_labels"])
        return
    labels = [x.strip() for x in args.set.split(",") if x.strip()]
    node = client.request("PUT", f"clusters/{args.name}/nodes/{args.node}/labels/", json={"labels": labels})
    _done(args, node, f"{args.node}: {', '.join(labels) or 'no dice labels'}.")


def cmd_inspection(args):
    client = Client.from_login()
    data = client.get(f"clusters/{args.name}/inspection/")
    if args.format == "json":
        emit(data, "json")
        return
    findings = data.get("findings") or []
    print(f"Inspection of {args.name}: {len(findings)} finding{'s' if len(findings) != 1 else ''}")
    for f in findings:
        print(f"  {f.get('severity', ''):<9} {f.get('object', '')}: {f.get('message', '')}")


# ---- project configs, secrets and branch rules ---------------------------------------------------

def cmd_config_list(args):
    client = Client.from_login()
    project = _project(client, args.project)
    emit(client.list_all("project-configs/", project=project["id"]), args.format, ["id", "key", "value", "secret", "updated"])


def cmd_config_set(args):
    client = Client.from_login()
    project = _project(client, args.project)
    key, sep, value = args.pair.partition("=")
    if not sep or not key.strip():
        raise CliError(f"give KEY=VALUE, got {args.pair!r}", 2)
    existing = [c for c in client.list_all("project-configs/", project=project["id"]) if c["key"] == key.strip()]
    data = {"project": project["id"], "key": key.strip(), "value": value, "secret": args.secret}
    if existing:
        saved = _patch(client, f"project-configs/{existing[0]['id']}/", data)
    else:
        saved = client.post("project-configs/", data)
    _done(args, saved, f"Set {'secret ' if saved['secret'] else ''}{saved['key']} of {project['full_name']}.")


def cmd_config_delete(args):
    client = Client.from_login()
    project = _project(client, args.project)
    existing = [c for c in client.list_all("project-configs/", project=project["id"]) if c["key"] == args.key]
    if not existing:
        raise CliError(f"{project['full_name']} has no config {args.key!r}")
    _delete(client, f"project-configs/{existing[0]['id']}/")
    _done(args, {"deleted": args.key}, f"Deleted {args.key} of {project['full_name']}.")


def cmd_branch_rule_list(args):
    client = Client.from_login()
    project = _project(client, args.project)
    emit(client.list_all("branch-rules/", project=project["id"]), args.format, ["id", "pattern", "workspace", "priority"])


def cmd_branch_rule_add(args):
    client = Client.from_login()
    project = _project(client, args.project)
    rule = client.post("branch-rules/", {"project": project["id"], "pattern": args.pattern,
                                         "workspace": args.workspace.upper(), "priority": args.priority})
    _done(args, rule, f"Branches matching {rule['pattern']} go to {rule['workspace']} (rule {rule['id']}).")


def cmd_branch_rule_delete(args):
    client = Client.from_login()
    _delete(client, f"branch-rules/{args.id}/")
    _done(args, {"deleted": args.id}, f"Deleted branch rule {args.id}.")


# ---- pipeline definitions and runs ----------------------------------------------------------------

def _definition(client: Client, app: dict, name: str) -> dict:
    found = [d for d in client.list_all("pipelines/", application=app["id"]) if d["name"] == name or str(d["id"]) == name]
    if not found:
        raise CliError(f"{app['full_name']} has no pipeline {name!r}")
    return found[0]


def cmd_pipeline_save(args):
    client = Client.from_login()
    app = find_application(client, args.app)
    source = _read_text(args.file)
    name = args.name or ""
    existing = [d for d in client.list_all("pipelines/", application=app["id"]) if name and d["name"] == name]
    data = {"application": app["id"], "source": source, "name": name, "branch": args.branch or ""}
    if args.path:
        data["path"] = args.path
    if existing:
        saved = _patch(client, f"pipelines/{existing[0]['id']}/", data)
    else:
        saved = client.post("pipelines/", data)
    _done(args, {k: v for k, v in saved.items() if k != "source"} | {"id": saved["id"]},
          f"Saved pipeline {saved['name']} of {app['full_name']} (id {saved['id']}).")


def cmd_pipeline_list(args):
    client = Client.from_login()
    app = find_application(client, args.app)
    emit(client.list_all("pipelines/", application=app["id"]), args.format, ["id", "name", "path", "branch", "updated"])


def cmd_pipeline_show(args):
    client = Client.from_login()
    definition = _definition(client, find_application(client, args.app), args.name)
    if args.format == "json":
        emit(definition, "json")
    else:
        print(definition["source"], end="" if definition["source"].endswith("\n") else "\n")


def cmd_pipeline_delete(args):
    client = Client.from_login()
    definition = _definition(client, find_application(client, args.app), args.name)
    _delete(client, f"pipelines/{definition['id']}/")
    _done(args, {"deleted": definition["id"], "name": definition["name"]}, f"Deleted pipeline {definition['name']}.")


RUN_COLUMNS = ["id", "name", "status", "workspace", "trigger", "created_by_name", "created", "finished"]


def cmd_run_list(args):
    client = Client.from_login()
    params = {}
    if args.app:
        params["application"] = find_application(client, args.app)["id"]
    if args.status:
        params["status"] = args.status
    runs = client.get("pipeline-runs/", limit=args.limit, **params)["results"]
    emit(runs, args.format, RUN_COLUMNS)


def cmd_run_status(args):
    run = Client.from_login().get(f"pipeline-runs/{args.id}/")
    if args.format == "json":
        emit(run, "json")
        return
    print(f"Run {run['id']} ({run['name']}): {run['status']}" + (f" — {run['reason']}" if run.get("reason") else ""))
    for t in run.get("tasks") or []:
        print(f"  {t['alias']:<24} {t['status']:<10} {t.get('reason') or ''}".rstrip())


def cmd_run_action(args):
    client = Client.from_login()
    data = {}
    if args.run_action == "approve":
        data = {"task": args.task or "", "approve": not args.reject, "comment": args.comment or ""}
    run = client.post(f"pipeline-runs/{args.id}/{args.run_action}/", data)
    verb = {"cancel": "Cancelled", "rerun": "Started", "approve": "Rejected" if getattr(args, "reject", False) else "Approved"}
    _done(args, run, f"{verb[args.run_action]} run {run['id']} ({run['status']}).")


# ---- releases and deployments ---------------------------------------------------------------------

def _release(client: Client, app: dict, version: str) -> dict:
    found = client.get("releases/", application=app["id"], version=version.lstrip("v"))["results"]
    if not found:
        raise CliError(f"{app['full_name']} has no release v{version.lstrip('v')}")
    return found[0]


def cmd_release_diff(args):
    client = Client.from_login()
    app = find_application(client, args.app)
    release = _release(client, app, args.version)
    params = {}
    if args.against:
        params["other"] = _release(client, app, args.against)["id"]
    diff = client.get(f"releases/{release['id']}/diff/", **params)
    if args.format == "json":
        emit(diff, "json")
        return
    for workspace, change in (diff.get("workspaces") or {}).items():
        print(f"== {workspace}")
        print(change.get("diff") or "(no change)")


def cmd_deployment_list(args):
    client = Client.from_login()
    params = {"limit": args.limit}
    if args.app:
        app = find_application(client, args.app)
        params["application"] = app["id"]
    if args.status:
        params["status"] = args.status
    rows = client.get("deployments/", **params)["results"]
    emit(rows, args.format, ["id", "runtime", "release", "status", "created_by_name", "created", "finished"])


def cmd_deployment_cancel(args):
    deployment = Client.from_login().post(f"deployments/{args.id}/cancel/", {})
    _done(args, deployment, f"Cancelled deployment #{deployment['id']} ({deployment['status']}).")


# ---- CMDB, audit, resources ----------------------------------------------------------------------

def cmd_cmdb_list(args):
    params = {k: v for k, v in (("q", args.q), ("kind", args.kind), ("cluster", args.cluster)) if v}
    rows = Client.from_login().get("cmdb/items/", limit=args.limit, **params)["results"]
    emit(rows, args.format, ["id", "kind", "name", "cluster", "updated"])


def cmd_cmdb_show(args):
    item = Client.from_login().get(f"cmdb/items/{args.id}/")
    if args.format == "json":
        emit(item, "json")
        return
    print(f"{item.get('kind')} {item.get('name')} (id {item['id']})")
    for key, value in sorted((item.get("attributes") or {}).items()):
        print(f"  {key:<28} {value}")


def cmd_audit(args):
    params = {k: v for k, v in (("org", args.org), ("action", args.action), ("object_type", args.type), ("q", args.q)) if v}
    rows = Client.from_login().get("audit-events/", limit=args.limit, **params)["results"]
    emit(rows, args.format, ["created", "actor_name", "action", "object_type", "object_repr"])


def cmd_resources(args):
    params = {k: v for k, v in (("project", args.project), ("cluster", args.cluster), ("workspace", args.workspace)) if v}
    report = Client.from_login().get("reports/resources/", **params)
    rows = report.get("workspaces", report) if isinstance(report, dict) else report
    if args.format == "json":
        emit(report, "json")
        return
    emit(rows if isinstance(rows, list) else [rows], "text")


# ---- parser ---------------------------------------------------------------------------------------

def _group(subparsers, name: str, help_text: str):
    return subparsers.add_parser(name, help=help_text).add_subparsers(dest="action", metavar="ACTION", required=True)


def _cmd(group, name: str, func, help_text: str):
    p = group.add_parser(name, help=help_text)
    add_format_option(p)
    p.set_defaults(func=func)
    return p


def register(subparsers):
    token = _group(subparsers, "token", "your API tokens")
    _cmd(token, "list", cmd_token_list, "list your tokens")
    _cmd(token, "create", cmd_token_create, "make a token (its key is printed once)").add_argument("name")
    _cmd(token, "revoke", cmd_token_revoke, "revoke a token at once").add_argument("token", help="id or name")

    workspace = _group(subparsers, "workspace", "a project's workspaces: cluster binding and quotas")
    _cmd(workspace, "list", cmd_workspace_list, "the four workspaces").add_argument("project", metavar="ORG/PROJECT")
    p = _cmd(workspace, "set", cmd_workspace_set, "bind a cluster and data clusters, or set quotas")
    p.add_argument("project", metavar="ORG/PROJECT")
    p.add_argument("kind", nargs="?", metavar="WORKSPACE", help="DEV, TEST, STAGING or PROD (or -w)")
    p.add_argument("-w", "--workspace", help="DEV, TEST, STAGING or PROD")
    p.add_argument("--cluster", help="name of the cluster to bind")
    p.add_argument("--data-cluster", dest="data_cluster", action="append", default=[], metavar="NAME",
                   help="a data cluster (kind spark or flink; repeat for one of each); replaces the current ones")
    p.add_argument("--no-data-clusters", dest="no_data_clusters", action="store_true",
                   help="unbind every data cluster")
    p.add_argument("--cpu-quota", type=float, help="cores (0: no quota)")
    p.add_argument("--mem-quota", type=int, help="MiB (0: no quota)")

    run = _group(subparsers, "run", "pipeline runs: list, status, cancel, rerun, approve")
    p = _cmd(run, "list", cmd_run_list, "recent runs")
    p.add_argument("app", nargs="?", metavar="ORG/PROJECT/APP")
    p.add_argument("--status")
    p.add_argument("--limit", type=int, default=25)
    _cmd(run, "status", cmd_run_status, "a run and its tasks").add_argument("id", type=int)
    for verb, text in (("cancel", "cancel a run"), ("rerun", "run it again"), ("approve", "approve (or --reject) a review")):
        p = _cmd(run, verb, cmd_run_action, text)
        p.add_argument("id", type=int)
        p.set_defaults(run_action=verb)
        if verb == "approve":
            p.add_argument("--task", help="alias of the review task (default: the waiting one)")
            p.add_argument("--reject", action="store_true")
            p.add_argument("--comment")

    config = _group(subparsers, "config", "project configs and secrets (secret values are never shown)")
    _cmd(config, "list", cmd_config_list, "a project's configs").add_argument("project", metavar="ORG/PROJECT")
    p = _cmd(config, "set", cmd_config_set, "set a config (or --secret)")
    p.add_argument("project", metavar="ORG/PROJECT")
    p.add_argument("pair", metavar="KEY=VALUE")
    p.add_argument("--secret", action="store_true", help="keep it encrypted, masked in logs, never shown")
    p = _cmd(config, "delete", cmd_config_delete, "delete a config")
    p.add_argument("project", metavar="ORG/PROJECT")
    p.add_argument("key")

    rule = _group(subparsers, "branch-rule", "which workspace a branch's runs use")
    _cmd(rule, "list", cmd_branch_rule_list, "a project's rules").add_argument("project", metavar="ORG/PROJECT")
    p = _cmd(rule, "add", cmd_branch_rule_add, "add a rule")
    p.add_argument("project", metavar="ORG/PROJECT")
    p.add_argument("pattern", help="a branch glob, e.g. release/*")
    p.add_argument("-w", "--workspace", required=True)
    p.add_argument("--priority", type=int, default=0)
    _cmd(rule, "delete", cmd_branch_rule_delete, "delete a rule").add_argument("id", type=int)

    deployment = _group(subparsers, "deployment", "deployments: list and cancel")
    p = _cmd(deployment, "list", cmd_deployment_list, "recent deployments")
    p.add_argument("app", nargs="?", metavar="ORG/PROJECT/APP")
    p.add_argument("--status")
    p.add_argument("--limit", type=int, default=25)
    _cmd(deployment, "cancel", cmd_deployment_cancel, "cancel a deployment under way").add_argument("id", type=int)

    cmdb = _group(subparsers, "cmdb", "configuration items")
    p = _cmd(cmdb, "list", cmd_cmdb_list, "items, filtered")
    p.add_argument("-q", "--q")
    p.add_argument("--kind")
    p.add_argument("--cluster")
    p.add_argument("--limit", type=int, default=50)
    _cmd(cmdb, "show", cmd_cmdb_show, "one item and its attributes").add_argument("id", type=int)

    p = subparsers.add_parser("audit", help="the audit trail")
    add_format_option(p)
    p.add_argument("--org")
    p.add_argument("--action")
    p.add_argument("--type", help="object type, e.g. runtime")
    p.add_argument("-q", "--q")
    p.add_argument("--limit", type=int, default=50)
    p.set_defaults(func=cmd_audit)

    report = _group(subparsers, "report", "reports")
    p = _cmd(report, "resources", cmd_resources, "quota, requests, limits and savings per workspace")
    p.add_argument("--project", help="ORG/PROJECT, a slug or an id")
    p.add_argument("--cluster")
    p.add_argument("--workspace")


def extend(parser_of: dict) -> None:
    """Commands added to groups other modules own: `dice pipeline save|list|show|delete`, `dice
    cluster update|labels|inspection`, `dice release diff`, `dice org|project|app edit|delete`."""
    pipeline = parser_of["pipeline"]
    p = _cmd(pipeline, "save", cmd_pipeline_save, "save FILE as a pipeline definition of an application")
    p.add_argument("app", metavar="ORG/PROJECT/APP")
    p.add_argument("file", metavar="FILE")
    p.add_argument("--name", help="the definition's name (default: the file's `name:`); an existing one is replaced")
    p.add_argument("--branch")
    p.add_argument("--path")
    _cmd(pipeline, "list", cmd_pipeline_list, "an application's pipeline definitions").add_argument("app", metavar="ORG/PROJECT/APP")
    for verb, func, text in (("show", cmd_pipeline_show, "print a definition's pipeline.yml"),
                             ("delete", cmd_pipeline_delete, "delete a definition")):
        p = _cmd(pipeline, verb, func, text)
        p.add_argument("app", metavar="ORG/PROJECT/APP")
        p.add_argument("name", help="the definition's name or id")

    cluster = parser_of["cluster"]
    p = _cmd(cluster, "update", cmd_cluster_update, "change a cluster's settings")
    p.add_argument("name")
    p.add_argument("--domain", dest="wildcard_domain")
    p.add_argument("--ingress-class", dest="ingress_class")
    p.add_argument("--storage-class", dest="storage_class")
    p.add_argument("--description")
    p.add_argument("--overcommit", help='JSON ratios per workspace, e.g. \'{"DEV": {"cpu": 2, "mem": 1}}\'')
    p = _cmd(cluster, "labels", cmd_node_labels, "the nodes' dice labels, or --set them on NODE")
    p.add_argument("name")
    p.add_argument("node", nargs="?")
    p.add_argument("--set", help="comma-separated dice labels for NODE (empty: none)")
    _cmd(cluster, "inspection", cmd_inspection, "the last inspection's findings").add_argument("name")

    p = _cmd(parser_of["release"], "diff", cmd_release_diff, "what changes from one release to another")
    p.add_argument("app", metavar="ORG/PROJECT/APP")
    p.add_argument("version", help="the release (vN or N)")
    p.add_argument("--against", help="the release to compare with (default: the one before)")

    for group, what, edit, delete in (("org", "ORG", cmd_org_edit, cmd_org_delete),
                                      ("project", "ORG/PROJECT", cmd_project_edit, cmd_project_delete),
                                      ("app", "ORG/PROJECT/APP", cmd_app_edit, cmd_app_delete)):
        dest = {"org": "org", "project": "project", "app": "app"}[group]
        p = _cmd(parser_of[group], "edit", edit, f"change a{'n' if group in ('org', 'app') else ''} {group}'s name or description")
        p.add_argument(dest, metavar=what)
        p.add_argument("--name")
        p.add_argument("--description")
        if group == "app":
            p.add_argument("--repo")
        p = _cmd(parser_of[group], "delete", delete, "delete it and everything in it (asks for --confirm NAME)")
        p.add_argument(dest, metavar=what)
        p.add_argument("--confirm", default="", metavar="NAME", help="the slug, typed again")
