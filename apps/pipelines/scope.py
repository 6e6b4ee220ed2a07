"""The tenant scope of the pipeline models, registered with apps.projects.scope at start-up."""

from __future__ import annotations

from django.db.models import QuerySet

from apps.pipelines.models import (
    BranchRule,
    CacheEntry,
    PipelineDefinition,
    PipelineRun,
    ProjectConfig,
    TaskRun,
)
from apps.projects import scope


def definitions_for(user) -> QuerySet[PipelineDefinition]:
    return PipelineDefinition.objects.filter(application__in=scope.applications_for(user))


def runs_for(user) -> QuerySet[PipelineRun]:
    """Runs of the applications the user can see (filtered on the organization and project kept on
    each run: scope.Reach)."""
    return PipelineRun.objects.filter(scope.reach(user).q(organization="scope_organization", project="scope_project"))


def task_runs_for(user) -> QuerySet[TaskRun]:
    return TaskRun.objects.filter(scope.reach(user).q(
        organization="run__scope_organization", project="run__scope_project", application="run__application"))


def configs_for(user) -> QuerySet[ProjectConfig]:
    return ProjectConfig.objects.filter(project__in=scope.projects_for(user))


def caches_for(user) -> QuerySet[CacheEntry]:
    return CacheEntry.objects.filter(project__in=scope.projects_for(user))


def branch_rules_for(user) -> QuerySet[BranchRule]:
    return BranchRule.objects.filter(project__in=scope.projects_for(user))


def register() -> None:
    scope.register(PipelineDefinition, definitions_for)
    scope.register(PipelineRun, runs_for)
    scope.register(TaskRun, task_runs_for)
    scope.register(ProjectConfig, configs_for)
    scope.register(CacheEntry, caches_for)
    scope.register(BranchRule, branch_rules_for)
