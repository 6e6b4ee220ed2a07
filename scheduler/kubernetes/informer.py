"""A watch-fed cache of one runtime namespace (informer-style list + watch), shared by everything
in the process that asks about that runtime: the rollout's follower, the status pages, the
reconciler.

Each kind status() reads (the Namespace itself, Deployments, DaemonSets, StatefulSets, pods, events,
Ingresses and the addons' custom resources the Namespace's annotation names) is listed once, then
kept current by a watch from that list's resourceVersion; a watch that ends is resumed from the last
version seen, one that is too old (410 Gone) or fails lists again. status() then costs no request:
it is computed from the cached objects (a 200-service runtime: tens of ms, where listing every pod
and event took over a second). Waiters (wait_until, watch_status) are woken by the cache's own
change counter, so nothing lists in a loop while a rollout runs.

Freshness: what this process wrote (apply, scale, restart) is awaited by resourceVersion before the
next status() answers (`expect`), so a status read right after a write never shows the object as
it was before it. A cache nobody asked for in IDLE_SECONDS stops its watches.
"""

from __future__ import annotations

import atexit
import contextlib
import copy
import dataclasses
import hashlib
import json
import logging
import os
import threading
import time
from collections.abc import Callable
from typing import Any

from kubernetes import client, watch
from kubernetes.client.rest import ApiException

from scheduler.base import GroupStatus, RuntimeRef
from scheduler.kubernetes.addons import health as addon_health
from scheduler.kubernetes.meta import MANAGED_BY
from scheduler.kubernetes.status import group_status
from scheduler.spark import operator as spark_operator

log = logging.getLogger(__name__)

WATCH_SECONDS = 240  # the server ends each watch after this long; it is resumed from the last version
RETRY_SECONDS = 0.5  # pause after a failed list or watch before the next attempt
IDLE_SECONDS = 300.0  # a cache nobody read for this long stops its watches (the next read starts over)
SYNC_SECONDS = 30.0  # the longest a first status() waits for the initial lists
EXPECT_SECONDS = 10.0  # the longest a status() waits for the cache to see this process's own writes
PACE = 3.0  # after a change, waiters linger this many times the last status computation's cost

_MANAGED = "app.kubernetes.io/managed-by"
SPARK_KEY = f"{spark_operator.GROUP}/{spark_operator.VERSION}/{spark_operator.KIND}"


def _copy_status(status: GroupStatus) -> GroupStatus:
    """The memoised status as each caller gets it: its mappings are the caller's own."""
    return dataclasses.replace(status, services=dict(status.services), addons=dict(status.addons),
                               jobs=dict(status.jobs))


