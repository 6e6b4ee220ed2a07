"""Reading one action (`- <type>[@version]: {...}` inside a stage) into an Action."""

from __future__ import annotations

import re
from typing import Any

from pipelineyml import catalog
from pipelineyml.models import (
    DEFAULT_TIMEOUT,
    NO_TIMEOUT,
    Action,
    Cache,
    Loop,
    LoopStrategy,
    Policy,
    Resources,
    Retry,
    SnippetConfig,
    frozen_map,
)
from pipelineyml.values import Reader, kind_of
from speckit import did_you_mean

ACTION_KEYS = (
    "alias", "description", "version", "params", "image", "commands", "shell", "timeout",
    "resources", "caches", "if", "disable", "loop", "policy", "labels", "needs", "retry",
    # Erda fields seen in real files and kept for compatibility:
    "workspace", "namespaces", "snippet_config", "displayName", "logoUrl",
)  # fmt: skip
RESOURCE_KEYS = ("cpu", "max_cpu", "mem", "memory", "disk", "network")
LOOP_KEYS = ("break", "strategy")
LOOP_STRATEGY_KEYS = ("max_times", "decline_ratio", "decline_limit_sec", "interval_sec")
RETRY_KEYS = ("max", "backoff")
POLICY_TYPES = ("new-run", "try-latest-success-result", "try-latest-result")
MAX_RETRIES = 100

TYPE_NAME = re.compile(r"^[A-Za-z0-9][\w.-]*$")
ALIAS_NAME = re.compile(r"^\w[\w-]*$")


def _has_placeholder(value: str) -> bool:
    return "${" in value or "((" in value


def split_type_key(key: str) -> tuple[str, str | None]:
    """`git-checkout@1.0` -> ("git-checkout", "1.0"); `git-checkout` -> ("git-checkout", None)."""
    action_type, at, version = key.partition("@")
    return action_type, (version if at else None)


