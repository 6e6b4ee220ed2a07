"""Models of the clusters app."""

from django.db import models

from apps.clusters.choices import ClusterKind

LOCAL_CLUSTER_NAME = "local"


class Cluster(models.Model):
    """A place where runtimes and pipeline steps run: the local machine or a Kubernetes cluster."""

    name = models.SlugField(max_length=63, unique=True)
    kind = models.CharField(max_length=20, choices=ClusterKind.choices, default=ClusterKind.KUBERNETES)
    description = models.CharField(max_length=200, blank=True)
    api_server = models.URLField(blank=True, help_text="Kubernetes API server URL")
    wildcard_domain = models.CharField(max_length=253, blank=True)
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return self.name

    @classmethod
    def local(cls) -> "Cluster":
        cluster, _ = cls.objects.get_or_create(
            name=LOCAL_CLUSTER_NAME,
            defaults={"kind": ClusterKind.LOCAL, "description": "Processes on the console's machine"},
        )
        return cluster