def _rv(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return -1


class _Reflector:
    """One kind of the namespace: list, then watch from the list's version; items by name."""

    def __init__(self, cache: NamespaceCache, key: str, lister: Callable, args: tuple, kwargs: dict | None = None):
        self.cache, self.key, self.lister, self.args = cache, key, lister, args
        self.kwargs = kwargs or {}
        self.items: dict[str, dict] = {}
        self.synced = threading.Event()
        self.version = ""  # the last resourceVersion seen (list, event or bookmark)
        self._watch: watch.Watch | None = None
        self._thread = threading.Thread(target=self._run, daemon=True, name=f"dice-informer-{cache.namespace}-{key}")

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        w = self._watch
        if w is not None:
            w.stop()
            response = getattr(w, "_resp", None)  # unblock the read now, not at the next event
            if response is not None:
                with contextlib.suppress(Exception):
                    response.shutdown() if hasattr(response, "shutdown") else response.close()

    def _list(self) -> None:
        response = self.lister(*self.args, _preload_content=False, **self.kwargs)
        body = json.loads(response.data)
        items = {item["metadata"]["name"]: item for item in body.get("items") or []}
        self.version = (body.get("metadata") or {}).get("resourceVersion") or ""
        self.cache._replace(self, items)
        self.synced.set()

    def _run(self) -> None:
        stopped = self.cache._stopped
        listed = False
        while not stopped.is_set():
            try:
                if not listed:
                    self._list()
                    listed = True
                w = watch.Watch()
                self._watch = w
                if stopped.is_set():
                    return
                for event in w.stream(self.lister, *self.args, resource_version=self.version,
                                      allow_watch_bookmarks=True, timeout_seconds=WATCH_SECONDS,
                                      deserialize=False, **self.kwargs):
                    if stopped.is_set():
                        return
                    kind, obj = event.get("type"), event.get("object") or {}
                    version = (obj.get("metadata") or {}).get("resourceVersion")
                    if kind == "ERROR":  # 410 Gone and the like: the version is too old, list again
                        listed = False
                        break
                    if version:
                        self.version = version
                    if kind in ("ADDED", "MODIFIED"):
                        self.cache._put(self, obj)
                    elif kind == "DELETED":
                        self.cache._delete(self, obj)
                if self.cache._idle():
                    self.cache.close()
                    return
            except ApiException as exc:
                if stopped.is_set():
                    return
                listed = False
                if exc.status == 404:  # a kind the cluster does not serve (yet): empty, try later
                    self.cache._replace(self, {})
                    self.synced.set()
                    stopped.wait(10 * RETRY_SECONDS)
                    continue
                self.synced.clear()  # until listed again, status() asks the server itself
                log.debug("informer %s/%s: %s", self.cache.namespace, self.key, exc)
                stopped.wait(RETRY_SECONDS)
            except Exception as exc:  # a dropped connection: list again shortly
                if stopped.is_set():
                    return
                listed = False
                self.synced.clear()
                log.debug("informer %s/%s: %s", self.cache.namespace, self.key, exc)
                stopped.wait(RETRY_SECONDS)
            finally:
                self._watch = None


class NamespaceCache:
    """The cached objects of one runtime namespace on one cluster."""

    def __init__(self, api: client.ApiClient, namespace: str):
        # A client of its own: a connection per watch, none taken from the executor's pool.
        configuration = copy.deepcopy(api.configuration)
        configuration.connection_pool_maxsize = 32
        configuration.retries = 0  # a failed request is the reflector's to retry, after a pause
        self.api, self.namespace = client.ApiClient(configuration), namespace
        api = self.api
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._count = 0
        self._stopped = threading.Event()
        self._expected: dict[tuple[str, str], int] = {}  # (reflector key, name) -> resourceVersion
        self._gone: set[tuple[str, str]] = set()  # (reflector key, name) deleted by this process
        self.last_used = time.monotonic()
        # (change count, runtime, status): status() of an unchanged cache is not computed again.
        self._status_memo: tuple[int, RuntimeRef, GroupStatus] | None = None
        self.status_cost = 0.0  # seconds the last status computation took (wait_change paces by it)
        core, apps = client.CoreV1Api(api), client.AppsV1Api(api)
        ns = namespace
        self._reflectors: dict[str, _Reflector] = {}
        for key, lister, args, kwargs in (
            ("Namespace", core.list_namespace, (), {"field_selector": f"metadata.name={ns}"}),
            ("Deployment", apps.list_namespaced_deployment, (ns,), None),
            ("DaemonSet", apps.list_namespaced_daemon_set, (ns,), None),
            ("StatefulSet", apps.list_namespaced_stateful_set, (ns,), None),
            ("Pod", core.list_namespaced_pod, (ns,), None),
            ("Event", core.list_namespaced_event, (ns,), None),
            ("Ingress", client.NetworkingV1Api(api).list_namespaced_ingress, (ns,), None),
        ):
            self._reflectors[key] = _Reflector(self, key, lister, args, kwargs)
        for reflector in list(self._reflectors.values()):
            reflector.start()

    # ---- fed by the reflectors -------------------------------------------------------------

    def _bump(self) -> None:
        self._count += 1
        self._changed.notify_all()

    def _replace(self, reflector: _Reflector, items: dict[str, dict]) -> None:
        with self._lock:
            reflector.items = items
            self._bump()
        if reflector.key == "Namespace":
            self._follow_custom_kinds()

    def _put(self, reflector: _Reflector, obj: dict) -> None:
        with self._lock:
            reflector.items[obj["metadata"]["name"]] = obj
            self._bump()
        if reflector.key == "Namespace":
            self._follow_custom_kinds()

    def _delete(self, reflector: _Reflector, obj: dict) -> None:
        with self._lock:
            reflector.items.pop(obj["metadata"]["name"], None)
            self._bump()
        if reflector.key == "Namespace":  # the runtime is gone: stop watching what was in it
            threading.Thread(target=self.close, daemon=True).start()

    def _follow_custom_kinds(self) -> None:
        """Start a reflector for each custom kind the Namespace's annotation names (addons backed
        by an operator); kinds it stops naming are simply no longer read."""
        namespace = self._namespace()
        if namespace is None:
            return
        custom = client.CustomObjectsApi(self.api)
        follow = [(f"{kind.api_version}/{kind.kind}", (kind.group, kind.version, self.namespace, kind.plural))
                  for kind, _, _ in addon_health.recorded(namespace)]
        if spark_operator.recorded_jobs(namespace):  # `engine: spark` jobs: their SparkApplications
            follow.append((SPARK_KEY, (spark_operator.GROUP, spark_operator.VERSION, self.namespace,
                                       spark_operator.PLURAL)))
        for key, args in follow:
            with self._lock:
                if key in self._reflectors or self._stopped.is_set():
                    continue
                reflector = _Reflector(self, key, custom.list_namespaced_custom_object, args)
                self._reflectors[key] = reflector
            reflector.start()

    # ---- read -------------------------------------------------------------------------------

    def _namespace(self) -> dict | None:
        return self._reflectors["Namespace"].items.get(self.namespace)

    def _idle(self) -> bool:
        return time.monotonic() - self.last_used > IDLE_SECONDS

    def closed(self) -> bool:
        return self._stopped.is_set()

    def expect(self, kind: str, name: str, resource_version: Any) -> None:
        """This process wrote `kind/name` at `resource_version`: reads wait until the cache has it."""
        version = _rv(resource_version)
        if version >= 0:
            with self._lock:
                self._expected[(kind, name)] = max(version, self._expected.get((kind, name), -1))

    def expect_gone(self, kind: str, name: str) -> None:
        """This process deleted `kind/name`: reads wait until the cache no longer has it live."""
        with self._lock:
            self._expected.pop((kind, name), None)
            self._gone.add((kind, name))

    def _fresh(self) -> bool:
        """Every expected write is in the cache (or the object was deleted or changed since)."""
        for kind, name in list(self._gone):
            reflector = self._reflectors.get(kind)
            item = reflector.items.get(name) if reflector else None
            if item is None or (item.get("metadata") or {}).get("deletionTimestamp"):
                self._gone.discard((kind, name))
        done = []
        for (kind, name), version in self._expected.items():
            reflector = self._reflectors.get(kind)
            item = reflector.items.get(name) if reflector else None
            if item is None:  # not there yet, or deleted after the write: the watch tells which
                there = reflector is not None and _rv(reflector.version) >= version
            else:  # a version that is not a number cannot be compared: take what is there
                seen = _rv(item.get("metadata", {}).get("resourceVersion"))
                there = seen >= version or seen < 0
            if there:
                done.append((kind, name))
        for key in done:
            del self._expected[key]
        return not self._expected and not self._gone

    def wait_ready(self, timeout: float = SYNC_SECONDS) -> bool:
        """Block until every kind has been listed once and this process's writes are in."""
        self.last_used = time.monotonic()
        deadline = time.monotonic() + timeout
        while True:  # custom kinds join once the Namespace is listed: wait for those too
            pending = [r for r in list(self._reflectors.values()) if not r.synced.is_set()]
            if not pending:
                break
            if not pending[0].synced.wait(max(0.0, deadline - time.monotonic())):
                return False
        deadline_fresh = time.monotonic() + min(EXPECT_SECONDS, max(0.0, deadline - time.monotonic()))
        with self._lock:
            while not self._fresh():
                remaining = deadline_fresh - time.monotonic()
                if remaining <= 0:
                    log.warning("informer %s: own writes not seen within %.0fs", self.namespace, EXPECT_SECONDS)
                    self._expected.clear()
                    self._gone.clear()
                    break
                self._changed.wait(remaining)
        return True

    def ready(self) -> bool:
        """Every kind is listed and its watch has not failed since: the cache can answer."""
        return not self._stopped.is_set() and all(r.synced.is_set() for r in list(self._reflectors.values()))

    def changes(self) -> int:
        with self._lock:
            return self._count

    def wait_change(self, seen: int, timeout: float) -> int:
        """The change counter once it differs from `seen`, or after `timeout` seconds. While a
        rollout streams changes, a waiter that recomputes the status on each wake-up would spend
        its time doing so (200 services: tens of ms each, hundreds of times): after a change it
        lingers PACE times the last computation's cost (bounded by the timeout), so that the
        changes arriving meanwhile are taken in one evaluation."""
        self.last_used = time.monotonic()
        deadline = time.monotonic() + max(0.0, timeout)
        with self._lock:
            if self._count == seen and not self._stopped.is_set():
                self._changed.wait(max(0.0, timeout))
            if self._count == seen or self._stopped.is_set():
                return self._count
        linger = min(PACE * self.status_cost, deadline - time.monotonic())
        if linger > 0:
            self._stopped.wait(linger)
        with self._lock:
            return self._count

    def status(self, runtime: RuntimeRef) -> GroupStatus:
        """The runtime's status from the cached objects (no request). Computed once per change of
        the cache: the pages of a settled runtime, and every viewer of it, read the same answer
        (a copy of it) until a watch brings something new."""
        if not self.wait_ready():
            raise TimeoutError(f"namespace {self.namespace}: the first lists did not answer within {SYNC_SECONDS:.0f}s")
        with self._lock:
            memo = self._status_memo
            if memo is not None and memo[0] == self._count and memo[1] == runtime:
                return _copy_status(memo[2])
            count = self._count
        started = time.monotonic()
        status = self._compute_status(runtime)
        self.status_cost = time.monotonic() - started
        with self._lock:
            self._status_memo = (count, runtime, status)
        return _copy_status(status)

    def _compute_status(self, runtime: RuntimeRef) -> GroupStatus:
        with self._lock:
            namespace = self._namespace()
            if namespace is None:
                return group_status(runtime, False, [], [], [])
            workloads = []
            for kind in ("Deployment", "DaemonSet", "StatefulSet"):
                for item in self._reflectors[kind].items.values():
                    if ((item.get("metadata") or {}).get("labels") or {}).get(_MANAGED) == MANAGED_BY:
                        workloads.append({**item, "kind": kind})
            pods = [self._reflectors["Pod"].items[k] for k in sorted(self._reflectors["Pod"].items)]
            events = list(self._reflectors["Event"].items.values())
            ingresses = [item for item in self._reflectors["Ingress"].items.values()
                         if ((item.get("metadata") or {}).get("labels") or {}).get(_MANAGED) == MANAGED_BY]
            statefulsets = dict(self._reflectors["StatefulSet"].items)
            custom_items = {key: dict(r.items) for key, r in self._reflectors.items() if "/" in key}
        custom = {}
        for kind, name, addon in addon_health.recorded(namespace):
            objs = custom_items.get(f"{kind.api_version}/{kind.kind}")
            obj = objs.get(name) if objs is not None else None
            sts = statefulsets.get(name) if obj is not None and kind.kind in ("Redis", "RedisReplication") else None
            custom[addon] = addon_health.custom_status(addon, kind, obj, sts)
        jobs = None
        if recorded := spark_operator.recorded_jobs(namespace):
            applications = (custom_items.get(SPARK_KEY) or {}).values()
            jobs = spark_operator.jobs_status(recorded, applications)
        return group_status(runtime, True, workloads, pods, events, custom=custom, ingresses=ingresses, jobs=jobs)

    def close(self) -> None:
        self._stopped.set()
        with self._lock:
            reflectors = list(self._reflectors.values())
            self._changed.notify_all()
        for reflector in reflectors:
            reflector.stop()
        with contextlib.suppress(Exception):
            self.api.rest_client.pool_manager.clear()
        with _registry_lock:
            for key, cache in list(_caches.items()):
                if cache is self:
                    del _caches[key]


class CacheChanges:
    """scheduler.base.StatusChanges on a shared cache: close() ends the subscription, not the cache."""

    def __init__(self, cache: NamespaceCache):
        self.cache = cache
        self._seen = cache.changes()
        self._closed = False

    def wait(self, timeout: float) -> bool:
        if self._closed:
            return False
        count = self.cache.wait_change(self._seen, timeout)
        changed = count != self._seen
        self._seen = count
        return changed

    def close(self) -> None:
        self._closed = True


_caches: dict[tuple, NamespaceCache] = {}
_registry_lock = threading.Lock()


def cache_key(api: client.ApiClient, cluster_name: str, config: dict | None, namespace: str) -> tuple:
    """Which cluster and namespace a cache serves: the server, the credentials' digest, the name,
    and this process (watch threads do not survive a fork)."""
    digest = hashlib.sha256(json.dumps(config or {}, sort_keys=True, default=str).encode()).hexdigest()[:16]
    return (os.getpid(), api.configuration.host, digest, cluster_name, namespace)


def namespace_cache(api: client.ApiClient, key: tuple, namespace: str) -> NamespaceCache:
    """The process's cache of `namespace` (started on first use); idle ones are stopped."""
    with _registry_lock:
        cache = _caches.get(key)
        stale = [k for k, c in _caches.items() if c is not cache and c._idle()]
    for k in stale:
        with contextlib.suppress(KeyError):
            _caches[k].close()
    with _registry_lock:
        cache = _caches.get(key)
        if cache is None or cache.closed():
            cache = NamespaceCache(api, namespace)
            _caches[key] = cache
        cache.last_used = time.monotonic()
        return cache


def close_all() -> None:
    """Stop every cache of this process (tests, shutdown)."""
    with _registry_lock:
        caches = list(_caches.values())
    for cache in caches:
        cache.close()


atexit.register(close_all)  # before logging shuts down (atexit runs the last registered first)
