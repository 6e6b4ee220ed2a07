"""Choices of the clusters app."""

from django.db import models

from scheduler import registry


def cluster_kinds() -> list[tuple[str, str]]:
    """Every kind the engine has a driver for (scheduler.registry): a new kind needs no change here."""
    return registry.choices()


class ClusterKind(models.TextChoices):
    """The kinds the console itself names (the local cluster it makes, the clusters it registers)."""

    # Processes on the console's own machine (the embedded default).
    LOCAL = "local", "Local processes"
    # A Kubernetes cluster reached through its API server.
    KUBERNETES = "kubernetes", "Kubernetes"


class AuthMethod(models.TextChoices):
    # No credentials (the local cluster).
    NONE = "none", "None"
    # An uploaded kubeconfig, reduced to the chosen context.
    KUBECONFIG = "kubeconfig", "Kubeconfig"
    # API server URL + CA certificate + bearer token (a ServiceAccount's, typically).
    TOKEN = "token", "Server, CA and token"


class CheckStatus(models.TextChoices):
    # Never checked.
    UNKNOWN = "unknown", "Not checked"
    # Reachable, and every permission the console needs is granted.
    OK = "ok", "OK"
    # Reachable, but some permissions are missing: some features will fail.
    WARNING = "warning", "Missing permissions"
    # The API server could not be reached or refused the credentials.
    ERROR = "error", "Unreachable"


class Severity(models.TextChoices):
    # Something is broken now (a node not ready, a certificate expired).
    CRITICAL = "critical", "Critical"
    # Something will break soon or needs a look (crash loops, expiring certificates).
    WARNING = "warning", "Warning"
    # Worth knowing; nothing to do yet.
    INFO = "info", "Info"
    # Could not be determined (e.g. volume usage where kubelet stats are unavailable).
    UNKNOWN = "unknown", "Unknown"


class NodeRole(models.TextChoices):
    """The `dice/` node labels the scheduler honours (value "true")."""

    STATELESS = "dice/stateless-service", "Stateless services"
    STATEFUL = "dice/stateful-service", "Stateful services (addons)"
    JOB = "dice/job", "Jobs and pipeline steps"
    WORKSPACE_DEV = "dice/workspace-dev", "Workspace DEV"
    WORKSPACE_TEST = "dice/workspace-test", "Workspace TEST"
    WORKSPACE_STAGING = "dice/workspace-staging", "Workspace STAGING"
    WORKSPACE_PROD = "dice/workspace-prod", "Workspace PROD"
