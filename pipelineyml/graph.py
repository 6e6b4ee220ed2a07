"""The task graph of a pipeline: dependencies (stages, `needs`, references), cycles, topological order."""

from __future__ import annotations

import heapq
from collections.abc import Callable, Mapping, Sequence

from pipelineyml.models import Action, PipelineYml, PlannedTask, Reference
from speckit import did_you_mean

Report = Callable[[tuple, str], None]


def _stage_deps(actions: Sequence[Action]) -> list[list[int]]:
    """For each action (by position), the positions of the previous non-empty stage's actions."""
    deps: list[list[int]] = []
    previous: list[int] = []
    current: list[int] = []
    stage = None
    for pos, action in enumerate(actions):
        if action.stage != stage:
            if current:
                previous = current
            current = []
            stage = action.stage
        current.append(pos)
        deps.append(previous)
    return deps


def _find_cycles(graph: list[list[int]]) -> list[list[int]]:
    """Strongly connected components with more than one node (iterative Tarjan), by first position."""
    index: list[int | None] = [None] * len(graph)
    low = [0] * len(graph)
    on_stack = [False] * len(graph)
    stack: list[int] = []
    components: list[list[int]] = []
    counter = 0
    for root in range(len(graph)):
        if index[root] is not None:
            continue
        work = [(root, 0)]
        while work:
            node, edge = work.pop()
            if edge == 0:
                index[node] = low[node] = counter
                counter += 1
                stack.append(node)
                on_stack[node] = True
            recurse = False
            for i in range(edge, len(graph[node])):
                succ = graph[node][i]
                if index[succ] is None:
                    work.append((node, i + 1))
                    work.append((succ, 0))
                    recurse = True
                    break
                if on_stack[succ]:
                    low[node] = min(low[node], index[succ])  # type: ignore[type-var]
            if recurse:
                continue
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack[member] = False
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    components.append(sorted(component))
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
    return sorted(components)


def _cycle_path(graph: list[list[int]], component: list[int]) -> list[int]:
    """A shortest cycle through the component's first node: [s, ..., s]."""
    members = set(component)
    start = component[0]
    parent: dict[int, int] = {}
    frontier = [start]
    seen = {start}
    while frontier:
        following = []
        for node in frontier:
            for succ in graph[node]:
                if succ == start:
                    path = [node]
                    while path[-1] != start:
                        path.append(parent[path[-1]])
                    return [*reversed(path), start]
                if succ in members and succ not in seen:
                    seen.add(succ)
                    parent[succ] = node
                    following.append(succ)
        frontier = following
    return [start, start]  # unreachable for a real component


def _topological(graph: list[list[int]]) -> list[int]:
    """Kahn's algorithm; among ready nodes the earliest in the file goes first (deterministic).
    Each node's deps are distinct (build_graph makes them so)."""
    dependants: list[list[int]] = [[] for _ in graph]
    waiting = [len(deps) for deps in graph]
    for node, deps in enumerate(graph):
        for dep in deps:
            dependants[dep].append(node)
    ready = [node for node, count in enumerate(waiting) if count == 0]
    heapq.heapify(ready)
    order = []
    while ready:
        node = heapq.heappop(ready)
        order.append(node)
        for succ in dependants[node]:
            waiting[succ] -= 1
            if waiting[succ] == 0:
                heapq.heappush(ready, succ)
    return order


def _order_problem(ref: Reference, source: Action, target: Action) -> str:
    if target.stage == source.stage and source.needs is None:
        why = f"it runs in parallel with this action (same stage {target.stage})"
    elif target.stage > source.stage and source.needs is None:
        why = f"it runs after this action (stage {target.stage})"
    else:
        why = "it does not run before this action"
    return (
        f"'{ref.text}' refers to action '{target.alias}', but {why}; "
        "move it to an earlier stage or list it in `needs`"
    )


def build_graph(
    actions: Sequence[Action],
    ref_targets: Mapping[int, list[tuple[Reference, str]]],
    report: Report,
) -> tuple[dict[str, tuple[str, ...]], tuple[str, ...]] | None:
    """Dependencies of each alias and a topological order, or None after reporting a problem.

    `ref_targets[pos]`: the references of the action at `pos` that name another action (with the
    alias they name). An action with `needs` depends on those and on the actions it references;
    one without depends on the whole previous stage, and what it references must run before it.
    """
    first: dict[str, int] = {}
    for pos, action in enumerate(actions):
        first.setdefault(action.alias, pos)
    stage_deps = _stage_deps(actions)
    graph: list[list[int]] = []
    ok = len(first) == len(actions)  # duplicate aliases were reported already
    for pos, action in enumerate(actions):
        if action.needs is None:
            graph.append(stage_deps[pos])
            continue
        deps: dict[int, None] = {}
        for i, alias in enumerate(action.needs):
            where = (*action.path, "needs", i) if len(action.needs) > 1 else (*action.path, "needs")
            if alias == action.alias:
                report(where, f"action '{alias}' cannot need itself")
                ok = False
            elif alias not in first:
                report(where, f"needs unknown action alias '{alias}'{did_you_mean(alias, first)}")
                ok = False
            else:
                deps.setdefault(first[alias], None)
        for _ref, alias in ref_targets.get(pos, ()):
            if alias in first and first[alias] != pos:
                deps.setdefault(first[alias], None)
        graph.append(list(deps))

    cycles = _find_cycles(graph)
    for component in cycles:
        names = " -> ".join(actions[node].alias for node in _cycle_path(graph, component))
        head = actions[component[0]]
        where = (*head.path, "needs") if head.needs is not None else head.path
        report(
            where, f"dependency cycle: {names} (each action needs the next, through `needs` or references)"
        )
    if cycles:
        return None

    order = _topological(graph)
    any_needs = any(action.needs is not None for action in actions)
    ancestors: list[int] = [0] * len(actions)
    if any_needs:
        for node in order:
            bits = 0
            for dep in graph[node]:
                bits |= ancestors[dep] | (1 << dep)
            ancestors[node] = bits
    for pos, refs in ref_targets.items():
        source = actions[pos]
        if source.needs is not None:
            continue
        for ref, alias in refs:
            target_pos = first.get(alias)
            if target_pos is None or target_pos == pos:
                continue
            target = actions[target_pos]
            runs_before = (ancestors[pos] >> target_pos) & 1 if any_needs else target.stage < source.stage
            if not runs_before:
                report(ref.path, _order_problem(ref, source, target))
                ok = False
    if not ok:
        return None
    # Actions of one stage share their deps list: sort each distinct list once.
    sorted_names: dict[int, tuple[str, ...]] = {}
    dependencies = {}
    for pos, deps in enumerate(graph):
        names = sorted_names.get(id(deps))
        if names is None:
            names = sorted_names[id(deps)] = tuple(sorted(actions[dep].alias for dep in deps))
        dependencies[actions[pos].alias] = names
    return dependencies, tuple(actions[pos].alias for pos in order)


def plan(pipeline: PipelineYml) -> list[PlannedTask]:
    """The tasks of a run in a deterministic topological order, each with its sorted `needs`."""
    by_alias = {action.alias: action for action in pipeline.actions}
    return [
        PlannedTask(
            alias=alias,
            type=by_alias[alias].type,
            needs=pipeline.dependencies.get(alias, ()),
            stage=by_alias[alias].stage,
            action=by_alias[alias],
        )
        for alias in pipeline.order
    ]
