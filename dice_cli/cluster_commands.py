"""`dice cluster list|show|register|check|nodes`: clusters through the console's API."""

from __future__ import annotations

from pathlib import Path

from dice_cli.client import Client
from dice_cli.errors import CliError
from dice_cli.output import add_format_option, emit

_COLUMNS = ["name", "kind", "api_server", "server_version", "check_status", "wildcard_domain"]


def _read(path: str, what: str) -> str:
    try:
        return Path(path).read_text()
    except OSError as exc:
        raise CliError(f"cannot read the {what} {path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise CliError(f"the {what} {path} is not UTF-8 text") from None


def cmd_list(args):
    emit(Client.from_login().list_all("clusters/"), args.format, _COLUMNS)


def _show(cluster: dict, fmt: str) -> None:
    if fmt == "json":
        emit(cluster, fmt)
        return
    report = cluster.get("check_report") or {}
    creds = cluster.get("credentials") or {}
    lines = [
        f"name:            {cluster['name']} ({cluster['kind']})",
        f"owner:           {cluster.get('organization') or 'platform-wide (staff)'}",
        f"api server:      {cluster.get('api_server') or '-'}",
        f"credentials:     {'set ' + creds.get('fingerprint', '') if creds.get('set') else 'none'}",
        f"server version:  {cluster.get('server_version') or '-'}",
        f"check:           {cluster.get('check_status')}" + (f" ({report['error']})" if report.get("error") else ""),
        f"wildcard domain: {cluster.get('wildcard_domain') or '-'}",
        f"ingress class:   {cluster.get('ingress_class') or '-'}",
        f"storage class:   {cluster.get('storage_class') or '-'}",
        "overcommit:      " + ", ".join(f"{ws} cpu x{r['cpu_ratio']:g} mem x{r['mem_ratio']:g}"
                                        for ws, r in (cluster.get("overcommit") or {}).items()),
    ]
    if report.get("missing_permissions"):
        lines.append("missing permissions: " + ", ".join(report["missing_permissions"]))
    if report.get("metrics"):
        lines.append(f"metrics:         {_metrics(report['metrics'])}")
    if report.get("operators"):
        lines.append("operators:       " + ", ".join(
            f"{o['label']} {'yes' if o.get('installed') else 'no'}" for o in report["operators"]))
    print("\n".join(lines))


def _metrics(found: dict) -> str:
    """Where the cluster's usage figures come from (the check's `metrics`)."""
    return f"{found['source']}: {found['detail']}" if found.get("source") else f"none ({found.get('detail', '')})"


def cmd_show(args):
    _show(Client.from_login().get(f"clusters/{args.name}/"), args.format)


def cmd_register(args):
    body: dict = {"name": args.name}
    if args.endpoint:
        if args.kubeconfig or args.server or args.token:
            raise CliError("--endpoint registers a data engine's cluster; give no --kubeconfig, --server or --token", 2)
        body.update({"kind": args.kind or "spark", "endpoint": args.endpoint})
    elif args.kubeconfig:
        if args.server or args.token:
            raise CliError("give either --kubeconfig or --server/--token, not both", 2)
        body["kubeconfig"] = _read(args.kubeconfig, "kubeconfig")
        if args.context:
            body["context"] = args.context
    elif args.server:
        if not args.token:
            raise CliError("--server needs --token (and usually --ca)", 2)
        body.update({"server": args.server, "token": args.token})
        if args.ca:
            body["ca"] = _read(args.ca, "CA certificate")
    else:
        raise CliError("give --kubeconfig FILE [--context C] or --server URL --ca FILE --token T "
                       "(or, for a Spark master, --endpoint URL)", 2)
    for key in ("wildcard_domain", "ingress_class", "storage_class", "description"):
        if getattr(args, key):
            body[key] = getattr(args, key)
    if args.org:
        body["organization"] = args.org
    if args.grant:
        body["granted_to"] = [g for g in args.grant.split(",") if g]
    _show(Client.from_login().post("clusters/", body), args.format)


def cmd_check(args):
    report = Client.from_login().request("POST", f"clusters/{args.name}/check/")
    if args.format == "json":
        emit(report, "json")
    else:
        print(f"{args.name}: {report['status']}; server {report.get('server_version') or '-'}")
        if report.get("error"):
            print(f"error: {report['error']}")
        if report.get("missing_permissions"):
            print("missing permissions: " + ", ".join(report["missing_permissions"]))
        if report.get("missing_operators"):
            print("operators not installed: " + ", ".join(report["missing_operators"]))
        if report.get("metrics"):
            print(f"metrics: {_metrics(report['metrics'])}")
    return 0 if report.get("status") != "error" else 1


def _cores(m: int) -> str:
    return f"{m / 1000:g}"


def _gib(b: int) -> str:
    return f"{b / 1024 ** 3:.1f}Gi"


def cmd_nodes(args):
    nodes = Client.from_login().list_all(f"clusters/{args.name}/nodes/")
    if args.format == "json":
        emit(nodes, "json")
        return
    rows = [{
        "name": n["name"], "ready": "yes" if n["ready"] else "NO",
        "cpu": f"{_cores(n['requests'].get('cpu', 0))}/{_cores(n['allocatable'].get('cpu', 0))}",
        "memory": f"{_gib(n['requests'].get('memory', 0))}/{_gib(n['allocatable'].get('memory', 0))}",
        "pods": n["pod_count"], "dice_labels": ",".join(n["dice_labels"]),
    } for n in nodes]
    emit(rows, "text", ["name", "ready", "cpu", "memory", "pods", "dice_labels"])


def register(subparsers):
    cluster = subparsers.add_parser("cluster", help="clusters").add_subparsers(dest="action", metavar="ACTION")
    cluster.required = True
    p = cluster.add_parser("list", help="list clusters")
    add_format_option(p)
    p.set_defaults(func=cmd_list)
    p = cluster.add_parser("show", help="show one cluster and its last check")
    p.add_argument("name", metavar="NAME")
    add_format_option(p)
    p.set_defaults(func=cmd_show)
    p = cluster.add_parser("register", help="register a Kubernetes cluster, a Spark master or a Flink session cluster (needs manage_clusters)")
    p.add_argument("name", metavar="NAME")
    p.add_argument("--endpoint", metavar="URL", help="a data engine's REST URL: a standalone Spark master (http://host:6066) or a Flink session cluster (http://host:8081, with --kind flink)")
    p.add_argument("--kind", default="", help="the cluster's kind with --endpoint: spark (default) or flink")
    p.add_argument("--kubeconfig", metavar="FILE")
    p.add_argument("--context", metavar="C", help="the kubeconfig context (default: its current-context)")
    p.add_argument("--server", metavar="URL", help="API server URL (with --ca and --token)")
    p.add_argument("--ca", metavar="FILE", help="the API server's CA certificate (PEM)")
    p.add_argument("--token", metavar="T", help="a bearer token (a ServiceAccount's)")
    p.add_argument("--wildcard-domain", dest="wildcard_domain", default="")
    p.add_argument("--ingress-class", dest="ingress_class", default="")
    p.add_argument("--storage-class", dest="storage_class", default="")
    p.add_argument("--description", default="")
    p.add_argument("--org", default="", help="the organization that owns it (default: the one whose clusters "
                                              "you manage; staff without --org: platform-wide)")
    p.add_argument("--grant", default="", metavar="ORG,...",
                   help="staff, platform-wide clusters: the organizations that may use it")
    add_format_option(p)
    p.set_defaults(func=cmd_register)
    p = cluster.add_parser("check", help="run the connectivity check now")
    p.add_argument("name", metavar="NAME")
    add_format_option(p)
    p.set_defaults(func=cmd_check)
    p = cluster.add_parser("nodes", help="the cluster's nodes with requested/allocatable resources")
    p.add_argument("name", metavar="NAME")
    add_format_option(p)
    p.set_defaults(func=cmd_nodes)
