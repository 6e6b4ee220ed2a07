"""Models of the pipelines app: definitions, runs, task runs and their logs, project configs,
caches and branch rules."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.urls import reverse

from apps.pipelines.choices import Executor, RunStatus, TaskStatus, TriggerKind
from apps.projects.choices import WorkspaceKind
from apps.projects.models import InApplicationScope


class PipelineDefinition(models.Model):
    """A pipeline.yml kept for an application: its text, and where it came from (file and branch)."""

    application = models.ForeignKey("projects.Application", on_delete=models.CASCADE, related_name="pipelines")
    name = models.CharField(max_length=100, help_text="Name shown in lists; defaults to the file's `name`")
    path = models.CharField(max_length=300, default="pipeline.yml", help_text="File in the repository")
    branch = models.CharField(max_length=200, blank=True, help_text="Branch the file was read from")
    source = models.TextField(help_text="The pipeline.yml text")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created = models.DateTimeField(auto_now_add=True)
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["application", "name"]
        constraints = [
            models.UniqueConstraint(fields=["application", "name"], name="pipeline_name_per_application")
        ]

    def __str__(self):
        return f"{self.application}:{self.name}"

    def get_absolute_url(self):
        app = self.application
        return reverse("pipelines:list", args=[app.project.organization.slug, app.project.slug, app.slug])

    @property
    def organization(self):
        return self.application.project.organization

    @property
    def project(self):
        return self.application.project


class PipelineRun(InApplicationScope):
    """One execution of a pipeline: a snapshot of its text, the workspace it runs for, its params and
    what triggered it. Its tasks are TaskRuns."""

    application = models.ForeignKey("projects.Application", on_delete=models.CASCADE, related_name="pipeline_runs")
    definition = models.ForeignKey(
        PipelineDefinition, null=True, blank=True, on_delete=models.SET_NULL, related_name="runs"
    )
    name = models.CharField(max_length=100, blank=True)
    source = models.TextField(help_text="The pipeline.yml as it was when the run started")
    workspace = models.CharField(max_length=10, choices=WorkspaceKind.choices, default=WorkspaceKind.DEV)
    params = models.JSONField(default=dict, blank=True, help_text="Run params after defaults")
    trigger = models.CharField(max_length=10, choices=TriggerKind.choices, default=TriggerKind.MANUAL)
    trigger_payload = models.JSONField(default=dict, blank=True)
    status = models.CharField(max_length=10, choices=RunStatus.choices, default=RunStatus.QUEUED, db_index=True)
    reason = models.TextField(blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_by_name = models.CharField(max_length=150, blank=True)
    rerun_of = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL, related_name="reruns")
    # No index of its own: the list indexes below lead with it (-created, -id).
    created = models.DateTimeField(auto_now_add=True)
    started = models.DateTimeField(null=True, blank=True)
    finished = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created", "-id"]
        indexes = [
            models.Index(fields=["-created", "-id"], name="run_newest"),
            models.Index(fields=["application", "-created", "-id"], name="run_app_newest"),
            models.Index(fields=["scope_organization", "-created", "-id"], name="run_org_newest"),
            models.Index(fields=["scope_project", "-created", "-id"], name="run_project_newest"),
        ]

    def __str__(self):
        return f"run {self.pk} of {self.application}"

    def get_absolute_url(self):
        app = self.application
        return reverse("pipelines:run", args=[app.project.organization.slug, app.project.slug, app.slug, self.pk])

    @property
    def organization(self):
        return self.application.project.organization

    @property
    def project(self):
        return self.application.project

    @property
    def finished_state(self) -> bool:
        from apps.pipelines.choices import FINISHED_RUN

        return self.status in FINISHED_RUN


class PipelineRunTransition(models.Model):
    """One change of a run's status: from, to, why and when."""

    run = models.ForeignKey(PipelineRun, on_delete=models.CASCADE, related_name="transitions")
    from_status = models.CharField(max_length=10, blank=True)
    to_status = models.CharField(max_length=10)
    reason = models.TextField(blank=True)
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["run", "id"]

    def __str__(self):
        return f"{self.run_id}: {self.from_status or '-'} -> {self.to_status}"


