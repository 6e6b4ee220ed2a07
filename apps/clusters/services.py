"""The one place that changes cluster state; views, API, CLI and tasks all come through here.

Also what other apps read: `cluster_ref`, `cluster_executor`, `cluster_inspector`, `capabilities`, `overcommit_for`,
`node_selector_for`, `operators_for`.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.validators import validate_slug
from django.db import transaction
from django.utils import timezone

from apps.clusters import crypto
from apps.clusters import scope as cluster_scope
from apps.clusters.choices import AuthMethod, CheckStatus, ClusterKind, NodeRole
from apps.clusters.kubeconfig import KubeconfigError, Resolved, from_token, parse, resolve
from apps.clusters.models import LOCAL_CLUSTER_NAME, Cluster, Node, WorkspaceOvercommit
from apps.projects import audit, scope
from apps.projects import permissions as perms
from apps.projects.choices import WorkspaceKind
from apps.projects.models import Organization
from scheduler import engines, registry
from scheduler.base import (
    Capabilities,
    ClusterRef,
    Executor,
    ExecutorError,
    Inspector,
    Overcommit,
    base_report,
)

SETTINGS_FIELDS = {"description", "wildcard_domain", "ingress_class", "storage_class", "allow_prod_mem_overcommit"}
CREDENTIAL_FIELDS = {"kubeconfig", "context", "server", "ca", "token"}
# Names that would shadow page URLs (/clusters/new/ and so on).
RESERVED_NAMES = frozenset({LOCAL_CLUSTER_NAME, "new", "kubeconfig-contexts", "spark-local", "flink-local"})
# Erda's location labels: a service with `deployments.selectors: {location: NAME}` lands on them.
LOCATION_LABEL = re.compile(r"dice/location-[a-z0-9]([-a-z0-9]{0,52}[a-z0-9])?")

NODE_KINDS = {
    "stateless": NodeRole.STATELESS,
    "stateful": NodeRole.STATEFUL,
    "job": NodeRole.JOB,
}


def require_manage(user, cluster: Cluster | None = None) -> None:
    """Without a cluster: may the user manage any cluster at all (register one); with one: that one."""
    if cluster is None:
        if not scope.can_manage_clusters(user):
            raise PermissionDenied("you may not manage clusters (needs an organization role with manage_clusters)")
        return
    if not cluster_scope.can_manage_cluster(user, cluster):
        if cluster.organization_id is None:
            raise PermissionDenied(f"{cluster} is a platform-wide cluster: only staff manage it")
        raise PermissionDenied(f"you may not manage {cluster}: it needs the owner or ops role in "
                               f"{cluster.organization}")


def _check_grants(user, organization, granted_to, all_organizations) -> None:
    if organization is not None and (granted_to or all_organizations):
        raise ValidationError({"granted_to": "an organization's own cluster is usable by that organization "
                                             "only; grants apply to platform-wide clusters"})
    if (granted_to is not None or all_organizations) and not user.is_superuser:
        raise PermissionDenied("only staff grant platform-wide clusters to organizations")


# ---- credentials ------------------------------------------------------------------------------


def resolve_credentials(
    *, kubeconfig: str | bytes | None = None, context: str | None = None,
    server: str | None = None, ca: str = "", token: str | None = None,
) -> tuple[str, Resolved]:
    """(auth method, the checked single-context kubeconfig) or a ValidationError naming the field."""
    try:
        if kubeconfig:
            if server or token:
                raise ValidationError({"kubeconfig": "give either a kubeconfig or server + token, not both"})
            return AuthMethod.KUBECONFIG, resolve(parse(kubeconfig), context or None)
        if server or token:
            if not server:
                raise ValidationError({"server": "the API server URL is required with a token"})
            if not token:
                raise ValidationError({"token": "a bearer token is required with a server URL"})
            return AuthMethod.TOKEN, from_token(server, ca or "", token)
    except KubeconfigError as exc:
        field = "kubeconfig" if kubeconfig else ("token" if "token" in str(exc) else "server")
        if "CA certificate" in str(exc):
            field = "ca"
        raise ValidationError({field: str(exc)}) from None
    raise ValidationError({"kubeconfig": "upload a kubeconfig, or give the API server URL, CA and token"})


def kubeconfig_text(cluster: Cluster) -> str:
    return crypto.decrypt(cluster.credentials)


def _store_credentials(cluster: Cluster, method: str, resolved: Resolved) -> None:
    cluster.auth_method = method
    cluster.context = resolved.context
    cluster.api_server = resolved.server
    cluster.credentials = crypto.encrypt(resolved.text)
    cluster.credentials_fingerprint = crypto.fingerprint(resolved.text)


# ---- overcommit ------------------------------------------------------------------------------


def _ratio(value, where: str) -> Decimal:
    try:
        ratio = Decimal(str(value)).quantize(Decimal("0.01"))
    except (InvalidOperation, ValueError):
        raise ValidationError({"overcommit": f"{where} must be a number, got {value!r}"}) from None
    if ratio < 1:
        raise ValidationError({"overcommit": f"{where} must be at least 1, got {value}"})
    if ratio >= 1000:
        raise ValidationError({"overcommit": f"{where} is too large ({value})"})
    return ratio


def _apply_overcommit(cluster: Cluster, ratios: dict) -> None:
    """ratios: {"DEV": {"cpu_ratio": 2, "mem_ratio": 1}, ...}; workspaces not named keep theirs."""
    if not isinstance(ratios, dict):
        raise ValidationError({"overcommit": "expected a mapping of workspace to ratios"})
    for ws, values in ratios.items():
        kind = str(ws).upper()
        if kind not in WorkspaceKind.values:
            raise ValidationError({"overcommit": f"unknown workspace {ws!r}; use {', '.join(WorkspaceKind.values)}"})
        if not isinstance(values, dict) or set(values) - {"cpu_ratio", "mem_ratio"}:
            raise ValidationError({"overcommit": f"{kind}: give cpu_ratio and/or mem_ratio"})
        row, _ = WorkspaceOvercommit.objects.get_or_create(cluster=cluster, workspace=kind)
        for key, value in values.items():
            setattr(row, key, _ratio(value, f"{kind}.{key}"))
        row.cluster = cluster
        row.full_clean()
        row.save()
    _check_prod_memory(cluster)


def _check_prod_memory(cluster: Cluster) -> None:
    prod = cluster.overcommits.filter(workspace=WorkspaceKind.PROD).first()
    if prod and prod.mem_ratio > 1 and not cluster.allow_prod_mem_overcommit:
        raise ValidationError({
            "overcommit": f"PROD memory ratio {prod.mem_ratio} is refused: memory overcommit in PROD needs "
            "allow_prod_mem_overcommit on the cluster"
        })


def overcommit_table(cluster: Cluster) -> dict[str, dict[str, Decimal]]:
    rows = {o.workspace: o for o in cluster.overcommits.all()}
    return {
        ws: {"cpu_ratio": rows[ws].cpu_ratio if ws in rows else Decimal("1.00"),
             "mem_ratio": rows[ws].mem_ratio if ws in rows else Decimal("1.00")}
        for ws in WorkspaceKind.values
    }


# ---- register, update, delete -------------------------------------------------------------------


def register_cluster(
    user, *, name: str, description: str = "", kubeconfig: str | bytes | None = None, context: str | None = None,
    server: str | None = None, ca: str = "", token: str | None = None, wildcard_domain: str = "",
    ingress_class: str = "", storage_class: str = "", allow_prod_mem_overcommit: bool = False,
    overcommit: dict | None = None, check: bool = True, organization=None, granted_to=None,
    all_organizations: bool = False, kind: str = ClusterKind.KUBERNETES, endpoint: str = "",
) -> Cluster:
    """Register a cluster: a Kubernetes one by its credentials (encrypted), a data engine's (a
    standalone Spark master) by its REST `endpoint`; then the connectivity is checked.

    With `organization` the cluster belongs to it (its owners and ops register and manage it);
    without, it is platform-wide: staff only, usable by `granted_to` (or every organization)."""
    if organization is None and not user.is_superuser:
        # Not staff: the cluster belongs to the one organization whose clusters the user manages.
        managed = list(Organization.objects.filter(pk__in=cluster_scope.managed_organizations(user))[:2])
        if not managed:
            raise PermissionDenied("you may not register clusters (needs the owner or ops role in an organization)")
        if len(managed) > 1:
            raise ValidationError({"organization": "you manage clusters of several organizations: name the one "
                                                   "that owns this cluster"})
        organization = managed[0]
    if organization is None:
        pass  # staff: platform-wide
    elif not scope.has_perm(user, perms.MANAGE_CLUSTERS, organization):
        raise PermissionDenied(f"you may not register clusters for {organization} "
                               "(needs the owner or ops role there)")
    _check_grants(user, organization, granted_to, all_organizations)
    try:
        validate_slug(name)
    except ValidationError:
        raise ValidationError({"name": "use lowercase letters, digits and hyphens"}) from None
    name = name.lower()
    if name in RESERVED_NAMES:
        raise ValidationError({"name": f"{name!r} is reserved; choose another name"})
    if Cluster.objects.filter(name=name).exists():
        raise ValidationError({"name": f"cluster {name!r} already exists"})
    kind = str(kind or ClusterKind.KUBERNETES)
    if kind not in registry.kinds():
        raise ValidationError({"kind": f"unknown cluster kind {kind!r} (known: {', '.join(registry.kinds())})"})
    caps = registry.capabilities(kind)
    if caps.credentials:
        method, resolved = resolve_credentials(kubeconfig=kubeconfig, context=context, server=server, ca=ca,
                                               token=token)
    elif caps.data_engine:
        if kubeconfig or token or ca or server:
            raise ValidationError({"kubeconfig": f"a {kind} cluster takes no credentials: give its REST URL as endpoint"})
        endpoint = _endpoint(endpoint, caps.data_engine)
    else:
        raise ValidationError({"kind": f"a {kind} cluster is not registered: the console has it already"})
    with transaction.atomic():
        cluster = Cluster(
            name=name, kind=kind, description=description, wildcard_domain=wildcard_domain,
            ingress_class=ingress_class, storage_class=storage_class,
            allow_prod_mem_overcommit=allow_prod_mem_overcommit, organization=organization,
            all_organizations=all_organizations,
        )
        if caps.credentials:
            _store_credentials(cluster, method, resolved)
        else:
            cluster.api_server = endpoint
        cluster.full_clean(validate_unique=False)
        cluster.save()
        if granted_to:
            cluster.granted_to.set(granted_to)
        _apply_overcommit(cluster, overcommit or {})
        audit.record(user, "create", cluster, after=audit.snapshot(cluster))
    if check:
        run_check(cluster)
    return cluster


def _endpoint(url: str, engine: str) -> str:
    """A data engine's REST endpoint: an http(s) URL with a host."""
    url = str(url or "").strip().rstrip("/")
    match = re.match(r"^https?://[^/\s:?]+(:\d+)?/?(\?[^\s#]*)?$", url)
    if not match:
        hint = ("its master's REST URL, e.g. http://spark-master:6066 (add ?master=spark://host:port&ui=http://host:port "
                "when those are not on 7077 and 8080)") if engine == "spark" else "its REST URL"
        raise ValidationError({"endpoint": f"a {engine} cluster is registered by {hint}; {url!r} is not one"})
    return url


