"""Typed, immutable model of a parsed pipeline.yml (version "1.1"), every default made explicit."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from types import MappingProxyType
from typing import Any

SUPPORTED_VERSION = "1.1"
DEFAULT_TIMEOUT = 3600  # seconds; -1 means no limit
NO_TIMEOUT = -1

_EMPTY: Mapping[str, Any] = MappingProxyType({})


def _no_map() -> Any:
    """A dataclass field defaulting to the shared empty read-only mapping."""
    return field(default_factory=lambda: _EMPTY)


def frozen_map(data: Mapping[str, Any] | None) -> Mapping[str, Any]:
    """A read-only copy of `data` (an empty one for None)."""
    return MappingProxyType(dict(data)) if data else _EMPTY


@dataclass(frozen=True)
class Reference:
    """One reference found inside a string of the file.

    kind: outputs | dirs | params | configs | triggers | random. target: the action alias (outputs,
    dirs), the param name, the config key, the trigger event or the random kind. key: the output
    key or trigger field.
    """

    kind: str
    target: str
    key: str | None
    text: str
    path: tuple = field(compare=False)
    legacy: bool = False


@dataclass(frozen=True)
class Resources:
    """What an action's container asks for. None means "not set": the platform default applies."""

    cpu: float | None = None  # cores
    max_cpu: float | None = None
    mem: int | None = None  # MiB (`memory` is accepted as another name)
    disk: int | None = None  # MiB
    network: Mapping[str, str] = _no_map()


@dataclass(frozen=True)
class Cache:
    """A directory kept between runs: `path` restored before and stored after the action."""

    path: str
    key: str | None = None


@dataclass(frozen=True)
class LoopStrategy:
    """How often a looping action is run again, and how the interval grows."""

    max_times: int | None = None
    decline_ratio: float | None = None
    decline_limit_sec: int | None = None
    interval_sec: int | None = None


@dataclass(frozen=True)
class Loop:
    """Run the action again until `break_condition` holds (Erda `loop`)."""

    break_condition: str | None = None
    strategy: LoopStrategy = LoopStrategy()


@dataclass(frozen=True)
class Retry:
    """(ext) Retry a failed action up to `max` times, waiting `backoff` seconds before each retry."""

    max: int = 0
    backoff: float = 0.0


@dataclass(frozen=True)
class Policy:
    """Whether to run the action again or reuse an earlier run's result."""

    type: str = "new-run"


@dataclass(frozen=True)
class SnippetConfig:
    """Where a `snippet` action's nested pipeline comes from."""

    source: str | None = None
    name: str | None = None
    labels: Mapping[str, str] = _no_map()


@dataclass(frozen=True)
class Action:
    """One step of a pipeline: an action type run with params; its alias names it in references."""

    type: str
    alias: str
    stage: int  # index of its stage in `stages`
    index: int  # position inside its stage
    path: tuple = field(compare=False)  # ("stages", stage, "stage", index, <type key>)
    version: str | None = None
    description: str = ""
    params: Mapping[str, Any] = _no_map()
    image: str | None = None
    commands: tuple[str, ...] = ()
    shell: str | None = None
    timeout: int = DEFAULT_TIMEOUT
    resources: Resources = Resources()
    caches: tuple[Cache, ...] = ()
    condition: str | None = None  # the `if` expression
    disable: bool = False
    loop: Loop | None = None
    policy: Policy | None = None
    labels: Mapping[str, str] = _no_map()
    needs: tuple[str, ...] | None = None  # (ext) None: depends on the whole previous stage
    retry: Retry = Retry()
    workspace: str | None = None
    namespaces: tuple[str, ...] = ()
    snippet_config: SnippetConfig | None = None
    display_name: str | None = None
    logo_url: str | None = None
    references: tuple[Reference, ...] = field(default=(), compare=False)

    @property
    def type_version(self) -> str:
        """`type@version` when a version is given, else the type."""
        return f"{self.type}@{self.version}" if self.version else self.type


@dataclass(frozen=True)
class Stage:
    """Actions that run in parallel; stages run one after the other."""

    actions: tuple[Action, ...] = ()


