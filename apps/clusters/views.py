"""Pages of clusters: list, register, settings, nodes with usage and labels, check, sync, inspection,
and the resource report."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Count
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.html import escape
from django.views import View

from apps.clusters import scope as cluster_scope
from apps.clusters import services, tables
from apps.clusters.choices import NodeRole
from apps.clusters.filtersets import ClusterFilterSet
from apps.clusters.forms import ClusterEditForm, ClusterRegisterForm, NodeRolesForm
from apps.clusters.inspection import inspect_cluster, visible_findings
from apps.clusters.kubeconfig import KubeconfigError, contexts, parse
from apps.clusters.models import Cluster, Node
from apps.clusters.reports import resource_report
from apps.clusters.sync import sync_cluster
from apps.deploy.models import Runtime
from apps.projects import scope
from apps.projects.choices import WorkspaceKind
from apps.projects.models import Workspace
from dice_console.api_input import digits
from dice_console.views import ObjectListView, ScopedMixin, ServiceDeleteView, _add_errors, get_scoped_or_404


def _pct(used: int, total: int) -> int:
    return min(100, round(100 * used / total)) if total else 0


def _gib(b: int) -> str:
    return f"{b / 1024 ** 3:.1f}"


class ClusterLookup(ScopedMixin):
    model = Cluster

    def get_cluster(self):
        return get_scoped_or_404(self.scoped_queryset(), name=self.kwargs["name"])


class ClusterListView(ObjectListView):
    model = Cluster
    table_class = tables.ClusterTable
    filterset_class = ClusterFilterSet
    title = "Clusters"

    def get_queryset(self):
        return super().get_queryset().select_related("organization").annotate(node_count=Count("nodes"))

    def extra_context(self):
        can = scope.can_manage_clusters(self.request.user)
        return {"add_url_name": "clusters:cluster_add" if can else None}


class ClusterView(ClusterLookup, View):
    def get(self, request, name):
        cluster = self.get_cluster()
        nodes = []
        for node in cluster.nodes.all():
            alloc, req = node.allocatable or {}, node.requests or {}
            nodes.append({
                "node": node,
                "cpu": {"used": req.get("cpu", 0) / 1000, "total": alloc.get("cpu", 0) / 1000,
                        "pct": _pct(req.get("cpu", 0), alloc.get("cpu", 0))},
                "mem": {"used": _gib(req.get("memory", 0)), "total": _gib(alloc.get("memory", 0)),
                        "pct": _pct(req.get("memory", 0), alloc.get("memory", 0))},
                "form": NodeRolesForm(initial={
                    "roles": node.dice_labels,
                    "locations": ", ".join(k.removeprefix("dice/location-") for k in node.dice_labels
                                           if k.startswith("dice/location-")),
                }, prefix=f"n{node.pk}"),
                "other_labels": {k: v for k, v in node.labels.items() if not k.startswith("dice/")},
            })
        ratios = services.overcommit_table(cluster)
        report = cluster.check_report or {}
        return render(request, "clusters/cluster.html", {
            "object": cluster, "nodes": nodes, "ratios": ratios,
            "prod_mem_overcommit": ratios[WorkspaceKind.PROD]["mem_ratio"] > 1,
            "report": report, "can_manage": cluster_scope.can_manage_cluster(request.user, cluster),
            "workspaces": cluster.workspaces.select_related("project__organization").filter(
                project__in=scope.projects_for(request.user)),
            "roles": NodeRole.choices, "last_inspection": cluster.inspections.first(),
            "isolation": services.isolation_of(cluster),
            "runtimes": scope.scoped(request.user, Runtime).filter(cluster=cluster).select_related(
                "application__project__organization", "workspace", "release").order_by("application__slug", "name")[:200],
        })


def _form_errors(form, exc: ValidationError):
    mapping = {"kubeconfig": "kubeconfig_file", "ca": "ca_file", "overcommit": None}
    if hasattr(exc, "error_dict"):
        for field, errors in exc.message_dict.items():
            field = mapping.get(field, field)
            form.add_error(field if field in form.fields else None, errors)
    else:
        _add_errors(form, exc)


class ClusterRegisterView(ScopedMixin, View):
    template = "clusters/cluster_form.html"

    def get(self, request):
        services.require_manage(request.user)
        return render(request, self.template, {"form": ClusterRegisterForm(user=request.user), "title": "Register a cluster"})

    def post(self, request):
        services.require_manage(request.user)
        form = ClusterRegisterForm(request.POST, request.FILES, user=request.user)
        if form.is_valid():
            try:
                cluster = services.register_cluster(
                    request.user, name=form.cleaned_data["name"], overcommit=form.overcommit(),
                    organization=form.cleaned_data.get("organization"),
                    **form.settings(), **form.target())
            except ValidationError as exc:
                _form_errors(form, exc)
            else:
                messages.success(request, f"Registered {cluster}: {cluster.get_check_status_display()}.")
                return redirect(cluster)
        return render(request, self.template, {"form": form, "title": "Register a cluster"}, status=200)


class ClusterEditView(ClusterLookup, View):
    template = "clusters/cluster_form.html"

    def initial(self, cluster):
        data = {n: getattr(cluster, n) for n in ("description", "wildcard_domain", "ingress_class",
                                                 "storage_class", "allow_prod_mem_overcommit")}
        for ws, r in services.overcommit_table(cluster).items():
            data[f"{ws}_cpu_ratio"], data[f"{ws}_mem_ratio"] = r["cpu_ratio"], r["mem_ratio"]
        return data

    def get(self, request, name):
        cluster = self.get_cluster()
        services.require_manage(request.user, cluster)
        form = ClusterEditForm(initial=self.initial(cluster))
        return render(request, self.template, {"form": form, "title": f"Edit {cluster}", "object": cluster})

    def post(self, request, name):
        cluster = self.get_cluster()
        services.require_manage(request.user, cluster)
        form = ClusterEditForm(request.POST, request.FILES)
        if form.is_valid():
            creds = {k: v for k, v in form._creds.items() if v}
            try:
                services.update_cluster(request.user, cluster, overcommit=form.overcommit(),
                                        **form.settings(), **creds)
            except ValidationError as exc:
                _form_errors(form, exc)
            else:
                messages.success(request, f"Saved {cluster}.")
                return redirect(cluster)
        return render(request, self.template, {"form": form, "title": f"Edit {cluster}", "object": cluster})


class ClusterDeleteView(ClusterLookup, ServiceDeleteView):
    def get_target(self):
        cluster = self.get_cluster()
        services.require_manage(self.request.user, cluster)
        return cluster

    def post(self, request, *args, **kwargs):
        try:
            return super().post(request, *args, **kwargs)
        except ValidationError as exc:
            messages.error(request, "; ".join(exc.messages))
            return redirect(self.get_cluster())

    def perform(self, target):
        services.delete_cluster(self.request.user, target)

    def success_url(self, target):
        return reverse("clusters:clusters")


class ClusterActionView(ClusterLookup, View):
    """POST-only buttons of the cluster page: check, sync, inspect."""

    action = ""

    def post(self, request, name):
        cluster = self.get_cluster()
        services.require_manage(request.user, cluster)
        try:
            if self.action == "check":
                report = services.run_check(cluster, request.user)
                messages.success(request, f"Check: {report['status']}"
                                 + (f" ({report['error']})" if report.get("error") else ""))
            elif self.action == "sync":
                counts = sync_cluster(cluster)
                messages.success(request, f"Synced {counts['nodes']} nodes, {counts['namespaces']} namespaces.")
            elif self.action == "inspect":
                inspect_cluster(cluster)
                return redirect("clusters:inspection", name=cluster.name)
        except Exception as exc:  # shown on the page: the cluster is a remote machine that may fail
            messages.error(request, f"{self.action} failed: {exc}")
        return redirect(cluster)


class NodeLabelsView(ClusterLookup, View):
    def post(self, request, name, node):
        cluster = self.get_cluster()
        obj = get_scoped_or_404(Node.objects.filter(cluster=cluster), name=node)
        form = NodeRolesForm(request.POST, prefix=f"n{obj.pk}")
        if not form.is_valid():
            form = NodeRolesForm(request.POST)
        if form.is_valid():
            try:
                services.set_node_roles(request.user, obj, form.labels())
            except ValidationError as exc:
                messages.error(request, "; ".join(exc.messages))
            else:
                messages.success(request, f"Labels of {obj.name}: {', '.join(obj.dice_labels) or 'none'}.")
        return redirect(reverse("clusters:cluster", args=[cluster.name]) + f"#node-{obj.name}")


class InspectionView(ClusterLookup, View):
    def get(self, request, name):
        cluster = self.get_cluster()
        report = cluster.inspections.first()
        findings = visible_findings(request.user, report) if report else []
        return render(request, "clusters/inspection.html", {
            "object": cluster, "report": report, "findings": findings,
            "can_manage": cluster_scope.can_manage_cluster(request.user, cluster),
        })


@login_required
def kubeconfig_contexts(request):
    """htmx: the contexts of the chosen kubeconfig file, as <option>s for the context field."""
    if not scope.can_manage_clusters(request.user):
        raise PermissionDenied("you may not manage clusters")
    upload = request.FILES.get("kubeconfig_file")
    text = upload.read() if upload else request.POST.get("kubeconfig", "")
    try:
        doc = parse(text)
    except KubeconfigError as exc:
        return HttpResponse(f'<option value="">{escape(exc)}</option>')
    current = doc.get("current-context", "")
    return HttpResponse("".join(
        f'<option value="{escape(c)}">{escape(c)}{" (current)" if c == current else ""}</option>'
        for c in contexts(doc)))


class ResourceReportView(ScopedMixin, View):
    model = Workspace

    def get(self, request):
        projects = scope.projects_for(request.user).select_related("organization")
        workspaces = self.scoped_queryset()
        chosen = request.GET.get("project", "")
        if digits(chosen):
            workspaces = workspaces.filter(project_id=int(chosen))
        if request.GET.get("cluster"):
            workspaces = workspaces.filter(cluster__name=request.GET["cluster"])
        rows = resource_report(workspaces.order_by("project__organization__slug", "project__slug", "kind")[:400])
        return render(request, "clusters/resources.html", {
            "rows": rows, "projects": projects, "chosen": chosen,
            "clusters": cluster_scope.clusters_for(request.user), "chosen_cluster": request.GET.get("cluster", ""),
        })
