"""Rules across fields and names of a dice.yml: limits, references, cycles, names, workspace rules."""

from __future__ import annotations

import re

from diceyml.environments import PRODUCTION
from diceyml.models import Addon, Job, Resources, Service
from speckit.suggest import did_you_mean

Problem = tuple[tuple, str]  # (path, message)
_DNS_LABEL = re.compile(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?")


def dns_label_problem(name: object) -> str | None:
    """Why `name` is not a DNS label (lowercase letters, digits, '-', 1..63, alphanumeric ends)."""
    if not isinstance(name, str) or not _DNS_LABEL.fullmatch(name):
        shown = name if isinstance(name, str) else repr(name)
        reasons = []
        if isinstance(name, str):
            if len(name) > 63:
                reasons.append(f"{len(name)} characters, at most 63")
            if name != name.lower():
                reasons.append("uppercase letters")
            if re.search(r"[^a-zA-Z0-9-]", name):
                reasons.append("characters other than letters, digits and '-'")
            if name[:1] == "-" or name[-1:] == "-":
                reasons.append("must start and end with a letter or digit")
        why = f" ({'; '.join(reasons)})" if reasons else ""
        return f"'{shown}' is not a valid name: use lowercase letters, digits and '-', at most 63 characters{why}"
    return None


def check_names(section: str, names: list[str], prefix: tuple = ()) -> list[Problem]:
    out = []
    for name in names:
        problem = dns_label_problem(name)
        if problem:
            out.append(((*prefix, section, name), problem))
    return out


def check_resources(res: Resources, path: tuple) -> list[Problem]:
    out = []
    if res.max_cpu is not None and res.max_cpu < res.cpu:
        out.append(((*path, "max_cpu"), f"max_cpu ({res.max_cpu:g}) must be >= cpu ({res.cpu:g})"))
    if res.max_mem is not None and res.max_mem < res.mem:
        out.append(((*path, "max_mem"), f"max_mem ({res.max_mem}) must be >= mem ({res.mem})"))
    return out


def _containers(path: tuple, workload: Service | Job) -> list[Problem]:
    out = check_resources(workload.resources, (*path, "resources"))
    groups = [("init", workload.init)]
    if isinstance(workload, Service):
        groups.append(("sidecars", workload.sidecars))
    for key, containers in groups:
        for name, container in containers.items():
            problem = dns_label_problem(name)
            if problem:
                out.append(((*path, key, name), problem))
            out += check_resources(container.resources, (*path, key, name, "resources"))
    return out


def check_service(name: str, svc: Service) -> list[Problem]:
    path = ("services", name)
    out = _containers(path, svc)
    seen: dict[tuple[int, str], int] = {}
    defaults = []
    for i, port in enumerate(svc.ports):
        key = (port.port, port.l4_protocol)
        if key in seen:
            out.append(((*path, "ports", i), f"port {port.port}/{port.l4_protocol} is listed twice"))
        seen[key] = i
        if port.default:
            defaults.append(i)
    if len(defaults) > 1:
        out.append(((*path, "ports", defaults[1]), "only one port may be marked default"))
    return out


def check_depends_on(depends: dict[str, list[str]]) -> list[Problem]:
    """Unknown names in depends_on, and dependency cycles named like `a -> b -> a`.

    `depends` maps every service name to its depends_on list as written (a service that failed
    validation still takes part, so its references and cycles are reported too).
    """
    out = []
    names = list(depends)
    for name, deps in depends.items():
        for i, dep in enumerate(deps):
            if dep not in depends:
                out.append(
                    (
                        ("services", name, "depends_on", i),
                        f"unknown service '{dep}'{did_you_mean(dep, names)}",
                    )
                )
            elif dep == name:
                out.append((("services", name, "depends_on", i), f"service '{name}' depends on itself"))
    graph = {n: [d for d in deps if d in depends and d != n] for n, deps in depends.items()}
    state: dict[str, int] = {}  # 1 on the current path, 2 done
    reported: set[frozenset] = set()
    for start in graph:
        if state.get(start):
            continue
        stack = [(start, iter(graph[start]))]
        trail = [start]
        state[start] = 1
        while stack:
            node, children = stack[-1]
            child = next(children, None)
            if child is None:
                stack.pop()
                trail.pop()
                state[node] = 2
                continue
            if state.get(child) == 1:
                cycle = [*trail[trail.index(child) :], child]
                if frozenset(cycle) not in reported:
                    reported.add(frozenset(cycle))
                    out.append(
                        (("services", cycle[0], "depends_on"), f"dependency cycle: {' -> '.join(cycle)}")
                    )
            elif not state.get(child):
                state[child] = 1
                stack.append((child, iter(graph[child])))
                trail.append(child)
    return out


def check_addons(addons: dict[str, Addon], written: dict, environment: str | None) -> list[Problem]:
    """Workspace rules of addons: no `basic` size in production (custom addons have no size)."""
    out = []
    if environment == PRODUCTION:
        for name, addon in addons.items():
            # `custom` carries the user's own connection values: it has no real size.
            if addon.size_given and addon.size == "basic" and addon.type != "custom":
                out.append(
                    (
                        ("addons", name, "plan"),
                        f"plan '{_written_plan(written, name, addon)}': size basic is not allowed in production (PROD); "
                        "use professional or ultimate",
                    )
                )
    return out


def _written_plan(written: dict, name: str, addon: Addon) -> str:
    raw = written.get(name)
    plan = raw.get("plan") if isinstance(raw, dict) else None
    return plan if isinstance(plan, str) else addon.plan


def check_workloads(services: dict[str, Service], jobs: dict[str, Job]) -> list[Problem]:
    out = []
    for name, svc in services.items():
        out += check_service(name, svc)
    for name, job in jobs.items():
        out += _containers(("jobs", name), job)
        if name in services:
            out.append((("jobs", name), f"'{name}' is the name of a service too; names must be unique"))
    return out
