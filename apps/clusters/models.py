"""Models of the clusters app: clusters, their per-workspace overcommit, nodes, usage and inspections."""

from django.core.exceptions import ValidationError
from django.core.validators import MinValueValidator
from django.db import models
from django.urls import reverse

from apps.clusters.choices import AuthMethod, CheckStatus, ClusterKind
from apps.projects.choices import WorkspaceKind

LOCAL_CLUSTER_NAME = "local"


class Cluster(models.Model):
    """A place where runtimes and pipeline steps run: the local machine or a Kubernetes cluster."""

    name = models.SlugField(max_length=63, unique=True)
    kind = models.CharField(max_length=20, choices=ClusterKind.choices, default=ClusterKind.KUBERNETES)
    description = models.CharField(max_length=200, blank=True)
    api_server = models.URLField(blank=True, help_text="Kubernetes API server URL")
    wildcard_domain = models.CharField(max_length=253, blank=True, help_text="e.g. apps.example.com")
    ingress_class = models.CharField(max_length=63, blank=True)
    storage_class = models.CharField(max_length=63, blank=True)
    allow_prod_mem_overcommit = models.BooleanField(
        default=False, help_text="Allow a memory ratio above 1 in PROD (pods may be OOM-killed)"
    )
    allow_shared_tenancy = models.BooleanField(
        default=False,
        help_text="Local cluster without a sandbox on this machine: run code of more than one organization anyway "
                  "(each can then read the others' files and the console's). Staff only.",
    )
    auth_method = models.CharField(max_length=20, choices=AuthMethod.choices, default=AuthMethod.NONE)
    context = models.CharField(max_length=253, blank=True, help_text="The kubeconfig context used")
    # Fernet ciphertext of a kubeconfig reduced to one context; never shown, never in audit records.
    credentials = models.TextField(blank=True, editable=False)
    credentials_fingerprint = models.CharField(max_length=40, blank=True)
    check_status = models.CharField(max_length=10, choices=CheckStatus.choices, default=CheckStatus.UNKNOWN)
    check_report = models.JSONField(default=dict, blank=True)
    checked_at = models.DateTimeField(null=True, blank=True)
    server_version = models.CharField(max_length=64, blank=True)
    # CRD names of the operators found by the last check (what the renderer may use).
    operators = models.JSONField(default=list, blank=True)
    synced_at = models.DateTimeField(null=True, blank=True)
    sync_error = models.TextField(blank=True)
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return self.name

    def get_absolute_url(self):
        return reverse("clusters:cluster", args=[self.name])

    @property
    def is_local(self) -> bool:
        return self.name == LOCAL_CLUSTER_NAME

    @property
    def has_credentials(self) -> bool:
        return bool(self.credentials)

    @classmethod
    def local(cls) -> "Cluster":
        cluster, _ = cls.objects.get_or_create(
            name=LOCAL_CLUSTER_NAME,
            defaults={"kind": ClusterKind.LOCAL, "description": "Processes on the console's machine"},
        )
        return cluster


class WorkspaceOvercommit(models.Model):
    """How far a cluster lets one workspace's requests fall below its limits (SPEC.md, "Overcommit")."""

    cluster = models.ForeignKey(Cluster, on_delete=models.CASCADE, related_name="overcommits")
    workspace = models.CharField(max_length=10, choices=WorkspaceKind.choices)
    cpu_ratio = models.DecimalField(max_digits=5, decimal_places=2, default=1, validators=[MinValueValidator(1)])
    mem_ratio = models.DecimalField(max_digits=5, decimal_places=2, default=1, validators=[MinValueValidator(1)])

    class Meta:
        ordering = ["cluster", "workspace"]
        constraints = [models.UniqueConstraint(fields=["cluster", "workspace"], name="one_overcommit_per_workspace")]

    def __str__(self):
        return f"{self.cluster}:{self.workspace} cpu x{self.cpu_ratio} mem x{self.mem_ratio}"

    def clean(self):
        if (
            self.workspace == WorkspaceKind.PROD
            and self.mem_ratio is not None
            and self.mem_ratio > 1
            and not self.cluster.allow_prod_mem_overcommit
        ):
            raise ValidationError({
                "mem_ratio": "memory overcommit in PROD is refused unless the cluster allows it "
                "(allow_prod_mem_overcommit)"
            })


