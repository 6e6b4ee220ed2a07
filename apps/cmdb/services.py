"""The one place that writes the CMDB. The cluster sync and the deploy code report items here;
a change history entry is written only when something actually changed."""

from __future__ import annotations

import datetime
from collections.abc import Iterable
from typing import Any

from django.db import transaction
from django.utils import timezone

from apps.cmdb.choices import ChangeAction, ItemKind, RelationKind
from apps.cmdb.models import Change, ConfigurationItem, Relation
from apps.projects.models import Organization
from scheduler.base import dns_label

_MISSING = object()

# Attribute keys the deploy code reports on runtimes, services and addons (apps.deploy.cmdb_feed):
# the cluster sync keeps them when it records the same items, so neither erases the other.
DEPLOY_KEYS = ("release", "release_id", "deployment", "deployment_status", "depends_on", "plan", "image", "type")


# ---- keys: one spelling for every reporter ------------------------------------------------------


def node_key(cluster: str, node: str) -> str:
    return f"{cluster}/{node}"


def namespace_key(cluster: str, namespace: str) -> str:
    return f"{cluster}/{namespace}"


def runtime_key(org: str, project: str, app: str, workspace: str, name: str) -> str:
    """The same key from dice.io/* labels and from the deploy code's RuntimeRef."""
    return "/".join([dns_label(org), dns_label(project), dns_label(app), workspace.lower(), dns_label(name)])


def child_key(runtime: str, name: str) -> str:
    """A service or addon instance of a runtime."""
    return f"{runtime}/{name}"


# ---- diffs --------------------------------------------------------------------------------------


def _flatten(data: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(data, dict) and data:
        out: dict[str, Any] = {}
        for key, value in data.items():
            out.update(_flatten(value, f"{prefix}.{key}" if prefix else str(key)))
        return out
    return {prefix: data} if prefix else {}


def diff(old: dict, new: dict) -> dict[str, dict[str, Any]]:
    """{"a.b": {"old": x, "new": y}} for every leaf that differs (lists compare whole)."""
    a, b = _flatten(old or {}), _flatten(new or {})
    out = {}
    for key in sorted(set(a) | set(b)):
        va, vb = a.get(key, _MISSING), b.get(key, _MISSING)
        if va != vb:
            out[key] = {"old": None if va is _MISSING else va, "new": None if vb is _MISSING else vb}
    return out


# ---- organizations from labels -----------------------------------------------------------------


class OrgIndex:
    """dice.io/org label value -> Organization (the label is the DNS-label form of the slug)."""

    def __init__(self):
        self._by_label = {dns_label(o.slug): o for o in Organization.objects.all()}

    def get(self, label: str) -> Organization | None:
        return self._by_label.get(label) if label else None


# ---- recording ----------------------------------------------------------------------------------


def _target(ref) -> ConfigurationItem | None:
    if isinstance(ref, ConfigurationItem):
        return ref
    kind, key = ref
    return ConfigurationItem.objects.filter(kind=kind, key=key).first()


@transaction.atomic
def record_item(
    kind: str,
    key: str,
    attributes: dict,
    source: str,
    *,
    name: str = "",
    cluster=None,
    organization: Organization | None = None,
    org_slug: str = "",
    relations: Iterable[tuple[str, Any]] | None = None,
    keep: Iterable[str] | bool = (),
    keep_relations: Iterable[str] = (),
) -> ConfigurationItem:
    """Create or update one item; write a Change only when attributes (or presence) changed.

    `relations`: (relation kind, target) pairs, the target an item or a (kind, key) pair; when
    given they replace the item's outgoing relations (an unknown target is skipped), except
    those of the kinds in `keep_relations` (another reporter's). `keep`: attribute keys another
    reporter owns, kept from the stored item when `attributes` lacks them (True: every key).
    """
    if kind not in ItemKind.values:
        raise ValueError(f"unknown configuration item kind {kind!r}")
    now = timezone.now()
    if organization is not None and not org_slug:
        org_slug = dns_label(organization.slug)
    item = ConfigurationItem.objects.select_for_update().filter(kind=kind, key=key).first()
    if item is None:
        item = ConfigurationItem.objects.create(
            kind=kind, key=key, name=name or key.rsplit("/", 1)[-1], cluster=cluster,
            organization=organization, org_slug=org_slug, attributes=attributes, source=source,
        )
        Change.objects.create(item=item, source=source, action=ChangeAction.CREATED, diff=diff({}, attributes))
    else:
        if keep:
            stored = item.attributes or {}
            kept = stored if keep is True else {k: stored[k] for k in keep if k in stored}
            attributes = {**kept, **attributes}
        changes = diff(item.attributes, attributes)
        action = ChangeAction.RESTORED if not item.present else (ChangeAction.UPDATED if changes else None)
        if action:
            Change.objects.create(item=item, source=source, action=action, diff=changes)
            item.changed = now
        item.attributes = attributes
        item.present = True
        item.source = source
        item.last_seen = now
        item.name = name or item.name
        if cluster is not None:
            item.cluster = cluster
        if organization is not None or org_slug:
            item.organization, item.org_slug = organization, org_slug
        item.save()
    if relations is not None:
        set_relations(item, relations, keep=keep_relations)
    return item


def set_relations(item: ConfigurationItem, relations: Iterable[tuple[str, Any]], keep: Iterable[str] = ()) -> None:
    wanted = set()
    for rel_kind, ref in relations:
        if rel_kind not in RelationKind.values:
            raise ValueError(f"unknown relation kind {rel_kind!r}")
        target = _target(ref)
        if target is not None and target.pk != item.pk:
            wanted.add((rel_kind, target.pk))
    existing = {(r.kind, r.target_id): r.pk for r in item.relations_out.exclude(kind__in=list(keep))}
    Relation.objects.filter(pk__in=[pk for k, pk in existing.items() if k not in wanted]).delete()
    Relation.objects.bulk_create(
        [Relation(source=item, kind=k, target_id=t) for k, t in wanted if (k, t) not in existing]
    )


@transaction.atomic
def mark_absent(kind: str, present_keys: Iterable[str], source: str, *, cluster=None) -> int:
    """Items of `kind` (in `cluster`) the source no longer reports: mark them removed, once."""
    qs = ConfigurationItem.objects.filter(kind=kind, present=True).exclude(key__in=list(present_keys))
    if cluster is not None:
        qs = qs.filter(cluster=cluster)
    gone = list(qs)
    for item in gone:
        Change.objects.create(item=item, source=source, action=ChangeAction.REMOVED, diff={})
        item.relations_out.all().delete()
    qs.model.objects.filter(pk__in=[i.pk for i in gone]).update(present=False, changed=timezone.now())
    return len(gone)


# ---- reports ------------------------------------------------------------------------------------


def running_on(items, node: ConfigurationItem):
    """Items (of the given, already scoped queryset) that run on `node`."""
    return items.filter(relations_out__kind=RelationKind.RUNS_ON, relations_out__target=node).distinct()


def using_addon(items, addon: ConfigurationItem):
    return items.filter(relations_out__kind=RelationKind.USES_ADDON, relations_out__target=addon).distinct()


def changes_since(changes, hours: float = 24):
    return changes.filter(created__gte=timezone.now() - datetime.timedelta(hours=hours))
