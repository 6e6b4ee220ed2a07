"""Choices of the CMDB."""

from django.db import models


class ItemKind(models.TextChoices):
    # A registered cluster (shared by every organization).
    CLUSTER = "cluster", "Cluster"
    # A machine of a cluster.
    NODE = "node", "Node"
    # A Kubernetes namespace; tied to an organization when it holds one of its runtimes.
    NAMESPACE = "namespace", "Namespace"
    # One running instance of an application (app x workspace x name).
    RUNTIME = "runtime", "Runtime"
    # One service of a runtime (a Deployment or StatefulSet).
    SERVICE = "service", "Service"
    # An addon instance (database, cache, queue) used by runtimes.
    ADDON = "addon", "Addon instance"
    # An immutable release of an application.
    RELEASE = "release", "Release"
    # A machine outside Kubernetes (the console's own host for the local cluster).
    HOST = "host", "Host"


# Kinds every authenticated user may see; the others belong to one organization.
SHARED_KINDS = (ItemKind.CLUSTER, ItemKind.NODE, ItemKind.HOST, ItemKind.NAMESPACE)


class RelationKind(models.TextChoices):
    # Placement: a runtime, service or addon has pods on a node or host.
    RUNS_ON = "runs-on", "runs on"
    # A runtime or service needs another one to work.
    DEPENDS_ON = "depends-on", "depends on"
    # Containment: node -> cluster, namespace -> cluster, service -> runtime, runtime -> namespace.
    BELONGS_TO = "belongs-to", "belongs to"
    # A runtime uses an addon instance.
    USES_ADDON = "uses-addon", "uses addon"


class ChangeAction(models.TextChoices):
    # First time the item was recorded.
    CREATED = "created", "Created"
    # One or more attributes changed.
    UPDATED = "updated", "Updated"
    # The source no longer reports the item.
    REMOVED = "removed", "Removed"
    # A removed item was reported again.
    RESTORED = "restored", "Restored"
