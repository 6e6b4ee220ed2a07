"""Shared by the deployment tests (no tests here): a fake cluster kind whose executor records what
it is asked and reports the health a test chooses, and fixtures that bind a tenant to it."""

from __future__ import annotations

import itertools
import threading
from dataclasses import dataclass, field

import pytest

from scheduler import registry
from scheduler.base import (
    Capabilities,
    ExecutorError,
    GroupStatus,
    Health,
    ReplicaStatus,
    RuntimeRef,
    ServiceGroup,
    ServiceStatus,
)

SPEC = """\
version: "2.0"
services:
  web:
    image: registry.example/web:1
    cmd: python3 -m http.server $PORT
    ports:
      - port: 8080
        expose: true
    depends_on: [worker]
    resources: {cpu: 0.2, mem: 128}
    deployments: {replicas: 2}
  worker:
    image: registry.example/worker:1
    cmd: sleep 1000
    resources: {cpu: 0.1, mem: 64}
addons:
  cache:
    plan: redis:basic
"""

_names = itertools.count(1)


def unique_runtime() -> str:
    return f"rt-{next(_names)}"


FAKE_CAPABILITIES = Capabilities(namespaces=True)


@dataclass
class FakeExecutor:
    """Executor of the `fake` cluster kind: records calls, answers with `health`."""

    kind: str = "fake"
    health: Health = Health.HEALTHY
    reason: str = ""
    fail_apply: str = ""
    groups: dict[str, ServiceGroup] = field(default_factory=dict)
    replicas: dict[str, dict[str, int]] = field(default_factory=dict)
    calls: list[tuple] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    # what the kind is registered with (the protocol's attribute; the routed executor reads it)
    capabilities: Capabilities = field(default_factory=lambda: FAKE_CAPABILITIES)

    def reset(self) -> None:
        self.health, self.reason, self.fail_apply = Health.HEALTHY, "", ""
        self.groups.clear()
        self.replicas.clear()
        self.calls.clear()

    def apply(self, group: ServiceGroup) -> None:
        with self.lock:
            self.calls.append(("apply", group.runtime.namespace, group.release))
            if self.fail_apply:
                raise ExecutorError(self.fail_apply)
            self.groups[group.runtime.namespace] = group
            self.replicas[group.runtime.namespace] = {
                n: s.deployments.replicas for n, s in group.spec.services.items()
            }

    def status(self, runtime: RuntimeRef) -> GroupStatus:
        group = self.groups.get(runtime.namespace)
        if group is None:
            return GroupStatus(runtime=runtime, health=Health.MISSING, reason="the runtime does not exist")
        ready = self.health == Health.HEALTHY
        services = {}
        for name in group.spec.services:
            desired = self.replicas[runtime.namespace][name]
            services[name] = ServiceStatus(
                name=name, desired=desired, ready=desired if ready else 0, updated=desired,
                available=desired if ready else 0, health=self.health, reason=self.reason,
                url=f"http://{name}.fake:8080",
                replicas=tuple(ReplicaStatus(f"{name}-{i}", ready, 0, "Running" if ready else "Pending")
                               for i in range(desired)),
            )
        addons = {n: ServiceStatus(name=n, desired=1, ready=1, health=Health.HEALTHY, url=f"{n}.fake:6379")
                  for n in group.spec.addons}
        reason = f"web: {self.reason}" if self.reason else ""
        return GroupStatus(runtime=runtime, health=self.health, reason=reason, services=services, addons=addons)

    def scale(self, runtime: RuntimeRef, service: str, replicas: int) -> None:
        self.calls.append(("scale", runtime.namespace, service, replicas))
        self.replicas.setdefault(runtime.namespace, {})[service] = replicas

    def restart(self, runtime: RuntimeRef, service: str) -> None:
        self.calls.append(("restart", runtime.namespace, service))

    def destroy(self, runtime: RuntimeRef) -> None:
        self.calls.append(("destroy", runtime.namespace))
        self.groups.pop(runtime.namespace, None)

    def events(self, runtime: RuntimeRef, service: str | None = None) -> list:
        return []

    def applied(self) -> list[tuple]:
        return [c for c in self.calls if c[0] == "apply"]


FAKE = FakeExecutor()
# A cluster kind of its own: runtimes get namespaces, services need no images nor release files.
registry.register("fake", lambda cluster: FAKE, FAKE_CAPABILITIES)


@pytest.fixture
def fake():
    FAKE.reset()
    yield FAKE
    FAKE.reset()


@pytest.fixture
def fake_cluster(db, fake):
    from apps.clusters.models import Cluster

    cluster, _ = Cluster.objects.get_or_create(name="fake", defaults={"kind": "fake"})
    return cluster


@pytest.fixture
def fast_rollouts(settings, tmp_path):
    settings.DICE_DEPLOY_POLL_INTERVAL = 0.01
    settings.DICE_DEPLOY_TIMEOUT = 5
    settings.DICE_DEPLOY_DEGRADED_GRACE = 0.05
    settings.DICE_DEPLOY_FILES = tmp_path / "deploy-files"
    settings.DICE_LOCAL_ROOT = tmp_path / "local-root"
    return settings


def bind_to(tenant, cluster) -> None:
    """Every workspace of the tenant's project on `cluster`."""
    from apps.projects.models import Workspace

    Workspace.objects.filter(project=tenant.project).update(cluster=cluster)


def release_of(tenant, text: str = SPEC, **kwargs):
    from apps.deploy.services import create_release

    return create_release(tenant.owner, tenant.app, spec_text=text, **kwargs)
