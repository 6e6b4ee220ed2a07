"""Filtersets of the pipeline models, shared by the pages and the API lists."""

import django_filters

from apps.pipelines.models import BranchRule, PipelineDefinition, PipelineRun, ProjectConfig, TaskRun
from apps.projects.filtersets import ProjectFilter, SearchFilterSet


class PipelineDefinitionFilterSet(SearchFilterSet):
    search_fields = ("name", "path", "branch")
    application = django_filters.NumberFilter(field_name="application_id")

    class Meta:
        model = PipelineDefinition
        fields = ["application", "name"]


class PipelineRunFilterSet(SearchFilterSet):
    search_fields = ("name", "created_by_name")
    project = ProjectFilter("application__project")
    application = django_filters.NumberFilter(field_name="application_id")
    definition = django_filters.NumberFilter(field_name="definition_id")

    class Meta:
        model = PipelineRun
        fields = ["project", "application", "definition", "status", "workspace", "trigger"]


class TaskRunFilterSet(SearchFilterSet):
    search_fields = ("alias", "type")
    run = django_filters.NumberFilter(field_name="run_id")

    class Meta:
        model = TaskRun
        fields = ["run", "status", "alias"]


class ProjectConfigFilterSet(SearchFilterSet):
    search_fields = ("key",)
    project = ProjectFilter("project")

    class Meta:
        model = ProjectConfig
        fields = ["project", "key", "secret"]


class BranchRuleFilterSet(SearchFilterSet):
    search_fields = ("pattern",)
    project = ProjectFilter("project")

    class Meta:
        model = BranchRule
        fields = ["project", "workspace"]
