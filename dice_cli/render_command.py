"""`dice spec render`: a dice.yml as Kubernetes manifests, offline, multi-document YAML in apply order."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import yaml

from dice_cli.errors import CliError
from diceyml import parse_dice_yml
from speckit.errors import SpecInvalid
from speckit.report import render_errors

WORKSPACE_OF = {"development": "DEV", "test": "TEST", "staging": "STAGING", "production": "PROD"}


def ratio_arg(value: str) -> float:
    try:
        ratio = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: '{value}'")
    if ratio < 1:
        raise argparse.ArgumentTypeError(f"a ratio must be >= 1, got {value}")
    return ratio


def image_arg(value: str) -> tuple[str, str]:
    name, sep, image = value.partition("=")
    if not sep or not name or not image:
        raise argparse.ArgumentTypeError(f"expected NAME=IMAGE, got '{value}'")
    return name, image


def config_arg(value: str) -> tuple[str, str]:
    key, sep, config = value.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got '{value}'")
    return key, config


def operators_arg(value: str) -> list[str]:
    from scheduler.kubernetes.addons import OPERATORS

    names = [v.strip() for v in value.split(",") if v.strip()]
    unknown = [n for n in names if n not in OPERATORS and "." not in n]
    if unknown:
        raise argparse.ArgumentTypeError(
            f"unknown operator {', '.join(unknown)}: use {', '.join(OPERATORS)} or CRD names"
        )
    return names


class _Dumper(getattr(yaml, "CSafeDumper", yaml.SafeDumper)):  # type: ignore[misc]
    pass


def _str(dumper: yaml.SafeDumper, data: str) -> yaml.Node:
    style = "|" if "\\n" in data else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", data, style=style)


_Dumper.add_representer(str, _str)


def dump_manifests(manifests: list[dict]) -> str:
    return yaml.dump_all(manifests, Dumper=_Dumper, sort_keys=False, explicit_start=True, allow_unicode=True, width=120)


def cmd_render(args: argparse.Namespace) -> int:
    from dice_cli.spec_commands import read_spec_file
    from scheduler.base import ClusterRef, ExecutorError, Overcommit, RuntimeRef, ServiceGroup, dns_label
    from scheduler.kubernetes.addons import OPERATORS, generate_addon_secrets
    from scheduler.kubernetes.render import render_group

    text = read_spec_file(args.file)
    try:
        spec = parse_dice_yml(text, source=args.file, workspace=args.workspace)
    except SpecInvalid as exc:
        print(render_errors(exc.errors, filename=args.file, fmt="text"), file=sys.stderr)
        return 1
    operators: set[str] = set()
    for name in args.operators or ():
        operators.update(OPERATORS.get(name, (name,)))
    app = dns_label(Path(args.file).resolve().parent.name if args.file != "-" else "app")
    runtime = RuntimeRef(org="local", project=app, app=app, workspace=WORKSPACE_OF[args.workspace], name=args.runtime)
    group = ServiceGroup(
        runtime=runtime,
        spec=spec,
        release=args.release,
        images=dict(args.image or ()),
        overcommit=Overcommit(args.cpu_ratio, args.mem_ratio, args.allow_prod_mem_overcommit),
        addon_secrets=generate_addon_secrets(spec),
        cluster_name=args.cluster,
        secret_configs=dict(args.config or ()),
    )
    tls = {"tls_secret": args.tls_secret or "", "cert_issuer": args.cert_issuer or ""}
    cluster = ClusterRef(
        name=args.cluster,
        kind="kubernetes",
        config={k: v for k, v in tls.items() if v},
        wildcard_domain=args.domain or "",
        ingress_class=args.ingress_class or "",
        storage_class=args.storage_class or "",
    )
    warnings: list[str] = []
    try:
        manifests = render_group(group, cluster, operators=operators, namespace=args.namespace, warnings=warnings)
    except ExecutorError as exc:
        raise CliError(str(exc), exit_code=1)
    for note in warnings:
        print(f"dice: warning: {note}", file=sys.stderr)
    sys.stdout.write(dump_manifests(manifests))
    return 0


def register(commands) -> None:
    from dice_cli.spec_commands import workspace_arg

    render = commands.add_parser(
        "render",
        help="print the Kubernetes manifests of a dice.yml (exit 0 ok, 1 invalid or refused, 2 usage)",
        description=(
            "Render a dice.yml for a workspace as Kubernetes manifests (multi-document YAML, in apply "
            "order), offline. Addons become built-in StatefulSets unless --operators says the "
            "cluster has their operator; addon passwords are generated at random on each render."
        ),
    )
    render.add_argument("file", metavar="FILE", help="the dice.yml to render ('-' reads stdin)")
    render.add_argument("--workspace", type=workspace_arg, required=True, metavar="W", help="DEV, TEST, STAGING or PROD")
    render.add_argument("--target", choices=("kubernetes",), default="kubernetes", help="only kubernetes")
    render.add_argument("--namespace", metavar="NS", help="namespace of every object (default: the runtime's)")
    render.add_argument("--domain", metavar="D", help="the cluster's wildcard domain, for endpoints and exposed ports")
    render.add_argument("--cpu-ratio", type=ratio_arg, default=1.0, metavar="R", help="CPU overcommit ratio (>= 1)")
    render.add_argument("--mem-ratio", type=ratio_arg, default=1.0, metavar="R", help="memory overcommit ratio (>= 1)")
    render.add_argument(
        "--allow-prod-mem-overcommit", action="store_true", help="allow a memory ratio above 1 in PROD"
    )
    render.add_argument(
        "--operators",
        type=operators_arg,
        metavar="LIST",
        help="operators the cluster has, comma-separated: cnpg, mysql-operator, ot-redis, eck, strimzi, "
        "rabbitmq, kruise (or CRD names); default none",
    )
    render.add_argument(
        "--image", type=image_arg, action="append", metavar="NAME=IMAGE", help="image of a service or job (repeatable)"
    )
    render.add_argument("--release", default="", help="release name for the version labels")
    render.add_argument("--runtime", default="main", help="runtime name (default main)")
    render.add_argument("--cluster", default="offline", help="cluster name for DICE_CLUSTER_NAME")
    render.add_argument("--ingress-class", metavar="NAME", help="ingressClassName of Ingresses")
    render.add_argument("--storage-class", metavar="NAME", help="storageClassName of volume claims")
    render.add_argument(
        "--config",
        type=config_arg,
        action="append",
        metavar="KEY=VALUE",
        help="a project config that ((KEY)) in envs names (repeatable; the value goes to a Secret)",
    )
    render.add_argument(
        "--tls-secret", metavar="NAME", help="certificate Secret for services with traffic_security https"
    )
    render.add_argument(
        "--cert-issuer", metavar="NAME", help="cert-manager ClusterIssuer for services with traffic_security https"
    )
    render.set_defaults(func=cmd_render)
