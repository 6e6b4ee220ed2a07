"""Names, labels and metadata every rendered Kubernetes object shares."""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

from scheduler.base import Capabilities, ExecutorError, RuntimeRef, dns_label

MANAGED_BY = "dice"
FIELD_MANAGER = "dice-console"
RELEASE_LABEL = "dice.io/release"
SERVICE_LABEL = "dice.io/service"
ADDON_LABEL = "dice.io/addon"
JOB_LABEL = "dice.io/job"
RUN_JOB_LABEL = "dice.io/run-job"  # Jobs made by run_job: never pruned by apply
RESTART_ANNOTATION = "dice.io/restarted-at"

# What a Kubernetes cluster can do (the capability report adds what depends on its operators).
CAPABILITIES = Capabilities(
    images=True, namespaces=True, credentials=True, node_labels=True, workloads=True, inspection=True,
    broadcast=True, ingress=True, operators=True, node_selectors=True, drift=True, metrics=True,
    engines=("flink",),  # FlinkDeployment / FlinkSessionJob where the Flink operator's CRDs are installed
)

_LABEL_VALUE = re.compile(r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?")
_LABEL_NAME = re.compile(r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]")
_DNS_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")


class RenderError(ExecutorError):
    """The group cannot be turned into manifests (no image, a missing operator, a bad domain...)."""


def label_value(text: str) -> str:
    """A valid label value made from text (at most 63 characters, alphanumeric ends)."""
    value = re.sub(r"[^A-Za-z0-9_.-]+", "-", text)[:63]
    return value.strip("-_.")


def is_label_key(key: str) -> bool:
    prefix, _, name = key.rpartition("/")
    if prefix and (len(prefix) > 253 or not _DNS_SUBDOMAIN.fullmatch(prefix)):
        return False
    return len(name) <= 63 and bool(_LABEL_NAME.fullmatch(name))


def is_label_value(value: str) -> bool:
    return len(value) <= 63 and bool(_LABEL_VALUE.fullmatch(value))


def split_labels(given: dict[str, str]) -> tuple[dict[str, str], dict[str, str]]:
    """User labels that are valid Kubernetes labels, and the rest (kept as annotations)."""
    labels, annotations = {}, {}
    for key, value in given.items():
        if is_label_key(key) and is_label_value(value):
            labels[key] = value
        elif is_label_key(key):
            annotations[key] = value
    return labels, annotations


def short_hash(data: Any, length: int = 8) -> str:
    text = json.dumps(data, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:length]


def object_name(*parts: str, limit: int = 63) -> str:
    """A DNS-label name from parts; too long names are cut and get a hash suffix to stay unique."""
    full = "-".join(p for p in parts if p)
    name = dns_label(full, 255)
    if len(name) <= limit:
        return name
    return f"{name[: limit - 9].rstrip('-')}-{short_hash(full)}"


def common_labels(
    runtime: RuntimeRef, release: str, *, name: str, component: str
) -> dict[str, str]:
    """The recommended app.kubernetes.io/* labels plus the runtime's dice.io/* labels."""
    labels = {
        "app.kubernetes.io/name": label_value(name) or "x",
        "app.kubernetes.io/instance": label_value(f"{name}-{runtime.namespace}"),
        "app.kubernetes.io/component": component,
        "app.kubernetes.io/part-of": label_value(runtime.app) or "x",
        "app.kubernetes.io/managed-by": MANAGED_BY,
        **runtime.labels(),
    }
    release_value = label_value(release)
    if release_value:
        labels["app.kubernetes.io/version"] = release_value
        labels[RELEASE_LABEL] = release_value
    return labels


def manifest(
    api_version: str,
    kind: str,
    name: str,
    namespace: str | None,
    labels: dict[str, str],
    annotations: dict[str, str] | None = None,
    **body: Any,
) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": name}
    if namespace:
        metadata["namespace"] = namespace
    metadata["labels"] = dict(labels)
    if annotations:
        metadata["annotations"] = dict(annotations)
    return {"apiVersion": api_version, "kind": kind, "metadata": metadata, **body}


def deep_merge(base: Any, extra: Any) -> Any:
    """Maps merge key by key; anything else (lists included) is replaced by `extra`."""
    if isinstance(base, dict) and isinstance(extra, dict):
        out = dict(base)
        for key, value in extra.items():
            out[key] = deep_merge(base[key], value) if key in base else value
        return out
    return extra