def ensure_managed_data_clusters() -> list[Cluster]:
    """The console's own data clusters (`spark-local`), one per data-engine kind whose engine is
    installed here (`make engines`), usable by every organization: `make run` gets Spark without
    setting anything up. The managed cluster itself starts with its first job."""
    made = []
    for kind in registry.kinds():
        engine = registry.capabilities(kind).data_engine
        if engine and engines.engine_venv(engine) is not None:
            cluster, _ = Cluster.objects.get_or_create(name=f"{engine}-local", defaults={
                "kind": kind, "all_organizations": True,
                "description": f"The console's managed {engine} cluster (started on first use)"})
            made.append(cluster)
    return made


def update_cluster(user, cluster: Cluster, *, overcommit: dict | None = None, check: bool = True, **changes) -> Cluster:
    """Change settings, overcommit ratios, grants (staff, platform-wide clusters) or (all at once)
    the credentials."""
    require_manage(user, cluster)
    granted_to = changes.pop("granted_to", None)
    all_orgs = changes.pop("all_organizations", None)
    if granted_to is not None or all_orgs is not None:
        _check_grants(user, cluster.organization, granted_to, all_orgs)
        if all_orgs is not None:
            changes["all_organizations"] = all_orgs
    unknown = set(changes) - SETTINGS_FIELDS - CREDENTIAL_FIELDS - {"all_organizations"}
    if unknown:
        raise ValidationError(dict.fromkeys(sorted(unknown), "this field cannot be changed"))
    creds = {k: v for k in CREDENTIAL_FIELDS if (v := changes.pop(k, None))}
    if creds and not capabilities(cluster).credentials:
        raise ValidationError({"kubeconfig": f"the {cluster.name} cluster has no credentials"})
    if set(creds) == {"context"}:  # another context of the stored kubeconfig
        creds["kubeconfig"] = kubeconfig_text(cluster)
    before = audit.snapshot(cluster)
    old_fingerprint = cluster.credentials_fingerprint
    with transaction.atomic():
        for key, value in changes.items():
            setattr(cluster, key, value)
        if creds:
            _store_credentials(cluster, *resolve_credentials(**creds))
        cluster.full_clean(validate_unique=False)
        cluster.save()
        if granted_to is not None:
            cluster.granted_to.set(granted_to)
        _check_bound_workspaces(cluster)
        _apply_overcommit(cluster, overcommit or {})
        after = audit.snapshot(cluster)
        if overcommit:
            after["overcommit"] = {k: {r: str(v) for r, v in d.items()} for k, d in overcommit_table(cluster).items()}
        audit.record(user, "update", cluster, before=before, after=after)
    if check and cluster.credentials_fingerprint != old_fingerprint:
        run_check(cluster)
    return cluster


