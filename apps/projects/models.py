"""Tenancy models: who owns what, who may do what, and what happened."""

import hashlib

from django.conf import settings
from django.core.validators import MinValueValidator
from django.db import models
from django.db.models import Q
from django.urls import reverse

from apps.projects.choices import Role, ScopeLevel, WorkspaceKind


class Organization(models.Model):
    """A company or a department: the outermost tenant boundary. Nothing crosses it."""

    slug = models.SlugField(max_length=63, unique=True)
    name = models.CharField(max_length=100)
    description = models.TextField(blank=True)
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["slug"]

    def __str__(self):
        return self.slug

    def get_absolute_url(self):
        return reverse("projects:organization", args=[self.slug])

    @property
    def organization(self):
        return self


class Project(models.Model):
    """A team's unit of work inside an organization: its applications share workspaces and quotas."""

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="projects")
    slug = models.SlugField(max_length=63)
    name = models.CharField(max_length=100)
    description = models.TextField(blank=True)
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["organization__slug", "slug"]
        constraints = [models.UniqueConstraint(fields=["organization", "slug"], name="project_slug_per_org")]

    def __str__(self):
        return f"{self.organization.slug}/{self.slug}"

    def get_absolute_url(self):
        return reverse("projects:project", args=[self.organization.slug, self.slug])


class Application(models.Model):
    """A deployable thing described by one dice.yml (usually one repository)."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="applications")
    slug = models.SlugField(max_length=63)
    name = models.CharField(max_length=100)
    description = models.TextField(blank=True)
    repo_url = models.CharField(max_length=500, blank=True, help_text="Git repository URL")
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["project__organization__slug", "project__slug", "slug"]
        constraints = [models.UniqueConstraint(fields=["project", "slug"], name="application_slug_per_project")]

    def __str__(self):
        return f"{self.project}/{self.slug}"

    def get_absolute_url(self):
        p = self.project
        return reverse("projects:application", args=[p.organization.slug, p.slug, self.slug])

    @property
    def organization(self):
        return self.project.organization


class Workspace(models.Model):
    """One of a project's four environments (DEV, TEST, STAGING, PROD), bound to a cluster with quotas."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="workspaces")
    kind = models.CharField(max_length=10, choices=WorkspaceKind.choices)
    cluster = models.ForeignKey("clusters.Cluster", on_delete=models.PROTECT, related_name="workspaces")
    data_clusters = models.ManyToManyField(
        "clusters.Cluster", blank=True, related_name="data_workspaces",
        help_text="Data clusters (kind spark or flink) the workspace's Spark and Flink jobs run on, "
                  "at most one of each kind",
    )
    cpu_quota = models.DecimalField(
        max_digits=8, decimal_places=2, default=8, validators=[MinValueValidator(0)], help_text="CPU cores"
    )
    mem_quota = models.PositiveIntegerField(default=16384, help_text="Memory in MiB")
    protected = models.BooleanField(
        default=False,
        help_text="Pipeline deploy steps into this workspace wait for a review by someone allowed to deploy here",
    )

    class Meta:
        ordering = ["project", "kind"]
        constraints = [models.UniqueConstraint(fields=["project", "kind"], name="one_workspace_per_kind")]

    def __str__(self):
        return f"{self.project}:{self.kind}"

    @property
    def organization(self):
        return self.project.organization


class Member(models.Model):
    """A user's role in an organization, or in one project or application of it."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships")
    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="members")
    project = models.ForeignKey(Project, null=True, blank=True, on_delete=models.CASCADE, related_name="members")
    application = models.ForeignKey(
        Application, null=True, blank=True, on_delete=models.CASCADE, related_name="members"
    )
    role = models.CharField(max_length=20, choices=Role.choices)
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["organization", "user__username"]
        constraints = [
            models.UniqueConstraint(
                fields=["user", "organization"],
                condition=Q(project__isnull=True, application__isnull=True),
                name="one_org_role_per_user",
            ),
            models.UniqueConstraint(
                fields=["user", "project"],
                condition=Q(project__isnull=False, application__isnull=True),
                name="one_project_role_per_user",
            ),
            models.UniqueConstraint(
                fields=["user", "application"],
                condition=Q(application__isnull=False),
                name="one_application_role_per_user",
            ),
        ]

    def __str__(self):
        return f"{self.user} {self.role} of {self.target}"

    @property
    def level(self) -> str:
        if self.application_id:
            return ScopeLevel.APPLICATION
        if self.project_id:
            return ScopeLevel.PROJECT
        return ScopeLevel.ORGANIZATION

    @property
    def target(self):
        return self.application or self.project or self.organization


class ApiToken(models.Model):
    """A credential for the API and the CLI; only a hash is stored, the key is shown once."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens")
    name = models.CharField(max_length=100)
    prefix = models.CharField(max_length=16, help_text="First characters, to recognise a token")
    digest = models.CharField(max_length=64, unique=True)
    created = models.DateTimeField(auto_now_add=True)
    last_used = models.DateTimeField(null=True, blank=True)
    expires = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created"]

    def __str__(self):
        return f"{self.name} ({self.prefix}…)"

    @staticmethod
    def hash_key(key: str) -> str:
        return hashlib.sha256(key.encode()).hexdigest()