@dataclass(frozen=True)
class PushTrigger:
    """Run on a push to one of these branches or tags (glob patterns)."""

    branches: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()


@dataclass(frozen=True)
class MergeTrigger:
    """Run on a merge request into one of these branches."""

    branches: tuple[str, ...] = ()


@dataclass(frozen=True)
class OnConfig:
    """The `on:` block: git events that start the pipeline."""

    push: PushTrigger | None = None
    merge: MergeTrigger | None = None


@dataclass(frozen=True)
class Trigger:
    """A top-level `triggers` item: run on `event` when the event's fields match `filter`."""

    event: str
    filter: Mapping[str, str] = _no_map()


@dataclass(frozen=True)
class CronCompensator:
    """Catch up on cron runs missed while the scheduler was down (Erda defaults)."""

    enable: bool = False
    latest_first: bool = True
    stop_if_latter_executed: bool = True


@dataclass(frozen=True)
class PipelineParam:
    """An input of the pipeline, given when a run starts; referenced as ${{ params.<name> }}."""

    name: str
    required: bool = False
    default: Any = None
    desc: str = ""
    type: str = "string"


@dataclass(frozen=True)
class PipelineOutput:
    """A value the pipeline exposes after a run, taken from an action's output (`ref`)."""

    name: str
    ref: str
    desc: str = ""
    reference: Reference | None = field(default=None, compare=False)


@dataclass(frozen=True)
class LifecycleHook:
    """A network hook called at a point of the pipeline's life (Erda `lifecycle`)."""

    hook: str
    client: str | None = None
    labels: Mapping[str, Any] = _no_map()


@dataclass(frozen=True)
class Storage:
    """Where the pipeline's shared context (action directories) lives."""

    context: str | None = None


@dataclass(frozen=True)
class PipelineYml:
    """A parsed, validated pipeline.yml. `dependencies` holds each alias' direct predecessors."""

    version: str = SUPPORTED_VERSION
    name: str = ""
    on: OnConfig | None = None
    cron: str | None = None
    cron_compensator: CronCompensator | None = None  # set (with defaults) whenever cron is
    envs: Mapping[str, str] = _no_map()
    params: tuple[PipelineParam, ...] = ()
    outputs: tuple[PipelineOutput, ...] = ()
    storage: Storage | None = None
    triggers: tuple[Trigger, ...] = ()
    lifecycle: tuple[LifecycleHook, ...] = ()
    stages: tuple[Stage, ...] = ()
    source: str = field(default="pipeline.yml", compare=False)
    dependencies: Mapping[str, tuple[str, ...]] = field(default_factory=lambda: _EMPTY, compare=False)
    order: tuple[str, ...] = field(default=(), compare=False)  # aliases, topologically sorted

    @cached_property  # computed once: the engine asks for actions of a 1,000-action run per step
    def actions(self) -> tuple[Action, ...]:
        """Every action, in file order."""
        return tuple(action for stage in self.stages for action in stage.actions)

    @cached_property
    def _by_alias(self) -> dict[str, Action]:
        found: dict[str, Action] = {}
        for candidate in self.actions:
            found.setdefault(candidate.alias, candidate)  # the first, as a search in file order finds
        return found

    def action(self, alias: str) -> Action:
        """The action with this alias; KeyError when there is none."""
        return self._by_alias[alias]


@dataclass(frozen=True)
class PlannedTask:
    """One task of a run: what to execute and which tasks must finish first."""

    alias: str
    type: str
    needs: tuple[str, ...]
    stage: int
    action: Action | None = field(default=None, compare=False, repr=False)

    @property
    def disabled(self) -> bool:
        """A `disable: true` action: planned, but skipped when its turn comes."""
        return bool(self.action is not None and self.action.disable)

    def to_dict(self) -> dict[str, Any]:
        """The JSON shape of `dice pipeline plan --format json`."""
        return {
            "alias": self.alias,
            "type": self.type,
            "needs": list(self.needs),
            "stage": self.stage,
            "disabled": self.disabled,
        }
