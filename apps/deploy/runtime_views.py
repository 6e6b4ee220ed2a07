"""Runtime pages: an application's runtimes, one runtime (live services, the rollout in progress,
events, the history of deployments), its actions, and the deploy form of a release."""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.shortcuts import redirect, render
from django.views import View

from apps.deploy import addons, deployments, filtersets, tables
from apps.deploy import drift as drift_mod
from apps.deploy.choices import ACTIVE_STATUSES, DeploymentStatus
from apps.deploy.forms import DeployForm, ScaleForm
from apps.deploy.live import live_events, live_status
from apps.deploy.models import Deployment, Release, Runtime
from apps.deploy.views import AppReleasesMixin
from apps.projects import permissions, scope
from apps.projects.choices import WorkspaceKind
from dice_console.views import ObjectListView, ServiceFormView, get_scoped_or_404, name_typed, require

# The page follows pushes from /ws/runtimes/<id>/; polling is the fallback: every second while the
# runtime settles (a rollout, a scale, replicas not all ready), every ten seconds when it is steady.
POLL_SETTLING_MS = 1000
POLL_IDLE_MS = 10000


class AppRuntimesMixin(AppReleasesMixin):
    """The application of the URL and its runtimes, read through the scope."""

    def app_runtimes(self):
        return (
            scope.scoped(self.request.user, Runtime)
            .filter(application=self.get_app())
            .select_related("application__project__organization", "workspace", "cluster", "release")
        )

    def get_runtime(self) -> Runtime:
        if not hasattr(self, "_runtime"):
            self._runtime = get_scoped_or_404(
                self.app_runtimes(), workspace__kind=self.kwargs["workspace"].upper(), name=self.kwargs["name"]
            )
        return self._runtime

    def can_deploy(self, runtime: Runtime) -> bool:
        return scope.has_perm(self.request.user, permissions.deploy_perm(runtime.workspace.kind), runtime.application)


class RuntimeListView(AppRuntimesMixin, ObjectListView):
    model = Runtime
    table_class = tables.RuntimeTable
    filterset_class = filtersets.RuntimeFilterSet

    def get_queryset(self):
        return self.app_runtimes()

    def extra_context(self):
        return {"title": "Runtimes", "app": self.get_app()}


def _settling(live: dict, active) -> bool:
    if active is not None:
        return True
    return any(
        svc["ready"] != svc["desired"] or svc["health"] != "Healthy"
        for svc in live["services"] + live["addons"]
    )


def live_context(runtime: Runtime, user) -> dict:
    """Everything of the runtime page that changes: the live document (deploy/_runtime_live.html)."""
    active = runtime.deployments.filter(status__in=ACTIVE_STATUSES).select_related("release").first()
    live = live_status(runtime)
    history = list(
        runtime.deployments.select_related("release__application__project__organization")
        .prefetch_related("transitions")[:50]
    )
    versions = runtime.deployments.values_list("release__version", "status")
    releases = list(
        scope.scoped(user, Release).filter(application=runtime.application)
        .defer("spec_text").order_by("-version")[:50]
    )
    return {
        "runtime": runtime,
        "app": runtime.application,
        "live": live,
        "events": live_events(runtime),
        "active": active,
        "history": history,
        "releases": releases,
        "failed_versions": {v for v, st in versions if st == DeploymentStatus.FAILED},
        "healthy_versions": {v for v, st in versions if st == DeploymentStatus.HEALTHY},
        "poll_ms": POLL_SETTLING_MS if _settling(live, active) else POLL_IDLE_MS,
    }


class RuntimeView(AppRuntimesMixin, View):
    def get(self, request, **kwargs):
        runtime = self.get_runtime()
        return render(request, "deploy/runtime.html", {
            **live_context(runtime, request.user),
            "can_deploy": self.can_deploy(runtime),
            "custom_addons": addons.custom_addons(runtime),
        })


class RuntimeLiveView(AppRuntimesMixin, View):
    """The live document of the runtime page, fetched again on each push (and as a fallback poll)."""

    def get(self, request, **kwargs):
        runtime = self.get_runtime()
        return render(request, "deploy/_runtime_live.html", {
            **live_context(runtime, request.user), "can_deploy": self.can_deploy(runtime),
        })


class RuntimeJobLogView(AppRuntimesMixin, View):
    """The latest run of a data engine's job (`engine: spark|flink`): its state and its log."""

    def get(self, request, job: str, **kwargs):
        runtime = self.get_runtime()
        try:
            found = deployments.job_log(runtime, job)
        except ValidationError as exc:
            return render(request, "deploy/runtime_job_log.html",
                          {"runtime": runtime, "job": job, "error": "; ".join(exc.messages)}, status=404)
        return render(request, "deploy/runtime_job_log.html", {"runtime": runtime, "job": job, "log": found})


class RuntimeDriftView(AppRuntimesMixin, View):
    """The Sync panel of the runtime page, loaded after the page: comparing with the release asks
    the cluster (a dry-run apply of every object on Kubernetes), which no page render waits for."""

    def get(self, request, **kwargs):
        runtime = self.get_runtime()
        return render(request, "deploy/_runtime_drift.html", {
            "runtime": runtime, "drift": drift_mod.runtime_drift(runtime), "can_deploy": self.can_deploy(runtime),
        })