class Invitation(models.Model):
    """A person asked to join: their account exists (inactive, no password) until they open the
    one-time link and choose a password; then it is active, with the role given (if any)."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="invitations")
    organization = models.ForeignKey(
        Organization, null=True, blank=True, on_delete=models.CASCADE, related_name="invitations"
    )
    role = models.CharField(max_length=20, choices=Role.choices, default=Role.GUEST)
    digest = models.CharField(max_length=64, unique=True, help_text="sha256 of the link's key")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created = models.DateTimeField(auto_now_add=True)
    expires = models.DateTimeField()
    accepted = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created", "-id"]

    def __str__(self):
        return f"invitation of {self.user}" + (f" to {self.organization}" if self.organization_id else "")


class AuditEvent(models.Model):
    """One state change: who did what to which object, when, with the values before and after."""

    # No index of its own: the list indexes below lead with it (-created, -id).
    created = models.DateTimeField(auto_now_add=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    actor_name = models.CharField(max_length=150, blank=True)
    organization = models.ForeignKey(
        Organization, null=True, blank=True, on_delete=models.SET_NULL, related_name="audit_events"
    )
    # Where in the organization the object lives: scopes who may read the event (a project's
    # members see its events, an application's members see that application's).
    project = models.ForeignKey(Project, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    application = models.ForeignKey(
        Application, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    action = models.CharField(max_length=40)
    object_type = models.CharField(max_length=60)
    object_id = models.CharField(max_length=64, blank=True)
    object_repr = models.CharField(max_length=200, blank=True)
    before = models.JSONField(null=True, blank=True)
    after = models.JSONField(null=True, blank=True)

    class Meta:
        ordering = ["-created", "-id"]
        # The list's order, alone (platform admins) and after each column the scope filters on.
        indexes = [
            models.Index(fields=["-created", "-id"], name="audit_newest"),
            models.Index(fields=["organization", "-created", "-id"], name="audit_org_newest"),
            models.Index(fields=["project", "-created", "-id"], name="audit_project_newest"),
            models.Index(fields=["application", "-created", "-id"], name="audit_app_newest"),
            models.Index(fields=["actor", "-created", "-id"], name="audit_actor_newest"),
        ]

    def __str__(self):
        return f"{self.created:%Y-%m-%d %H:%M:%S} {self.actor_name} {self.action} {self.object_type} {self.object_repr}"


class InApplicationScope(models.Model):
    """The organization and project of a row's application, kept on the row itself (they never
    change: an application stays in its project). A big table's tenant scope filters on them with
    literal ids and reads indexes that start with them (apps.projects.scope.Reach); through the
    application's join, no index could serve the filter and the order together."""

    scope_organization = models.ForeignKey(
        Organization, on_delete=models.CASCADE, related_name="+", db_index=False, editable=False)
    scope_project = models.ForeignKey(
        Project, on_delete=models.CASCADE, related_name="+", db_index=False, editable=False)

    class Meta:
        abstract = True

    def save(self, *args, **kwargs):
        if self._state.adding and (self.scope_organization_id is None or self.scope_project_id is None):
            self.scope_organization_id, self.scope_project_id = self.scope_ids()
        super().save(*args, **kwargs)

    def scope_ids(self) -> tuple[int, int]:
        """(organization id, project id) of the row's application."""
        app = self.application
        if Application.project.is_cached(app):
            return app.project.organization_id, app.project_id
        return Project.objects.filter(pk=app.project_id).values_list("organization_id", "pk").get()
