"""Models of the deploy app: releases and their files, runtimes, deployments and addon instances."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.urls import reverse

from apps.clusters import crypto
from apps.deploy.choices import ACTIVE_STATUSES, ALLOWED_TRANSITIONS, DeploymentStatus
from apps.projects.models import InApplicationScope


class ImmutableRelease(Exception):
    """Raised when code tries to change a release that already exists."""


class ReleaseQuerySet(models.QuerySet):
    def update(self, **kwargs):
        # A bulk update would bypass Release.save(); releases never change once made.
        raise ImmutableRelease("releases are immutable: create a new release instead of updating one")


class Release(InApplicationScope):
    """One immutable, numbered version of an application: its dice.yml as written plus the image
    each service and job runs. Deployments roll a release out onto a runtime; to change anything,
    make a new release."""

    application = models.ForeignKey(
        "projects.Application", on_delete=models.CASCADE, related_name="releases"
    )
    version = models.PositiveIntegerField(help_text="1, 2, 3 ... per application, in creation order")
    source_name = models.CharField(max_length=200, default="dice.yml", help_text="File the spec came from")
    spec_text = models.TextField(help_text="The dice.yml exactly as given")
    spec_hash = models.CharField(max_length=64, help_text="sha256 of the dice.yml text")
    images = models.JSONField(default=dict, blank=True, help_text="Service or job name -> image reference")
    image_overrides = models.JSONField(
        default=dict, blank=True, help_text="The images given at creation; they win over the spec in every workspace"
    )
    content_hash = models.CharField(
        max_length=64, db_index=True, help_text="sha256 of the text and the image map: equal hash, equal release"
    )
    description = models.CharField(max_length=500, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_by_name = models.CharField(max_length=150, blank=True)
    # The pipeline run that made this release, if any (a foreign key once pipelines exist).
    pipeline_run_id = models.PositiveBigIntegerField(null=True, blank=True)
    created = models.DateTimeField(auto_now_add=True, db_index=True)

    objects = ReleaseQuerySet.as_manager()

    class Meta:
        # By the application's id, not its name: ordering by a join's column ruled out every index.
        ordering = ["application_id", "-version"]
        constraints = [
            models.UniqueConstraint(fields=["application", "version"], name="release_version_per_application")
        ]
        indexes = [
            models.Index(fields=["application", "-version"], name="release_app_newest"),
            models.Index(fields=["scope_organization", "application", "-version"], name="release_org_newest"),
            models.Index(fields=["scope_project", "application", "-version"], name="release_project_newest"),
        ]

    def __str__(self):
        return f"{self.application} v{self.version}"

    def save(self, *args, **kwargs):
        if not self._state.adding:
            raise ImmutableRelease(f"release {self} is immutable: create a new release instead")
        super().save(*args, **kwargs)

    def get_absolute_url(self):
        app = self.application
        project = app.project
        return reverse("deploy:release", args=[project.organization.slug, project.slug, app.slug, self.version])

    @property
    def organization(self):
        return self.application.project.organization

    @property
    def project(self):
        return self.application.project


class ReleaseBundle(models.Model):
    """The files a release runs from on the local cluster (the spec file's folder, as a tar.gz),
    uploaded with the release and never changed. Stored content-addressed under the deploy files
    directory (`bundles/<sha256>.tar.gz`); unpacked once per release into its working directory."""

    release = models.OneToOneField(Release, on_delete=models.CASCADE, related_name="bundle")
    sha256 = models.CharField(max_length=64, help_text="sha256 of the archive")
    size = models.PositiveBigIntegerField(help_text="Archive size in bytes")
    files = models.PositiveIntegerField(default=0, help_text="Regular files in the archive")
    created = models.DateTimeField(auto_now_add=True)

    def __str__(self):
        return f"files of {self.release} ({self.size} bytes)"

    @property
    def organization(self):
        return self.release.organization


class Runtime(InApplicationScope):
    """One running instance of an application in one workspace, named (e.g. after the branch):
    what a deployment rolls releases onto. It stays on the cluster its workspace was bound to
    when it was made, even if the workspace is later bound elsewhere."""

    application = models.ForeignKey("projects.Application", on_delete=models.CASCADE, related_name="runtimes")
    workspace = models.ForeignKey("projects.Workspace", on_delete=models.CASCADE, related_name="runtimes")
    name = models.CharField(max_length=40, help_text="e.g. main, or a branch name (a DNS label)")
    cluster = models.ForeignKey("clusters.Cluster", on_delete=models.PROTECT, related_name="runtimes")
    release = models.ForeignKey(
        Release, null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
        help_text="The release last applied to the cluster",
    )
    # Service -> replicas set by scale/stop since the last deploy (a deploy returns to the spec's).
    replicas = models.JSONField(default=dict, blank=True)
    created = models.DateTimeField(auto_now_add=True)
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["application", "workspace__kind", "name"]
        constraints = [
            models.UniqueConstraint(fields=["application", "workspace", "name"], name="runtime_name_per_app_workspace")
        ]
        indexes = [
            models.Index(fields=["scope_organization"], name="runtime_org"),
            models.Index(fields=["scope_project"], name="runtime_project"),
        ]

    def __str__(self):
        return f"{self.application}:{self.workspace.kind}/{self.name}"

    def get_absolute_url(self):
        app = self.application
        project = app.project
        return reverse(
            "deploy:runtime",
            args=[project.organization.slug, project.slug, app.slug, self.workspace.kind, self.name],
        )

    @property
    def organization(self):
        return self.application.project.organization

    @property
    def project(self):
        return self.application.project


class Deployment(InApplicationScope):
    """One rollout of a release onto a runtime, from queued to a final status, with its history.
    Change `status` only through apps.deploy.deployments.transition(), which checks
    ALLOWED_TRANSITIONS and records a DeploymentTransition."""

    runtime = models.ForeignKey(Runtime, on_delete=models.CASCADE, related_name="deployments")
    release = models.ForeignKey(Release, on_delete=models.CASCADE, related_name="deployments")
    status = models.CharField(max_length=12, choices=DeploymentStatus.choices, default=DeploymentStatus.QUEUED)
    message = models.TextField(blank=True, help_text="Why it failed or ended, or what it waits for")
    # {"health", "reason", "order": [...], "services": {name: {desired, ready, health, reason, url}}, "addons": {...}}
    progress = models.JSONField(default=dict, blank=True)
    rollback_of = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="rolled_back_by",
        help_text="The deployment this one rolls back (the runtime's latest when the rollback was asked)",
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_by_name = models.CharField(max_length=150, blank=True)
    # No index of its own: the list indexes below lead with it (-created, -id).
    created = models.DateTimeField(auto_now_add=True)
    started = models.DateTimeField(null=True, blank=True, help_text="When a worker began applying it")
    finished = models.DateTimeField(null=True, blank=True)
    # Written by the worker while it watches the rollout; the reconciler re-dispatches when it goes stale.
    heartbeat = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveIntegerField(default=0, help_text="Times a worker picked it up")

    class Meta:
        ordering = ["-created", "-id"]
        indexes = [
            models.Index(fields=["-created", "-id"], name="deployment_newest"),
            models.Index(fields=["scope_organization", "-created", "-id"], name="deployment_org_newest"),
            models.Index(fields=["scope_project", "-created", "-id"], name="deployment_project_newest"),
        ]

    def __str__(self):
        return f"deployment #{self.pk} of {self.release} to {self.runtime}"

    def scope_ids(self) -> tuple[int, int]:
        return self.runtime.scope_organization_id, self.runtime.scope_project_id

    def get_absolute_url(self):
        return self.runtime.get_absolute_url() + f"#deployment-{self.pk}"

    @property
    def organization(self):
        return self.runtime.organization

    @property
    def active(self) -> bool:
        return self.status in ACTIVE_STATUSES

    def can_transition(self, to: str) -> bool:
        return to in ALLOWED_TRANSITIONS.get(self.status, frozenset())


class DeploymentTransition(models.Model):
    """One change of a deployment's status: from, to, when and why."""

    deployment = models.ForeignKey(Deployment, on_delete=models.CASCADE, related_name="transitions")
    from_status = models.CharField(max_length=12, choices=DeploymentStatus.choices, blank=True)
    to_status = models.CharField(max_length=12, choices=DeploymentStatus.choices)
    at = models.DateTimeField(auto_now_add=True)
    reason = models.TextField(blank=True)

    class Meta:
        ordering = ["deployment", "at", "id"]

    def __str__(self):
        return f"#{self.deployment_id}: {self.from_status or '-'} -> {self.to_status}"

    @property
    def organization(self):
        return self.deployment.organization


class AddonInstance(models.Model):
    """An addon of a runtime as it exists in the cluster (a Redis, a PostgreSQL...), with the
    credentials the console generated for it once: encrypted at rest, kept across deployments so
    a redeploy never changes a password under running data."""

    runtime = models.ForeignKey(Runtime, on_delete=models.CASCADE, related_name="addons")
    name = models.CharField(max_length=100)
    type = models.CharField(max_length=40)
    size = models.CharField(max_length=20, blank=True)
    # Fernet ciphertext of a JSON object (username, password, database...); never shown, never audited.
    credentials = models.TextField(blank=True, editable=False)
    created = models.DateTimeField(auto_now_add=True)
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["runtime", "name"]
        constraints = [models.UniqueConstraint(fields=["runtime", "name"], name="addon_name_per_runtime")]

    def __str__(self):
        return f"{self.runtime}/{self.name} ({self.type}:{self.size})"

    @property
    def organization(self):
        return self.runtime.organization


class EnvironmentVariable(models.Model):
    """An environment variable the console sets in every service, sidecar and job of one
    application's runtimes in one workspace, taken on the next deploy. It wins over dice.yml
    `envs`, discovery and addon variables; the platform's DICE_*/SELF_*/PORT* names are refused
    (scheduler.envvars.variable_name_problem). A secret one is encrypted at rest, never shown back,
    and reaches Kubernetes only as a Secret."""

    application = models.ForeignKey("projects.Application", on_delete=models.CASCADE, related_name="variables")
    workspace = models.ForeignKey("projects.Workspace", on_delete=models.CASCADE, related_name="variables")
    name = models.CharField(max_length=200)
    value = models.TextField(blank=True, help_text="Plain value, or Fernet ciphertext when secret")
    secret = models.BooleanField(default=False)
    created = models.DateTimeField(auto_now_add=True)
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["application", "workspace__kind", "name"]
        constraints = [
            models.UniqueConstraint(fields=["application", "workspace", "name"], name="variable_name_per_app_workspace")
        ]

    def __str__(self):
        return f"{self.application}:{self.workspace.kind}:{self.name}"

    @property
    def organization(self):
        return self.application.project.organization

    @property
    def key(self) -> str:
        """The name, under the attribute the audit log reads to treat credential-like names as secret."""
        return self.name

    def plain_value(self) -> str:
        return crypto.decrypt(self.value) if self.secret else self.value
