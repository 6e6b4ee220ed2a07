"""Choices of the clusters app."""

from django.db import models


class ClusterKind(models.TextChoices):
    # Processes on the console's own machine (the embedded default).
    LOCAL = "local", "Local processes"
    # A Kubernetes cluster reached through its API server.
    KUBERNETES = "kubernetes", "Kubernetes"