class Node(models.Model):
    """A machine of a cluster as the last sync saw it. Quantities: CPU in millicores, memory in bytes."""

    cluster = models.ForeignKey(Cluster, on_delete=models.CASCADE, related_name="nodes")
    name = models.CharField(max_length=253)
    capacity = models.JSONField(default=dict, blank=True)
    allocatable = models.JSONField(default=dict, blank=True)
    # Sum of the requests and limits of the pods placed on the node (not finished).
    requests = models.JSONField(default=dict, blank=True)
    limits = models.JSONField(default=dict, blank=True)
    labels = models.JSONField(default=dict, blank=True)
    conditions = models.JSONField(default=list, blank=True)
    ready = models.BooleanField(default=False)
    unschedulable = models.BooleanField(default=False)
    pod_count = models.PositiveIntegerField(default=0)
    internal_ip = models.CharField(max_length=64, blank=True)
    kubelet_version = models.CharField(max_length=64, blank=True)
    synced_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["cluster", "name"]
        constraints = [models.UniqueConstraint(fields=["cluster", "name"], name="node_name_per_cluster")]

    def __str__(self):
        return f"{self.cluster}/{self.name}"

    def get_absolute_url(self):
        return reverse("clusters:cluster", args=[self.cluster.name]) + f"#node-{self.name}"

    @property
    def dice_labels(self) -> list[str]:
        return sorted(k for k, v in self.labels.items() if k.startswith("dice/") and v == "true")


class NamespaceUsage(models.Model):
    """What one namespace asked of a cluster at the last sync: its pods' requests and limits, its quota,
    and the runtime it belongs to (from the pods' dice.io/* labels)."""

    cluster = models.ForeignKey(Cluster, on_delete=models.CASCADE, related_name="namespace_usage")
    namespace = models.CharField(max_length=253)
    org = models.CharField(max_length=63, blank=True, db_index=True)
    project = models.CharField(max_length=63, blank=True, db_index=True)
    app = models.CharField(max_length=63, blank=True)
    workspace = models.CharField(max_length=10, blank=True)
    runtime = models.CharField(max_length=63, blank=True)
    pods = models.PositiveIntegerField(default=0)
    cpu_requests = models.BigIntegerField(default=0, help_text="millicores")
    cpu_limits = models.BigIntegerField(default=0, help_text="millicores")
    mem_requests = models.BigIntegerField(default=0, help_text="bytes")
    mem_limits = models.BigIntegerField(default=0, help_text="bytes")
    quota_hard = models.JSONField(default=dict, blank=True)
    quota_used = models.JSONField(default=dict, blank=True)
    synced_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["cluster", "namespace"]
        constraints = [
            models.UniqueConstraint(fields=["cluster", "namespace"], name="namespace_usage_per_cluster")
        ]

    def __str__(self):
        return f"{self.cluster}/{self.namespace}"


class InspectionReport(models.Model):
    """One inspection of a cluster: what is broken or about to break, each finding with a severity."""

    cluster = models.ForeignKey(Cluster, on_delete=models.CASCADE, related_name="inspections")
    created = models.DateTimeField(auto_now_add=True, db_index=True)
    # [{"severity", "check", "object", "namespace", "org", "message", "link"}]
    findings = models.JSONField(default=list, blank=True)
    counts = models.JSONField(default=dict, blank=True)
    error = models.TextField(blank=True)

    class Meta:
        ordering = ["-created", "-id"]

    def __str__(self):
        return f"inspection of {self.cluster} at {self.created:%Y-%m-%d %H:%M}"

    def get_absolute_url(self):
        return reverse("clusters:inspection", args=[self.cluster.name])