def _check_bound_workspaces(cluster: Cluster) -> None:
    """A grant cannot be withdrawn from an organization whose workspaces are still bound to the
    cluster: every bound workspace stays on a cluster its organization may use."""
    bound = (cluster.workspaces.select_related("project__organization")
             .exclude(project__organization__in=Organization.objects.filter(
                 pk__in=cluster_scope.usable_by_organizations(cluster))))
    stranded = sorted({str(w) for w in bound[:20]})
    if stranded:
        raise ValidationError({"granted_to": f"workspaces still bound to {cluster} would lose it: "
                                             f"{', '.join(stranded)}; bind them elsewhere first"})


def delete_cluster(user, cluster: Cluster) -> None:
    require_manage(user, cluster)
    if cluster.name == LOCAL_CLUSTER_NAME:
        raise ValidationError({"name": "the local cluster always exists and cannot be deleted"})
    bound = cluster.workspaces.count()
    if bound:
        raise ValidationError({"name": f"{bound} workspace(s) are bound to {cluster}; bind them elsewhere first"})
    with transaction.atomic():
        audit.record(user, "delete", cluster, before=audit.snapshot(cluster))
        cluster.delete()


# ---- the connectivity check ----------------------------------------------------------------------


def run_check(cluster: Cluster, user=None) -> dict:
    """Ask the cluster what it is and what we may do there (its executor's capability report);
    store and return the report."""
    if user is not None:
        require_manage(user, cluster)
    try:
        report = cluster_inspector(cluster).check()
    except (ExecutorError, crypto.DecryptionError) as exc:
        report = base_report(False, error=str(exc), capabilities=capabilities(cluster))
    if not report["reachable"]:
        status = CheckStatus.ERROR
    elif report["missing_permissions"]:
        status = CheckStatus.WARNING
    else:
        status = CheckStatus.OK
    report["status"] = status
    cluster.check_report = report
    cluster.check_status = status
    cluster.checked_at = timezone.now()
    if report["reachable"]:
        cluster.server_version = report["server_version"]
        # every CRD of each operator found complete: what the renderer may use
        cluster.operators = [crd for o in report["operators"] if o.get("installed") for crd in o["crds"]]
    Cluster.objects.filter(pk=cluster.pk).update(
        check_report=report, check_status=status, checked_at=cluster.checked_at,
        server_version=cluster.server_version, operators=cluster.operators,
    )
    return report