class TaskRun(models.Model):
    """One action of a run: its status, attempts, resolved params, outputs and the job on the cluster."""

    run = models.ForeignKey(PipelineRun, on_delete=models.CASCADE, related_name="tasks")
    alias = models.CharField(max_length=100)
    type = models.CharField(max_length=100)
    stage = models.PositiveIntegerField(default=0)
    position = models.PositiveIntegerField(default=0, help_text="Index in the planned (topological) order")
    needs = models.JSONField(default=list, blank=True)
    executor = models.CharField(max_length=10, choices=Executor.choices, default=Executor.CLUSTER)
    status = models.CharField(max_length=10, choices=TaskStatus.choices, default=TaskStatus.QUEUED, db_index=True)
    attempt = models.PositiveIntegerField(default=1)
    max_attempts = models.PositiveIntegerField(default=1)
    not_before = models.DateTimeField(null=True, blank=True, help_text="A retry waits for its backoff until then")
    params = models.JSONField(default=dict, blank=True, help_text="Params as resolved (secrets masked)")
    outputs = models.JSONField(default=dict, blank=True)
    exit_code = models.IntegerField(null=True, blank=True)
    job_name = models.CharField(max_length=63, blank=True, help_text="The current attempt's job on the cluster")
    cluster = models.CharField(max_length=63, blank=True)
    reason = models.TextField(blank=True, help_text="Why it was skipped, failed or cancelled")
    upstream_blocked = models.BooleanField(default=False, help_text="Skipped because a dependency did not succeed")
    review = models.CharField(max_length=10, blank=True, help_text="manual-review: approved or rejected")
    reviewed_by = models.CharField(max_length=150, blank=True)
    last_line = models.PositiveIntegerField(default=0, help_text="Number of the last persisted log line")
    log_cursor = models.PositiveIntegerField(default=0, help_text="Lines of the current attempt's job already read")
    created = models.DateTimeField(auto_now_add=True)
    started = models.DateTimeField(null=True, blank=True)
    finished = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["run", "position"]
        constraints = [models.UniqueConstraint(fields=["run", "alias"], name="task_alias_per_run")]
        indexes = [models.Index(fields=["status", "executor"], name="taskrun_status_executor")]

    def __str__(self):
        return f"{self.run_id}/{self.alias}"

    def get_absolute_url(self):
        return self.run.get_absolute_url() + f"#task-{self.alias}"

    def get_log_url(self):
        app = self.run.application
        return reverse(
            "pipelines:task_log", args=[app.project.organization.slug, app.project.slug, app.slug, self.pk]
        )

    @property
    def organization(self):
        return self.run.application.project.organization

    @property
    def duration(self) -> float | None:
        if self.started and self.finished:
            return (self.finished - self.started).total_seconds()
        return None


class TaskRunTransition(models.Model):
    """One change of a task run's status (attempt included), with the reason."""

    task_run = models.ForeignKey(TaskRun, on_delete=models.CASCADE, related_name="transitions")
    from_status = models.CharField(max_length=10, blank=True)
    to_status = models.CharField(max_length=10)
    attempt = models.PositiveIntegerField(default=1)
    reason = models.TextField(blank=True)
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["task_run", "id"]

    def __str__(self):
        return f"{self.task_run_id}: {self.from_status or '-'} -> {self.to_status}"


class ProjectConfig(models.Model):
    """A value pipelines read as ${{ configs.<key> }}; secret ones are encrypted at rest, never shown
    back and masked in logs."""

    project = models.ForeignKey("projects.Project", on_delete=models.CASCADE, related_name="pipeline_configs")
    key = models.CharField(max_length=200)
    value = models.TextField(blank=True, help_text="Plain value, or Fernet ciphertext when secret")
    secret = models.BooleanField(default=False)
    created = models.DateTimeField(auto_now_add=True)
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["project", "key"]
        constraints = [models.UniqueConstraint(fields=["project", "key"], name="config_key_per_project")]

    def __str__(self):
        return f"{self.project}:{self.key}"

    @property
    def organization(self):
        return self.project.organization

    @classmethod
    def values_of(cls, project_id: int, keys) -> dict[str, str]:
        """The plain values of the project's configs among `keys` (for a deployment's ((KEY))
        envs: the deploy code hands them to the cluster, never to a page or the audit log)."""
        wanted = set(keys)
        if not wanted:
            return {}
        return {c.key: c.plain_value() for c in cls.objects.filter(project_id=project_id, key__in=wanted)}

    def plain_value(self) -> str:
        from apps.pipelines import secrets

        return secrets.decrypt(self.value) if self.secret else self.value


