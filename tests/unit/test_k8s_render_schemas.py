"""Schema checks of rendered manifests: kubernetes-validate --strict for Kubernetes 1.36, and CRD
schemas for custom resources: our own minimal ones (tests/data/crds: the fields the renderer
writes) in the base tier, the operators' real CRDs from ../shared/crds in the conformance tier."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from tests.conftest import DATA, SHARED_CRDS

K8S_VERSION = "1.36"
OWN_CRDS = DATA / "crds"
_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
# Custom resources whose CRD is not among ../shared/crds (checked by hand against Strimzi's docs).
BUILTIN_GROUPS = ("apps/", "autoscaling/", "batch/", "networking.k8s.io/", "policy/")
NO_CRD = {("kafka.strimzi.io/v1", "KafkaNodePool")}


def _strict(schema: Any) -> Any:
    """Reject unknown fields where the API server would (structural schemas, fieldValidation=Strict)."""
    if isinstance(schema, dict):
        out = {k: _strict(v) for k, v in schema.items()}
        if (
            "properties" in schema
            and "additionalProperties" not in schema
            and not schema.get("x-kubernetes-preserve-unknown-fields")
        ):
            out["additionalProperties"] = False
        return out
    if isinstance(schema, list):
        return [_strict(v) for v in schema]
    return schema


@functools.cache
def crd_validators(root: Path = OWN_CRDS) -> dict[tuple[str, str], jsonschema.Validator]:
    out = {}
    for path in sorted(root.rglob("*.y*ml")):
        with path.open() as handle:
            for doc in yaml.load_all(handle, Loader=_Loader):
                if not doc or doc.get("kind") != "CustomResourceDefinition":
                    continue
                spec = doc["spec"]
                for version in spec["versions"]:
                    schema = version.get("schema", {}).get("openAPIV3Schema")
                    if schema is None or not version.get("served", True):
                        continue
                    key = (f"{spec['group']}/{version['name']}", spec["names"]["kind"])
                    # The API server checks apiVersion, kind and metadata itself; the rest is strict.
                    props = {k: (v if k == "metadata" else _strict(v)) for k, v in schema.get("properties", {}).items()}
                    out[key] = jsonschema.Draft7Validator({**schema, "properties": props})
    return out


def validate_manifest(obj: dict, crds: Path = OWN_CRDS) -> None:
    """Raise AssertionError naming the object when it does not validate."""
    key = (obj["apiVersion"], obj["kind"])
    where = f"{obj['kind']}/{obj['metadata'].get('name')}"
    if obj["apiVersion"] != "v1" and not obj["apiVersion"].startswith(BUILTIN_GROUPS):
        if key in NO_CRD and crds != OWN_CRDS:
            return
        validator = crd_validators(crds).get(key)
        assert validator is not None, f"{where}: no CRD for {key}"
        errors = sorted(validator.iter_errors(obj), key=lambda e: list(e.path))
        assert not errors, f"{where}: " + "; ".join(f"{list(e.path)}: {e.message}" for e in errors[:5])
        return
    try:
        kubernetes_validate.validate(obj, K8S_VERSION, strict=True)
    except kubernetes_validate.ValidationError as exc:
        path = list(getattr(exc, "path", []) or [])
        raise AssertionError(f"{where}: {path}: {str(exc).splitlines()[0]}") from None


def validate_all(manifests: list[dict], crds: Path = OWN_CRDS) -> None:
    for obj in manifests:
        validate_manifest(obj, crds)


# ---- the validator itself -------------------------------------------------------------------


def test_schema_version_is_available():
    assert kubernetes_validate.validate(
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "x"}}, K8S_VERSION, strict=True
    ) == K8S_VERSION


def test_unknown_field_is_refused():
    with pytest.raises(AssertionError, match="Namespace/x"):
        validate_manifest({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "x"}, "spec": {"bogus": 1}})


CRD_SETS = [
    pytest.param(OWN_CRDS, id="own"),
    pytest.param(SHARED_CRDS, id="operators", marks=pytest.mark.conformance),
]


@pytest.mark.parametrize("crds", CRD_SETS)
def test_crd_schema_refuses_unknown_field(crds):
    obj = {
        "apiVersion": "postgresql.cnpg.io/v1",
        "kind": "Cluster",
        "metadata": {"name": "db"},
        "spec": {"instances": 1, "bogus": True},
    }
    with pytest.raises(AssertionError, match="bogus"):
        validate_manifest(obj, crds)
    obj["spec"] = {"instances": "three"}
    with pytest.raises(AssertionError, match="instances"):
        validate_manifest(obj, crds)


@pytest.mark.parametrize("crds", CRD_SETS)
def test_every_operator_crd_is_loaded(crds):
    keys = set(crd_validators(crds))
    for key in [
        ("postgresql.cnpg.io/v1", "Cluster"),
        ("mysql.oracle.com/v2", "InnoDBCluster"),
        ("redis.redis.opstreelabs.in/v1beta2", "Redis"),
        ("redis.redis.opstreelabs.in/v1beta2", "RedisReplication"),
        ("elasticsearch.k8s.elastic.co/v1", "Elasticsearch"),
        ("kafka.strimzi.io/v1", "Kafka"),
        ("rabbitmq.com/v1beta1", "RabbitmqCluster"),
        ("apps.kruise.io/v1alpha1", "BroadcastJob"),
        *([("kafka.strimzi.io/v1", "KafkaNodePool")] if crds == OWN_CRDS else []),
    ]:
        assert key in keys