# ---- node labels -------------------------------------------------------------------------------


def set_node_roles(user, node: Node, roles: list[str]) -> Node:
    """Make the node's `dice/` labels exactly `roles` (each "true"), on the Kubernetes node and here."""
    require_manage(user, node.cluster)
    unknown = {r for r in roles if r not in NodeRole.values and not LOCATION_LABEL.fullmatch(r)}
    if unknown:
        raise ValidationError({"labels": f"unknown dice label(s): {', '.join(sorted(unknown))}; "
                                         f"use {', '.join(NodeRole.values)} or dice/location-<name> "
                                         "(lowercase letters, digits, '-'; what dice.yml's "
                                         "`selectors: {location: <name>}` asks for)"})
    wanted = dict.fromkeys(roles, "true")
    patch: dict[str, str | None] = dict(wanted)
    for key in node.labels:
        if key.startswith("dice/") and key not in wanted:
            patch[key] = None
    before = {"labels": node.dice_labels}
    cluster = node.cluster
    if capabilities(cluster).node_labels:
        try:
            labels = cluster_inspector(cluster).set_node_labels(node.name, patch)
        except (ExecutorError, crypto.DecryptionError) as exc:
            raise ValidationError({"labels": str(exc)}) from None
    else:  # the cluster keeps no labels: they live here only
        labels = {k: v for k, v in {**node.labels, **patch}.items() if v is not None}
    node.labels = labels
    node.save(update_fields=["labels"])
    audit.record(user, "label_node", node, before=before, after={"labels": node.dice_labels})
    return node


