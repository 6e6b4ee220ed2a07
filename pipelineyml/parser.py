"""Parsing and validation of pipeline.yml (version "1.1"): the public entry points."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from pipelineyml.actions import ActionReader
from pipelineyml.cron import cron_problems
from pipelineyml.globs import check_glob
from pipelineyml.graph import build_graph
from pipelineyml.models import (
    SUPPORTED_VERSION,
    Action,
    CronCompensator,
    LifecycleHook,
    MergeTrigger,
    OnConfig,
    PipelineOutput,
    PipelineParam,
    PipelineYml,
    PushTrigger,
    Reference,
    Stage,
    Storage,
    Trigger,
    frozen_map,
)
from pipelineyml.refs import RefScope, check_reference, scan_text, scan_value
from pipelineyml.values import Reader, kind_of, scalar_text
from speckit import LineMap, SpecError, SpecInvalid, did_you_mean, format_path, load_yaml, sort_errors

TOP_KEYS = (
    "version", "name", "on", "cron", "cron_compensator", "envs", "params", "outputs", "storage",
    "stages", "triggers", "lifecycle",
)  # fmt: skip
LEGACY_VERSIONS = ("1.0", "1")
PARAM_TYPES = ("string", "int", "integer", "float", "number", "bool", "boolean")
PARAM_NAME = re.compile(r"^[A-Za-z_][\w-]*$")
ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# Action fields whose strings are names or prose, not places a reference is expanded.
_NOT_EXPANDED = frozenset({"alias", "needs", "version", "description", "displayName", "logoUrl"})


class _PipelineReader:
    """One parse: reads the document top-down, then checks references and the task graph."""

    def __init__(self, data: dict, lines: LineMap, source: str):
        self.data = data
        self.source = source
        self.r = Reader(lines)
        self.raw_bodies: list[Any] = []  # per action position: its mapping as written
        self.ref_targets: dict[int, list[tuple[Reference, str]]] = {}

    def version(self) -> str | None:
        raw = self.data.get("version")
        if raw is None:
            self.r.error(
                ("version",) if "version" in self.data else (), f'version is required: "{SUPPORTED_VERSION}"'
            )
            return None
        version = scalar_text(raw) if isinstance(raw, str | int | float) else None
        if version in LEGACY_VERSIONS:
            self.r.error(
                ("version",),
                f'pipeline.yml version "{version}" is a legacy format that is no longer supported; '
                f'rewrite it as version "{SUPPORTED_VERSION}" (stages of actions)',
            )
            return None
        if version != SUPPORTED_VERSION:
            shown = version if version is not None else kind_of(raw)
            self.r.error(("version",), f'unsupported version "{shown}": expected "{SUPPORTED_VERSION}"')
            return None
        return version

    def read(self) -> PipelineYml:
        data = self.data
        version = self.version()
        if version is None and "version" in data:
            # A wrong version makes every other complaint noise: stop at the one that matters.
            raise SpecInvalid(self.r.errors)
        self.r.unknown_keys(data, (), TOP_KEYS)
        name = self.r.string(data.get("name"), ("name",)) or ""
        on = self._on()
        cron = self._cron()
        compensator = self._compensator(cron)
        params = self._params()
        triggers = self._triggers()
        storage = self._storage()
        lifecycle = self._lifecycle()
        actions, stage_members = self._stages()
        envs = self._envs()
        outputs = self._outputs()
        scope = self._scope(actions, params, triggers)
        actions = self._action_references(actions, scope)
        outputs = self._output_references(outputs, scope)
        self._env_references(envs, scope)
        graph = build_graph(actions, self.ref_targets, self.r.error)
        if self.r.errors or graph is None:
            raise SpecInvalid(sort_errors(self.r.errors))
        dependencies, order = graph
        return PipelineYml(
            version=version or SUPPORTED_VERSION,
            name=name,
            on=on,
            cron=cron,
            cron_compensator=compensator,
            envs=frozen_map(envs),
            params=params,
            outputs=outputs,
            storage=storage,
            triggers=triggers,
            lifecycle=lifecycle,
            stages=tuple(Stage(actions=tuple(actions[pos] for pos in members)) for members in stage_members),
            source=self.source,
            dependencies=frozen_map(dependencies),
            order=order,
        )

    # -- top-level blocks -------------------------------------------------------------------

    def _on(self) -> OnConfig | None:
        if "on" not in self.data:
            return None
        data = self.r.mapping(self.data["on"], ("on",), allowed=("push", "merge"))
        if data is None:
            return None
        push = merge = None
        if "push" in data:
            p = self.r.mapping(data["push"], ("on", "push"), allowed=("branches", "tags")) or {}
            push = PushTrigger(
                branches=self.r.string_list(p.get("branches"), ("on", "push", "branches"), single_ok=True),
                tags=self.r.string_list(p.get("tags"), ("on", "push", "tags"), single_ok=True),
            )
        if "merge" in data:
            m = self.r.mapping(data["merge"], ("on", "merge"), allowed=("branches",)) or {}
            merge = MergeTrigger(
                branches=self.r.string_list(m.get("branches"), ("on", "merge", "branches"), single_ok=True)
            )
        for trigger, key, patterns in (("push", "branches", push.branches if push else ()),
                                       ("push", "tags", push.tags if push else ()),
                                       ("merge", "branches", merge.branches if merge else ())):
            for i, pattern in enumerate(patterns):
                if (problem := check_glob(pattern)) is not None:
                    self.r.error(("on", trigger, key, i), f"not a branch pattern: {problem}")
        return OnConfig(push=push, merge=merge)

    def _cron(self) -> str | None:
        raw = self.data.get("cron")
        if raw is None:
            return None
        if not isinstance(raw, str):
            self.r.error(("cron",), f"expected a cron expression string, found {kind_of(raw)}")
            return None
        for problem in cron_problems(raw):
            self.r.error(("cron",), problem)
        return raw.strip()

    def _compensator(self, cron: str | None) -> CronCompensator | None:
        path = ("cron_compensator",)
        raw = self.data.get("cron_compensator")
        data = self.r.mapping(raw, path, allowed=("enable", "latest_first", "stop_if_latter_executed"))
        if cron is None or data is None:
            return None  # without cron a compensator has nothing to compensate (Erda drops it too)
        defaults = CronCompensator()
        return CronCompensator(
            enable=self.r.boolean(data.get("enable"), (*path, "enable"), default=defaults.enable),
            latest_first=self.r.boolean(
                data.get("latest_first"), (*path, "latest_first"), default=defaults.latest_first
            ),
            stop_if_latter_executed=self.r.boolean(
                data.get("stop_if_latter_executed"),
                (*path, "stop_if_latter_executed"),
                default=defaults.stop_if_latter_executed,
            ),
        )

    def _envs(self) -> dict[str, str]:
        envs = self.r.string_map(self.data.get("envs"), ("envs",))
        for key in envs:
            if not ENV_NAME.match(key):
                self.r.error(("envs", key), f"invalid environment variable name '{key}'")
        return envs

    def _params(self) -> tuple[PipelineParam, ...]:
        items = self.r.sequence(self.data.get("params"), ("params",)) or []
        out: list[PipelineParam] = []
        seen: set[str] = set()
        for i, item in enumerate(items):
            path = ("params", i)
            data = self.r.mapping(item, path, allowed=("name", "required", "default", "desc", "type"))
            if data is None:
                continue
            name = self.r.string(data.get("name"), (*path, "name"), required=True)
            if name is None:
                continue
            if not PARAM_NAME.match(name):
                self.r.error(
                    (*path, "name"), f"invalid param name '{name}': use letters, digits, '_' and '-'"
                )
            elif name in seen:
                self.r.error((*path, "name"), f"param '{name}' is declared twice")
            seen.add(name)
            param_type = self.r.string(data.get("type"), (*path, "type")) or "string"
            if param_type not in PARAM_TYPES:
                self.r.error(
                    (*path, "type"),
                    f"unknown param type '{param_type}'{did_you_mean(param_type, PARAM_TYPES)}; "
                    f"expected one of {', '.join(PARAM_TYPES)}",
                )
            out.append(
                PipelineParam(
                    name=name,
                    required=self.r.boolean(data.get("required"), (*path, "required"), default=False),
                    default=data.get("default"),
                    desc=self.r.string(data.get("desc"), (*path, "desc")) or "",
                    type=param_type,
                )
            )
        return tuple(out)

    def _outputs(self) -> tuple[PipelineOutput, ...]:
        items = self.r.sequence(self.data.get("outputs"), ("outputs",)) or []
        out: list[PipelineOutput] = []
        seen: set[str] = set()
        for i, item in enumerate(items):
            path = ("outputs", i)
            data = self.r.mapping(item, path, allowed=("name", "desc", "ref"))
            if data is None:
                continue
            name = self.r.string(data.get("name"), (*path, "name"), required=True)
            ref = self.r.string(data.get("ref"), (*path, "ref"), required=True)
            if name is not None and name in seen:
                self.r.error((*path, "name"), f"output '{name}' is declared twice")
            if name is None or ref is None:
                continue
            seen.add(name)
            out.append(
                PipelineOutput(
                    name=name, ref=ref, desc=self.r.string(data.get("desc"), (*path, "desc")) or ""
                )
            )
        return tuple(out)

    def _storage(self) -> Storage | None:
        if "storage" not in self.data:
            return None
        data = self.r.mapping(self.data["storage"], ("storage",), allowed=("context",)) or {}
        return Storage(context=self.r.string(data.get("context"), ("storage", "context")))

    def _triggers(self) -> tuple[Trigger, ...]:
        items = self.r.sequence(self.data.get("triggers"), ("triggers",)) or []
        out = []
        for i, item in enumerate(items):
            path = ("triggers", i)
            data = self.r.mapping(item, path, allowed=("on", "filter"))
            if data is None:
                continue
            event = self.r.string(data.get("on"), (*path, "on"), required=True)
            if event is not None:
                out.append(
                    Trigger(
                        event=event,
                        filter=frozen_map(self.r.string_map(data.get("filter"), (*path, "filter"))),
                    )
                )
        return tuple(out)

    def _lifecycle(self) -> tuple[LifecycleHook, ...]:
        items = self.r.sequence(self.data.get("lifecycle"), ("lifecycle",)) or []
        out = []
        for i, item in enumerate(items):
            path = ("lifecycle", i)
            data = self.r.mapping(item, path, allowed=("hook", "client", "labels"))
            if data is None:
                continue
            hook = self.r.string(data.get("hook"), (*path, "hook"), required=True)
            labels = self.r.mapping(data.get("labels"), (*path, "labels")) or {}
            if hook is not None:
                client = self.r.string(data.get("client"), (*path, "client"))
                out.append(LifecycleHook(hook=hook, client=client, labels=frozen_map(labels)))
        return tuple(out)

    def _stages(self) -> tuple[list[Action], list[list[int]]]:
        """Every action in file order (raw mappings kept for reference scanning) and, per stage,
        the positions of its actions."""
        items = self.r.sequence(self.data.get("stages"), ("stages",)) or []
        reader = ActionReader(self.r)
        actions: list[Action] = []
        stage_members: list[list[int]] = []
        first_at: dict[str, tuple] = {}
        for s, item in enumerate(items):
            path = ("stages", s)
            data = self.r.mapping(item, path, allowed=("stage",))
            if data is None:
                continue
            if "stage" not in data:
                self.r.error(path, "each item of `stages` is a mapping with the key 'stage'")
                continue
            raw_actions = self.r.sequence(data["stage"], (*path, "stage"))
            if raw_actions is None:
                continue
            if not raw_actions:
                self.r.error((*path, "stage"), "a stage needs at least one action")
            members = []
            for a, raw in enumerate(raw_actions):
                action = reader.read(raw, s, a)
                if action is None:
                    continue
                if action.alias in first_at:
                    where = (*action.path, "alias")
                    self.r.error(
                        where if self.r.lines is not None and self.r.lines.get(where) else action.path,
                        f"alias '{action.alias}' is already used by {format_path(first_at[action.alias])}; "
                        "aliases must be unique (set `alias` on one of them)",
                    )
                else:
                    first_at[action.alias] = action.path
                members.append(len(actions))
                actions.append(action)
                self.raw_bodies.append(next(iter(raw.values())) or {})
            stage_members.append(members)
        return actions, stage_members

    # -- references and the graph -------------------------------------------------------------

    def _scope(
        self, actions: list[Action], params: tuple[PipelineParam, ...], triggers: tuple[Trigger, ...]
    ) -> RefScope:
        types: dict[str, str] = {}
        namespaces: dict[str, str] = {}
        for action in actions:
            types.setdefault(action.alias, action.type)
            for namespace in action.namespaces:
                namespaces.setdefault(namespace, action.alias)
        return RefScope(
            types=types,
            namespaces=namespaces,
            params={p.name for p in params},
            trigger_events={t.event for t in triggers} if "triggers" in self.data else None,
        )

    def _action_references(self, actions: list[Action], scope: RefScope) -> list[Action]:
        """Each action with the references in its strings; records the actions they name."""
        names = {*scope.types, *scope.namespaces}
        problems: list[tuple[tuple, str]] = []
        resolved = []
        for pos, action in enumerate(actions):
            refs: list[Reference] = []
            raw = self.raw_bodies[pos]
            if isinstance(raw, dict):
                for key, value in raw.items():
                    if key not in _NOT_EXPANDED:
                        refs.extend(scan_value(value, (*action.path, key), names, problems))
            for ref in refs:
                target = check_reference(ref, scope, self.r.error)
                if target is None:
                    continue
                if target == action.alias:
                    self.r.error(ref.path, f"'{ref.text}': an action cannot refer to itself")
                    continue
                self.ref_targets.setdefault(pos, []).append((ref, target))
            resolved.append(replace(action, references=tuple(refs)) if refs else action)
        for path, message in problems:
            self.r.error(path, message)
        return resolved

    def _env_references(self, envs: dict[str, str], scope: RefScope) -> None:
        problems: list[tuple[tuple, str]] = []
        names = {*scope.types, *scope.namespaces}
        for ref in scan_value(envs, ("envs",), names, problems):
            if ref.kind in ("outputs", "dirs"):
                self.r.error(ref.path, f"'{ref.text}': envs apply to every action and cannot refer to one")
            else:
                check_reference(ref, scope, self.r.error)
        for path, message in problems:
            self.r.error(path, message)

    def _output_references(
        self, outputs: tuple[PipelineOutput, ...], scope: RefScope
    ) -> tuple[PipelineOutput, ...]:
        names = {*scope.types, *scope.namespaces}
        resolved = []
        for i, output in enumerate(outputs):
            path = ("outputs", i, "ref")
            problems: list[tuple[tuple, str]] = []
            refs = scan_text(output.ref, path, names, problems)
            for where, message in problems:
                self.r.error(where, message)
            if problems:
                continue
            if len(refs) != 1 or refs[0].kind != "outputs" or refs[0].text != output.ref.strip():
                self.r.error(
                    path, f"'{output.ref}' must be one action output: ${{{{ outputs.<alias>.<key> }}}}"
                )
                continue
            check_reference(refs[0], scope, self.r.error)
            resolved.append(replace(output, reference=refs[0]))
        return tuple(resolved)


def _load(text: str | bytes, source: str) -> tuple[dict, LineMap]:
    data, lines = load_yaml(text, source=source)
    assert isinstance(data, dict)  # load_yaml refuses any other document
    return data, lines


def parse_pipeline_yml(text: str | bytes, *, source: str = "pipeline.yml") -> PipelineYml:
    """Parse and validate a pipeline.yml; raises SpecInvalid with every problem found."""
    data, lines = _load(text, source)
    return _PipelineReader(data, lines, source).read()


def validate_pipeline_yml(text: str | bytes, *, source: str = "pipeline.yml") -> list[SpecError]:
    """Every problem of a pipeline.yml, in file order; an empty list when it is valid."""
    try:
        parse_pipeline_yml(text, source=source)
    except SpecInvalid as exc:
        return sort_errors(exc.errors)
    return []


def pipeline_from_data(data: Mapping[str, Any], *, source: str = "pipeline.yml") -> PipelineYml:
    """Parse already-loaded data (no line numbers), e.g. a pipeline stored as JSON."""
    if not isinstance(data, Mapping):
        raise SpecInvalid([SpecError("", None, f"the document must be a mapping, not {kind_of(data)}")])
    return _PipelineReader(dict(data), LineMap(), source).read()