class ActionReader:
    """Reads the actions of a pipeline, one at a time, into the Action model."""

    def __init__(self, reader: Reader):
        self.r = reader

    def read(self, item: Any, stage: int, index: int) -> Action | None:
        item_path = ("stages", stage, "stage", index)
        if not isinstance(item, dict) or len(item) != 1:
            if isinstance(item, dict) and item:
                found = ", ".join(f"'{k}'" for k in item)
                why = f"found {len(item)} keys ({found}); is an indentation wrong?"
            else:
                why = f"found {kind_of(item) if not isinstance(item, dict) else 'an empty mapping'}"
            self.r.error(item_path, f"an action is a mapping with exactly one key, its type; {why}")
            return None
        key, body = next(iter(item.items()))
        path = (*item_path, key)
        action_type, key_version = split_type_key(key)
        if not TYPE_NAME.match(action_type) or (key_version is not None and not key_version):
            self.r.error(path, f"invalid action type '{key}': expected <type> or <type>@<version>")
            return None
        data = self.r.mapping(body, path, allowed=ACTION_KEYS)
        if data is None:
            return None
        if action_type == "snippet" and not isinstance(data.get("snippet_config"), dict):
            self.r.error(
                path,
                "a snippet action needs snippet_config {source, name}: the pipeline.yml it calls",
            )
        version = self._version(data, path, key_version)
        alias = self._alias(data, path, action_type)
        return Action(
            type=action_type,
            alias=alias,
            stage=stage,
            index=index,
            path=path,
            version=version,
            description=self.r.string(data.get("description"), (*path, "description")) or "",
            params=frozen_map(self._params(data.get("params"), (*path, "params"), action_type)),
            image=self.r.string(data.get("image"), (*path, "image")),
            commands=self.r.string_list(data.get("commands"), (*path, "commands")),
            shell=self.r.string(data.get("shell"), (*path, "shell")),
            timeout=self._timeout(data.get("timeout"), (*path, "timeout")),
            resources=self._resources(data, path),
            caches=self._caches(data.get("caches"), (*path, "caches")),
            condition=self.r.string(data.get("if"), (*path, "if")),
            disable=self.r.boolean(data.get("disable"), (*path, "disable"), default=False),
            loop=self._loop(data.get("loop"), (*path, "loop")),
            policy=self._policy(data.get("policy"), (*path, "policy")),
            labels=frozen_map(self.r.string_map(data.get("labels"), (*path, "labels"))),
            needs=self._needs(data, path),
            retry=self._retry(data.get("retry"), (*path, "retry")),
            workspace=self.r.string(data.get("workspace"), (*path, "workspace")),
            namespaces=self.r.string_list(data.get("namespaces"), (*path, "namespaces")),
            snippet_config=self._snippet(data.get("snippet_config"), (*path, "snippet_config")),
            display_name=self.r.string(data.get("displayName"), (*path, "displayName")),
            logo_url=self.r.string(data.get("logoUrl"), (*path, "logoUrl")),
        )

    def _version(self, data: dict, path: tuple, key_version: str | None) -> str | None:
        version = self.r.string(data.get("version"), (*path, "version"))
        if key_version is not None and version is not None and version != key_version:
            self.r.error(
                (*path, "version"),
                f"version '{version}' contradicts the '@{key_version}' in the action key",
            )
        return key_version if key_version is not None else version

    def _alias(self, data: dict, path: tuple, action_type: str) -> str:
        alias = self.r.string(data.get("alias"), (*path, "alias"))
        if alias is None or "alias" not in data:
            return action_type
        if not ALIAS_NAME.match(alias):
            self.r.error(
                (*path, "alias"),
                f"invalid alias '{alias}': use letters, digits, '-' and '_' (it is used in references)",
            )
        return alias

    def _params(self, value: Any, path: tuple, action_type: str) -> dict:
        params = self.r.mapping(value, path)
        if not params:
            return {}
        spec = catalog.lookup(action_type)
        if spec is None:
            return params
        if spec.params is not None:
            for key in params:
                if key not in spec.params:
                    self.r.error(
                        (*path, key),
                        f"unknown param '{key}' for action type '{action_type}'"
                        f"{did_you_mean(key, spec.params)}; its params: {', '.join(sorted(spec.params))}",
                    )
        for key in spec.int_params:
            raw = params.get(key)
            if raw is not None and not (isinstance(raw, str) and _has_placeholder(raw)):
                self.r.integer(raw, (*path, key), minimum=0)
        return params

    def _timeout(self, value: Any, path: tuple) -> int:
        timeout = self.r.integer(value, path, minimum=NO_TIMEOUT, what=" of seconds")
        if timeout is None:
            return DEFAULT_TIMEOUT
        if timeout == 0:
            self.r.error(path, "must be a positive number of seconds, or -1 for no limit")
            return DEFAULT_TIMEOUT
        return timeout

    def _resources(self, data: dict, path: tuple) -> Resources:
        path = (*path, "resources")
        res = self.r.mapping(data.get("resources"), path, allowed=RESOURCE_KEYS)
        if not res:
            return Resources()
        if "mem" in res and "memory" in res:
            self.r.error((*path, "memory"), "give either 'mem' or 'memory' (another name for it), not both")
        mem_key = "mem" if "mem" in res else "memory"
        cpu = self.r.number(res.get("cpu"), (*path, "cpu"), positive=True, what=" of cores")
        max_cpu = self.r.number(res.get("max_cpu"), (*path, "max_cpu"), positive=True, what=" of cores")
        if cpu is not None and max_cpu is not None and max_cpu < cpu:
            self.r.error((*path, "max_cpu"), f"max_cpu ({max_cpu:g}) must be at least cpu ({cpu:g})")
        return Resources(
            cpu=cpu,
            max_cpu=max_cpu,
            mem=self.r.integer(res.get(mem_key), (*path, mem_key), minimum=1, what=" (MiB)"),
            disk=self.r.integer(res.get("disk"), (*path, "disk"), minimum=0, what=" (MiB)"),
            network=frozen_map(self.r.string_map(res.get("network"), (*path, "network"))),
        )

    def _caches(self, value: Any, path: tuple) -> tuple[Cache, ...]:
        items = self.r.sequence(value, path) or []
        caches = []
        for i, item in enumerate(items):
            data = self.r.mapping(item, (*path, i), allowed=("key", "path"))
            if data is None:
                continue
            cache_path = self.r.string(data.get("path"), (*path, i, "path"), required=True)
            if cache_path is not None:
                caches.append(Cache(path=cache_path, key=self.r.string(data.get("key"), (*path, i, "key"))))
        return tuple(caches)

    def _loop(self, value: Any, path: tuple) -> Loop | None:
        if value is None:
            return None
        data = self.r.mapping(value, path, allowed=LOOP_KEYS)
        if data is None:
            return None
        spath = (*path, "strategy")
        strategy = self.r.mapping(data.get("strategy"), spath, allowed=LOOP_STRATEGY_KEYS) or {}
        return Loop(
            break_condition=self.r.string(data.get("break"), (*path, "break")),
            strategy=LoopStrategy(
                max_times=self.r.integer(strategy.get("max_times"), (*spath, "max_times"), minimum=1),
                decline_ratio=self.r.number(strategy.get("decline_ratio"), (*spath, "decline_ratio")),
                decline_limit_sec=self.r.integer(
                    strategy.get("decline_limit_sec"), (*spath, "decline_limit_sec"), minimum=0
                ),
                interval_sec=self.r.integer(
                    strategy.get("interval_sec"), (*spath, "interval_sec"), minimum=0
                ),
            ),
        )

    def _policy(self, value: Any, path: tuple) -> Policy | None:
        if value is None:
            return None
        data = self.r.mapping(value, path, allowed=("type",))
        if data is None:
            return None
        policy_type = self.r.string(data.get("type"), (*path, "type"), required=True)
        if policy_type is None:
            return None
        if policy_type not in POLICY_TYPES:
            self.r.error(
                (*path, "type"),
                f"unknown policy type '{policy_type}'{did_you_mean(policy_type, POLICY_TYPES)}; "
                f"expected one of {', '.join(POLICY_TYPES)}",
            )
        return Policy(type=policy_type)

    def _needs(self, data: dict, path: tuple) -> tuple[str, ...] | None:
        if "needs" not in data:
            return None
        npath = (*path, "needs")
        needs = self.r.string_list(data["needs"], npath, single_ok=True)
        seen: dict[str, None] = {}
        for alias in needs:
            seen.setdefault(alias, None)
        return tuple(seen)

    def _retry(self, value: Any, path: tuple) -> Retry:
        if value is None:
            return Retry()
        data = self.r.mapping(value, path, allowed=RETRY_KEYS)
        if not data:
            return Retry()
        retries = self.r.integer(data.get("max"), (*path, "max"), minimum=0)
        if retries is not None and retries > MAX_RETRIES:
            self.r.error((*path, "max"), f"must be at most {MAX_RETRIES}, found {retries}")
            retries = None
        backoff = self.r.number(data.get("backoff"), (*path, "backoff"), what=" of seconds")
        return Retry(max=retries or 0, backoff=backoff or 0.0)

    def _snippet(self, value: Any, path: tuple) -> SnippetConfig | None:
        if value is None:
            return None
        data = self.r.mapping(value, path, allowed=("source", "name", "labels"))
        if data is None:
            return None
        return SnippetConfig(
            source=self.r.string(data.get("source"), (*path, "source")),
            name=self.r.string(data.get("name"), (*path, "name")),
            labels=frozen_map(self.r.string_map(data.get("labels"), (*path, "labels"))),
        )
