"""Fail on any import cycle between the project's files (run by `make lint` and CI).

Every import counts, including those inside functions: a circle held together by a function-level
import is still a circle (a concern in the wrong file). Uses grimp, which import-linter installs.
Prints each cycle as the chain of modules that closes it; exit status 1 when there is one.
"""

from __future__ import annotations

import sys
from pathlib import Path

import grimp

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("dice_console", "apps", "dice_cli", "speckit", "diceyml", "pipelineyml", "scheduler", "agent")


def import_cycles(packages: tuple[str, ...] = PACKAGES) -> list[list[str]]:
    """Each cycle of imports (a strongly connected set of modules, as a chain that closes it)."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    graph = grimp.build_graph(*packages, cache_dir=None)
    edges = {m: sorted(t for t in graph.find_modules_directly_imported_by(m) if t in graph.modules)
             for m in graph.modules}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []
    counter = 0
    for start in sorted(edges):  # Tarjan's algorithm, iteratively (no recursion limit)
        if start in index:
            continue
        work = [(start, iter(edges[start]))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, targets = work[-1]
            for target in targets:
                if target not in index:
                    index[target] = low[target] = counter
                    counter += 1
                    stack.append(target)
                    on_stack.add(target)
                    work.append((target, iter(edges[target])))
                    break
                if target in on_stack:
                    low[node] = min(low[node], index[target])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    group = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        group.append(member)
                        if member == node:
                            break
                    if len(group) > 1 or node in edges[node]:
                        groups.append(sorted(group))
    return [_chain(group, edges) for group in sorted(groups)]


def _chain(group: list[str], edges: dict[str, list[str]]) -> list[str]:
    """A path through the group from its first module back to it (what to read to break it)."""
    members, first = set(group), group[0]
    previous: dict[str, str] = {}
    queue = [first]
    while queue:
        node = queue.pop(0)
        for target in edges[node]:
            if target == first:
                path = [node]
                while path[-1] != first:
                    path.append(previous[path[-1]])
                return [*reversed(path), first]
            if target in members and target not in previous:
                previous[target] = node
                queue.append(target)
    return [*group, first]


def main() -> int:
    cycles = import_cycles()
    for chain in cycles:
        print("import cycle: " + " -> ".join(chain))
    if not cycles:
        print("no import cycles between files")
    return 1 if cycles else 0


if __name__ == "__main__":
    sys.exit(main())