class RuntimeActionView(AppRuntimesMixin, View):
    """POST-only buttons of the runtime page; each goes through apps.deploy.deployments."""

    action = ""

    def post(self, request, **kwargs):
        runtime = self.get_runtime()
        require(request.user, permissions.deploy_perm(runtime.workspace.kind), runtime.application)
        try:
            done = self.perform(runtime)
        except ValidationError as exc:
            messages.error(request, "; ".join(exc.messages))
            return redirect(runtime.get_absolute_url())
        messages.success(request, done)
        if self.action == "delete":
            return redirect(runtime.application.get_absolute_url())
        return redirect(runtime.get_absolute_url())

    def perform(self, runtime: Runtime) -> str:
        user, data = self.request.user, self.request.POST
        if self.action == "scale":
            form = ScaleForm(data)
            if not form.is_valid():
                raise ValidationError([f"{k}: {' '.join(v)}" for k, v in form.errors.items()])
            deployments.scale(user, runtime, form.cleaned_data["service"], form.cleaned_data["replicas"])
            return f"Scaled {form.cleaned_data['service']} to {form.cleaned_data['replicas']}."
        if self.action == "restart":
            deployments.restart(user, runtime, data.get("service", ""))
            return f"Restarting {data.get('service')}."
        if self.action == "addon-values":
            name = data.get("addon", "")
            values = {}
            for line in data.get("values", "").splitlines():
                if not line.strip():
                    continue
                key, sep, value = line.partition("=")
                if not sep:
                    raise ValidationError([f"values: one KEY=VALUE per line; {line.strip()[:40]!r} has no '='"])
                values[key.strip()] = value
            keys = addons.set_custom_values(user, runtime, name, values)
            return f"Set {', '.join(keys) or 'no values'} of custom addon {name}: deploy again to use them."
        if self.action == "stop":
            deployments.stop(user, runtime)
            return "Stopped every service (addons keep running). Deploy to start again."
        if self.action == "delete":
            deployments.delete_runtime(user, runtime)
            return f"Deleted runtime {runtime.name}."
        if self.action == "rollback":
            release = get_scoped_or_404(
                scope.scoped(user, Release).filter(application=runtime.application), pk=data.get("release") or 0
            )
            d = deployments.rollback(user, runtime, release)
            return f"Rolling back to v{release.version} (deployment #{d.pk})."
        if self.action == "sync":
            d = drift_mod.sync(user, runtime)
            return f"Syncing to v{runtime.release.version} (deployment #{d.pk})."
        if self.action == "cancel-job":
            job = data.get("job", "")
            runs = deployments.cancel_job(user, runtime, job)
            return f"Cancelled {', '.join(runs)} of job {job}." if runs else f"Job {job} had no run going."
        if self.action == "cancel":
            deployment = get_scoped_or_404(
                runtime.deployments.all(), pk=data.get("deployment") or 0
            )
            deployments.cancel(user, deployment)
            return f"Cancelled deployment #{deployment.pk}."
        raise ValidationError(f"unknown action {self.action}")  # pragma: no cover


class RuntimeDeleteView(RuntimeActionView):
    """A confirmation page, then the delete."""

    action = "delete"

    def page(self, runtime: Runtime, status: int = 200, error: str = ""):
        return render(self.request, "deploy/runtime_delete.html", {
            "runtime": runtime, "app": runtime.application, "confirm_name": runtime.name, "error": error,
        }, status=status)

    def get(self, request, **kwargs):
        runtime = self.get_runtime()
        require(request.user, permissions.deploy_perm(runtime.workspace.kind), runtime.application)
        return self.page(runtime)

    def post(self, request, **kwargs):
        runtime = self.get_runtime()
        require(request.user, permissions.deploy_perm(runtime.workspace.kind), runtime.application)
        if not name_typed(request, runtime.name):
            return self.page(runtime, 422, f"Type {runtime.name} to confirm: nothing was deleted.")
        return super().post(request, **kwargs)


class ReleaseDeployView(AppReleasesMixin, ServiceFormView):
    """The Deploy form of a release page: workspace and runtime name."""

    form_class = DeployForm
    template_name = "deploy/release_deploy.html"
    title = "Deploy"

    def get_target(self):
        return self.get_release(self.kwargs["version"])

    def check(self, target):
        allowed = self._workspaces(target)
        if not allowed:
            require(self.request.user, permissions.deploy_perm(WorkspaceKind.DEV), target.application)

    def _workspaces(self, release):
        return [
            (kind, label) for kind, label in WorkspaceKind.choices
            if scope.has_perm(self.request.user, permissions.deploy_perm(kind), release.application)
        ]

    def form_kwargs(self, target):
        return {"workspaces": self._workspaces(target)}

    def get_initial(self, target):
        return {"runtime": "main"}

    def perform(self, form, target):
        return deployments.deploy(
            self.request.user, target.application, form.cleaned_data["workspace"],
            release=target, runtime_name=form.cleaned_data["runtime"],
        )

    def extra_context(self, target) -> dict:
        newest = Release.objects.filter(application_id=target.application_id).order_by("-version").only("version").first()
        return {"newest": newest}

    def success_message(self, obj: Deployment, target) -> str:
        # Not "done": the rollout has only been queued; the page follows it live.
        return f"Deployment #{obj.pk} of v{target.version} queued: its progress is shown below."

    def success_url(self, obj: Deployment, target):
        return obj.runtime.get_absolute_url()


class DeploymentListView(ObjectListView):
    """Every deployment in the user's organizations, newest first, filterable like the API list."""

    model = Deployment
    table_class = tables.DeploymentTable
    filterset_class = filtersets.DeploymentFilterSet
    title = "Deployments"

    def get_queryset(self):
        return self.scoped_queryset().select_related(
            "runtime__application__project__organization", "runtime__workspace",
            "release__application__project__organization",
        ).order_by("-created", "-id")