# ---- what the deploy code reads ------------------------------------------------------------------


def capabilities(cluster: Cluster) -> Capabilities:
    """What the cluster's kind can do (scheduler.registry): the question apps ask instead of its kind."""
    return registry.capabilities(cluster.kind)


def cluster_ref(cluster: Cluster) -> ClusterRef:
    """The scheduler's view of a cluster: with credentials (a kubeconfig, decrypted: the driver
    takes it as a path or, as here, the document's text); else DICE_LOCAL_ROOT where the local
    kind keeps its state (unset: the driver's default) and whether a staff user allowed several
    organizations on it without isolation."""
    config: dict = {}
    if capabilities(cluster).credentials:
        config = {"kubeconfig": kubeconfig_text(cluster) if cluster.credentials else "", "context": cluster.context}
    else:
        if root := str(getattr(settings, "DICE_LOCAL_ROOT", "") or ""):
            config["root"] = root
        if cluster.allow_shared_tenancy:
            config["allow_shared_tenancy"] = True
        if capabilities(cluster).data_engine:
            if cluster.api_server:  # registered by its REST endpoint
                config["endpoint"] = cluster.api_server
            else:  # the console's managed one, sized by the settings
                config.update(managed=True, worker_cores=settings.DICE_SPARK_WORKER_CORES,
                              worker_memory_mib=settings.DICE_SPARK_WORKER_MEMORY)
                # its worker offers cores x the highest CPU ratio set on it (scheduler/spark/managed.py)
                ratios = [float(r) for r in cluster.overcommits.values_list("cpu_ratio", flat=True)]
                if max(ratios, default=1.0) > 1.0:
                    config["worker_cpu_ratio"] = max(ratios)
    return ClusterRef(
        name=cluster.name, kind=cluster.kind, config=config, wildcard_domain=cluster.wildcard_domain,
        ingress_class=cluster.ingress_class, storage_class=cluster.storage_class,
    )


