"""Release pages: an application's releases, a new release (checked live as you type), one release
with its summary and dependency diagram, and the comparison of two releases per workspace."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db import transaction
from django.shortcuts import render
from django.urls import reverse
from django.utils.safestring import mark_safe
from django.views import View

from apps.deploy import bundles, filtersets, services, tables
from apps.deploy.diagram import dependency_svg
from apps.deploy.diff import workspace_diff
from apps.deploy.forms import CompareForm, ReleaseForm, parse_image_lines
from apps.deploy.models import Release
from apps.deploy.summary import release_summary
from apps.projects import permissions, scope
from apps.projects.choices import WorkspaceKind
from dice_console.views import ObjectListView, ScopedMixin, ServiceFormView, get_scoped_or_404, require

PREVIEW_CONTEXT = 2  # lines shown around each error line in the preview


class AppReleasesMixin(ScopedMixin):
    """The application of the URL and its releases, always read through the scope."""

    model = Release

    def get_app(self):
        if not hasattr(self, "_app"):
            self._app = get_scoped_or_404(
                scope.applications_for(self.request.user).select_related("project__organization"),
                project__organization__slug=self.kwargs["org"],
                project__slug=self.kwargs["project"],
                slug=self.kwargs["app"],
            )
        return self._app

    def app_releases(self):
        return self.scoped_queryset().filter(application=self.get_app()).select_related(
            "application__project__organization"
        )

    def get_release(self, version):
        return get_scoped_or_404(self.app_releases(), version=version)

    def crumbs(self):
        app = self.get_app()
        return [
            ("Organizations", reverse("projects:organizations")),
            (app.project.organization.slug, app.project.organization.get_absolute_url()),
            (app.project.slug, app.project.get_absolute_url()),
            (app.slug, app.get_absolute_url()),
        ]


class ReleaseListView(AppReleasesMixin, ObjectListView):
    table_class = tables.ReleaseTable
    filterset_class = filtersets.ReleaseFilterSet
    template_name = "deploy/release_list.html"

    def get_queryset(self):
        return self.app_releases().defer("spec_text")

    def extra_context(self):
        app = self.get_app()
        return {
            "app": app,
            "title": f"Releases of {app}",
            "can_change": scope.has_perm(self.request.user, permissions.CHANGE, app),
        }


# ---- the new-release form and its live check ------------------------------------------------


def preview_lines(text: str, errors) -> list[dict]:
    """Numbered lines around each error line, the error lines marked with their messages; `gap`
    rows stand for skipped lines."""
    by_line: dict[int, list[str]] = {}
    for err in errors:
        if err.line is not None:
            by_line.setdefault(err.line, []).append(f"{err.path}: {err.message}" if err.path else err.message)
    lines = text.splitlines()
    if not by_line:
        return []
    shown = sorted({
        n for line in by_line for n in range(line - PREVIEW_CONTEXT, line + PREVIEW_CONTEXT + 1)
        if 1 <= n <= max(len(lines), 1)
    })
    out, previous = [], 0
    for n in shown:
        if n > previous + 1:
            out.append({"gap": True})
        out.append({"number": n, "text": lines[n - 1] if n <= len(lines) else "", "errors": by_line.get(n, [])})
        previous = n
    return out


def spec_check_context(text: str, images_text: str, *, source_name: str = "dice.yml") -> dict:
    """What the live check shows: the verdict, every error with its line, a marked preview."""
    images, image_line_errors = parse_image_lines(images_text)
    doc, spec_errors, image_errors = services.check_release_input(text, images, source_name=source_name)
    return {
        "checked": bool(text.strip()),
        "valid": doc is not None and not spec_errors and not image_errors and not image_line_errors,
        "spec_errors": spec_errors,
        "image_errors": [*image_line_errors, *image_errors],
        "preview": preview_lines(text, spec_errors),
        "counts": (
            {"services": len(doc.services), "addons": len(doc.addons), "jobs": len(doc.jobs)} if doc else None
        ),
        # Deprecated forms that are still read (Erda's {storage, path} volumes...).
        "warnings": list(doc.warnings) if doc is not None else [],
    }


class ReleaseCreateView(AppReleasesMixin, ServiceFormView):
    form_class = ReleaseForm
    template_name = "deploy/release_form.html"
    title = "New release"

    def get_target(self):
        return self.get_app()

    def check(self, target):
        require(self.request.user, permissions.CHANGE, target)

    def form_kwargs(self, target):
        return {"files": self.request.FILES} if self.request.method == "POST" else {}

    def perform(self, form, target):
        data = form.cleaned_data
        try:
            with transaction.atomic():
                release = services.create_release(
                    self.request.user,
                    target,
                    spec_text=data["spec_text"],
                    images=data["images"],
                    source_name=data["source_name"],
                    description=data["description"],
                )
                if data.get("files"):
                    bundles.attach_bundle(release, data["files"])
                return release
        except ValidationError:
            form.spec_check = spec_check_context(data["spec_text"], form.data.get("images", ""))
            raise


class ReleaseValidateView(AppReleasesMixin, View):
    """The live check of the new-release form (htmx posts the textarea as you type)."""

    def post(self, request, **kwargs):
        self.get_app()
        context = spec_check_context(request.POST.get("spec_text", ""), request.POST.get("images", ""))
        return render(request, "deploy/_spec_check.html", {"check": context})


# ---- one release, and two compared --------------------------------------------------------------


class ReleaseView(AppReleasesMixin, View):
    def get(self, request, org, project, app, version):
        release = self.get_release(version)
        summary = release_summary(release)
        return render(request, "deploy/release.html", {
            "release": release,
            "app": release.application,
            "summary": summary,
            "diagram": mark_safe(dependency_svg(summary)),  # every text in it is escaped
            "spec_lines": release.spec_text.splitlines(),
            "previous": self.app_releases().filter(version__lt=version).order_by("-version").first(),
            "can_change": scope.has_perm(request.user, permissions.CHANGE, release.application),
        })


def diff_lines(unified: str) -> list[tuple[str, str]]:
    """(css class, text) per line of a unified diff."""
    out = []
    for line in unified.splitlines():
        if line.startswith(("+++", "---")):
            kind = "meta"
        elif line.startswith("@@"):
            kind = "hunk"
        elif line.startswith("+"):
            kind = "add"
        elif line.startswith("-"):
            kind = "del"
        else:
            kind = "ctx"
        out.append((kind, line))
    return out


class ReleaseCompareView(AppReleasesMixin, View):
    """This release against another of the application, in one workspace; htmx swaps just the diff."""

    def get(self, request, org, project, app, version):
        release = self.get_release(version)
        versions = list(self.app_releases().exclude(pk=release.pk).values_list("version", flat=True))
        form = CompareForm(request.GET or None, versions=versions, workspaces=WorkspaceKind.choices)
        other_version = next((v for v in versions if v < version), None)
        workspace = WorkspaceKind.DEV
        if form.is_bound and form.is_valid():
            other_version = form.cleaned_data["other"]
            workspace = form.cleaned_data["workspace"]
        elif not form.is_bound:
            form = CompareForm(
                initial={"other": other_version, "workspace": workspace}, versions=versions,
                workspaces=WorkspaceKind.choices,
            )
        other = self.get_release(other_version) if other_version else None
        diff = workspace_diff(release, other, workspace)
        context = {
            "release": release,
            "app": release.application,
            "other": other,
            "form": form,
            "diff": diff,
            "lines": diff_lines(diff["unified"]),
        }
        if request.htmx and request.htmx.target == "diff":
            return render(request, "deploy/_diff.html", context)
        return render(request, "deploy/release_compare.html", context)