class CacheEntry(models.Model):
    """A directory kept between runs of a project's pipelines: a tarball under DATA_DIR per key."""

    project = models.ForeignKey("projects.Project", on_delete=models.CASCADE, related_name="pipeline_caches")
    key = models.CharField(max_length=300)
    archive = models.CharField(max_length=500, help_text="Path of the tarball")
    size = models.PositiveBigIntegerField(default=0)
    task_run = models.ForeignKey(TaskRun, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["project", "key"]
        constraints = [models.UniqueConstraint(fields=["project", "key"], name="cache_key_per_project")]

    def __str__(self):
        return f"{self.project}:{self.key}"

    @property
    def organization(self):
        return self.project.organization


class BranchRule(models.Model):
    """Which workspace a git branch (a glob: `*` stops at `/`, `**` does not) deploys to, for
    push-triggered runs."""

    project = models.ForeignKey("projects.Project", on_delete=models.CASCADE, related_name="branch_rules")
    pattern = models.CharField(max_length=200, help_text="glob pattern, e.g. main, feature/* or release/**")
    workspace = models.CharField(max_length=10, choices=WorkspaceKind.choices)
    priority = models.IntegerField(default=100, help_text="Lower is tried first")
    # Who made (or last changed) the rule: automatic runs into STAGING and PROD it selects are
    # checked against this user's right to deploy there when they run.
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["project", "priority", "id"]
        constraints = [models.UniqueConstraint(fields=["project", "pattern"], name="branch_rule_per_project")]

    def __str__(self):
        return f"{self.project}: {self.pattern} -> {self.workspace}"

    @property
    def organization(self):
        return self.project.organization


class WebhookDelivery(models.Model):
    """A webhook delivery already received (the provider's delivery id), so a replay within a day
    starts nothing. Rows older than a day are deleted as new deliveries arrive."""

    application = models.ForeignKey("projects.Application", on_delete=models.CASCADE, related_name="+")
    provider = models.CharField(max_length=10)
    delivery_id = models.CharField(max_length=100)
    received = models.DateTimeField(db_index=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["application", "provider", "delivery_id"],
                                               name="webhook_delivery_once")]

    def __str__(self):
        return f"{self.provider} delivery {self.delivery_id}"


class PreviewEnvironment(models.Model):
    """A merge (pull) request's preview: the DEV runtime `pr-<number>` its pipeline deployed, kept
    until the request is closed or merged, its branch is deleted, or it expires (the project
    config `preview_days`, default 7 days after its last deploy)."""

    application = models.ForeignKey("projects.Application", on_delete=models.CASCADE, related_name="previews")
    number = models.PositiveIntegerField(help_text="The merge request's number")
    branch = models.CharField(max_length=255, blank=True, help_text="Its source branch")
    title = models.CharField(max_length=255, blank=True)
    runtime = models.ForeignKey("deploy.Runtime", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    run = models.ForeignKey(PipelineRun, null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
                            help_text="The run that deployed it last")
    url = models.CharField(max_length=500, blank=True)
    created = models.DateTimeField(auto_now_add=True)
    updated = models.DateTimeField(auto_now=True)
    expires = models.DateTimeField(db_index=True)

    class Meta:
        ordering = ["-updated", "-id"]
        constraints = [models.UniqueConstraint(fields=["application", "number"], name="preview_per_merge_request")]

    def __str__(self):
        return f"preview pr-{self.number} of {self.application}"

    @property
    def runtime_name(self) -> str:
        return f"pr-{self.number}"

    @property
    def organization(self):
        return self.application.project.organization