def cluster_executor(cluster: Cluster) -> Executor:
    """The cluster's Executor (scheduler.registry.executor_for of its ClusterRef)."""
    return registry.executor_for(cluster_ref(cluster))


def cluster_inspector(cluster: Cluster) -> Inspector:
    """What answers the cluster's check, snapshot, node labels and inspection."""
    return registry.inspector_for(cluster_ref(cluster))


def overcommit_for(cluster: Cluster, workspace: str) -> Overcommit:
    row = cluster.overcommits.filter(workspace=str(workspace).upper()).first()
    if row is None:
        return Overcommit(allow_prod_mem_overcommit=cluster.allow_prod_mem_overcommit)
    return Overcommit(float(row.cpu_ratio), float(row.mem_ratio), cluster.allow_prod_mem_overcommit)


def operators_for(cluster: Cluster) -> list[str]:
    """CRD names of the operators the last check found (the renderer's `operators`)."""
    return list(cluster.operators or [])


def node_selector_for(cluster: Cluster, workspace: str, kind: str) -> dict[str, str]:
    """The nodeSelector for a workload of `kind` ("stateless", "stateful" or "job") in `workspace`.

    A dice/ label is required only when some node of the cluster carries it, so a cluster where
    nobody labelled nodes schedules anywhere, and labelling one node starts steering at once.
    """
    if kind not in NODE_KINDS:
        raise ValueError(f"kind must be one of {', '.join(NODE_KINDS)}, got {kind!r}")
    used: set[str] = set()
    for labels in cluster.nodes.values_list("labels", flat=True):
        used.update(k for k, v in (labels or {}).items() if k.startswith("dice/") and v == "true")
    selector = {}
    ws_label = f"dice/workspace-{str(workspace).lower()}"
    if ws_label in used:
        selector[ws_label] = "true"
    if NODE_KINDS[kind] in used:
        selector[str(NODE_KINDS[kind])] = "true"
    return selector


def node_selectors(cluster: Cluster, workspace: str) -> dict[str, dict[str, str]]:
    """The node labels each kind of workload of the workspace requires on the cluster (its nodes'
    `dice/` labels, set on the cluster page)."""
    return {kind: node_selector_for(cluster, workspace, kind) for kind in NODE_KINDS}


def isolation_of(cluster: Cluster) -> dict | None:
    """How the cluster's kind isolates tenants here (None: it does not say), with whether this
    cluster allows several organizations without isolation."""
    report = registry.isolation(cluster.kind)
    if report is not None and report.get("isolation") == "none":
        report = {**report, "shared_tenancy": "allowed by a staff user" if cluster.allow_shared_tenancy else "refused"}
    return report


def isolation_warning() -> str:
    """The warning the console's first page shows when a cluster in use runs tenant code without
    isolating tenants from the console and each other ("" when none does)."""
    for cluster in Cluster.objects.order_by("name"):
        report = registry.isolation(cluster.kind)
        if report and report.get("isolation") == "none":
            shared = ("a staff user allowed several organizations on it" if cluster.allow_shared_tenancy
                      else "it runs the code of one organization at a time")
            return (f"Cluster {cluster.name} has no sandbox on this machine ({report.get('reason', '')}): "
                    f"tenant code runs as the console's user and can read its data; {shared}.")
    return ""
