"""Choices of the tenancy models."""

from django.db import models


class WorkspaceKind(models.TextChoices):
    # Developers' own environment: deploy freely.
    DEV = "DEV", "Development"
    # Shared test environment.
    TEST = "TEST", "Test"
    # Pre-production, mirrors PROD.
    STAGING = "STAGING", "Staging"
    # Production: only leads, owners and ops deploy here.
    PROD = "PROD", "Production"


# dice.yml's `environments` keys for each workspace.
WORKSPACE_ENVIRONMENT = {
    WorkspaceKind.DEV: "development",
    WorkspaceKind.TEST: "test",
    WorkspaceKind.STAGING: "staging",
    WorkspaceKind.PROD: "production",
}


class Role(models.TextChoices):
    # Full control of the scope, including deleting it and managing members.
    OWNER = "owner", "Owner"
    # Runs the scope day to day: members, settings, deploys everywhere.
    LEAD = "lead", "Manager/Lead"
    # Writes and ships code: changes applications, deploys to DEV and TEST.
    DEVELOPER = "developer", "Developer"
    # Operates the platform: deploys to every workspace, manages clusters.
    OPS = "ops", "Ops"
    # Reads only.
    GUEST = "guest", "Guest"


class ScopeLevel(models.TextChoices):
    ORGANIZATION = "organization", "Organization"
    PROJECT = "project", "Project"
    APPLICATION = "application", "Application"
