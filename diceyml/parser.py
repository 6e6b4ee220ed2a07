"""dice.yml parsing: load with lines, merge the workspace's environment, fill values, validate, type."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ValidationError

from diceyml import rules
from diceyml.environments import (
    ENVIRONMENTS,
    PRODUCTION,
    OriginLines,
    deep_merge,
    environment_name,
    fill_values,
    normalize_workspace,
    unfilled,
)
from diceyml.models import Addon, DiceYml, Job, Resources, Service
from diceyml.normalize import PRODUCTION_DEFAULT_SIZE
from diceyml.placeholders import platform_problem
from speckit.errors import SpecError, SpecInvalid, sort_errors
from speckit.paths import format_path
from speckit.pydantic_errors import describe, translate_raw
from speckit.suggest import did_you_mean
from speckit.yamlload import LineMap, load_yaml

MAX_SERVICES = 500
TOP_KEYS = ("version", "meta", "envs", "services", "jobs", "addons", "environments", "values")
OVERLAY_KEYS = ("envs", "services", "addons")
_SECTIONS: tuple[tuple[str, type[BaseModel]], ...] = (("services", Service), ("jobs", Job), ("addons", Addon))

Problem = tuple[tuple, str]


def _mapping(data: dict, key: str, problems: list[Problem]) -> dict:
    """data[key] as a mapping ({} when absent or null); anything else is a problem."""
    value = data.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        problems.append(((key,), f"expected a mapping, got {describe(value)}"))
        return {}
    return value


def _hint(environment: str | None, values: dict):
    def hint(value: object) -> str | None:
        if not isinstance(value, str):
            return None
        keys = unfilled(value)
        if not keys:
            return None
        if environment:
            return (
                f"'{value}' is not filled: values.{environment} has no '{keys[0]}' "
                "and the placeholder has no default"
            )
        lacking = [e for e in ENVIRONMENTS if keys[0] not in (values.get(e, (None, {}))[1] or {})]
        return (
            f"'{value}' is not filled: the placeholder has no default and "
            f"{', '.join('values.' + e for e in lacking)} {'has' if len(lacking) == 1 else 'have'} "
            f"no '{keys[0]}'; give it in every environment's values, or validate with a workspace"
        )

    return hint


def _environment_blocks(data: dict, problems: list[Problem], key: str) -> dict[str, tuple[str, Any]]:
    """environments/values by canonical environment name -> (key as written, block)."""
    out: dict[str, tuple[str, Any]] = {}
    for written, block in _mapping(data, key, problems).items():
        env = environment_name(written)
        if env is None:
            choices = ("development", "test", "staging", "production")
            problems.append(
                (
                    (key, written),
                    f"unknown environment '{written}'{did_you_mean(written, choices)}: "
                    "use development, test, staging or production",
                )
            )
        elif env in out:
            problems.append(
                ((key, written), f"environment '{env}' is given twice ('{out[env][0]}' and '{written}')")
            )
        elif block is not None and not isinstance(block, dict):
            problems.append(((key, written), f"expected a mapping, got {describe(block)}"))
        else:
            out[env] = (written, block or {})
    return out


def _overlay_of(
    written: str,
    block: dict,
    base_services: dict,
    problems: list[Problem],
    notes: list[Problem] | None = None,
) -> dict:
    """The mergeable part of environments.<env>, with unknown keys and bad new service names reported."""
    prefix = ("environments", written)
    overlay: dict = {}
    for key, value in block.items():
        if key not in OVERLAY_KEYS:
            problems.append(((*prefix, key), f"unknown key '{key}'{did_you_mean(key, OVERLAY_KEYS)}"))
            continue
        if value is None:
            continue
        if not isinstance(value, dict):
            problems.append(((*prefix, key), f"expected a mapping, got {describe(value)}"))
            continue
        if key == "services":
            # A service may be defined only under an environment: the merge adds it there.
            for name in value:
                if name not in base_services:
                    problems += rules.check_names("services", [name], prefix=prefix)
                    hint = did_you_mean(name, list(base_services))
                    if hint and notes is not None:
                        notes.append(
                            (
                                (*prefix, key, name),
                                f"service '{name}' is defined only in this environment{hint}",
                            )
                        )
        overlay[key] = value
    return overlay


def _common_values(values: dict[str, tuple[str, Any]]) -> dict:
    """Keys that every environment's values give (all four), with the first environment's value."""
    blocks = [values[env][1] if env in values else None for env in ENVIRONMENTS]
    if not all(isinstance(b, dict) for b in blocks):
        return {}
    keys = set(blocks[0]).intersection(*blocks[1:])
    return {k: blocks[0][k] for k in keys}


def _walk_strings(node: Any, path: tuple):
    if isinstance(node, str):
        yield path, node
    elif isinstance(node, dict):
        for key, value in node.items():
            yield from _walk_strings(value, (*path, key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _walk_strings(value, (*path, i))


def _platform_problems(data: dict) -> list[Problem]:
    """`${platform.X}` naming a value the platform never gives."""
    out = []
    for path, text in _walk_strings(data, ()):
        if "${platform." in text:
            problem = platform_problem(text)
            if problem:
                out.append((path, problem))
    return out


def _workload_blocks(data: dict):
    """(path, workload mapping) of every service and job, in the base and in each environment."""
    for section in ("services", "jobs"):
        for name, raw in (data.get(section) or {}).items() if isinstance(data.get(section), dict) else ():
            yield (section, name), raw
    envs = data.get("environments")
    for written, block in envs.items() if isinstance(envs, dict) else ():
        services = block.get("services") if isinstance(block, dict) else None
        for name, raw in services.items() if isinstance(services, dict) else ():
            yield ("environments", written, "services", name), raw


def _deprecations(data: dict) -> list[Problem]:
    """Deprecated forms that are still read (warnings, not errors)."""
    out = []
    for path, raw in _workload_blocks(data):
        volumes = raw.get("volumes") if isinstance(raw, dict) else None
        for i, item in enumerate(volumes) if isinstance(volumes, list) else ():
            if isinstance(item, dict) and "targetPath" not in item and ("storage" in item or "path" in item):
                out.append(
                    (
                        (*path, "volumes", i),
                        "the {storage, path} volume form is deprecated: write "
                        "{type, targetPath, size} or 'name~storage:/path'",
                    )
                )
    return out


def _depends(services: dict) -> dict[str, list[str]]:
    """depends_on of every service as written (names only), valid or not."""
    out = {}
    for name, raw in services.items():
        deps = raw.get("depends_on") if isinstance(raw, dict) else None
        out[name] = [d for d in deps if isinstance(d, str)] if isinstance(deps, list) else []
    return out


def _partial_rules(section: str, name: str, raw: object) -> list[Problem]:
    """Resource rules of a workload that failed validation elsewhere, so they are not hidden."""
    if section == "addons" or not isinstance(raw, dict) or not isinstance(raw.get("resources"), dict):
        return []
    try:
        res = Resources.model_validate(raw["resources"])
    except ValidationError:
        return []
    return rules.check_resources(res, (section, name, "resources"))


def _validate_typed(
    filled: dict, environment: str | None, check_prod: bool, values: dict
) -> tuple[DiceYml | None, list[Problem]]:
    """Pydantic validation section by section (so one bad service hides nothing), then the rules."""
    problems: list[Problem] = []
    hint = _hint(environment, values)
    head = {k: v for k, v in filled.items() if k in TOP_KEYS and k not in ("services", "jobs", "addons")}
    try:
        doc = DiceYml.model_validate(head)
    except ValidationError as exc:
        problems += translate_raw(exc, model=DiceYml, value_hint=hint)
        doc = None
    typed: dict[str, dict] = {}
    for section, model in _SECTIONS:
        typed[section] = {}
        items = filled.get(section) or {}
        for name, raw in items.items():
            try:
                typed[section][name] = model.model_validate({} if raw is None else raw)
            except ValidationError as exc:
                problems += translate_raw(exc, prefix=(section, name), model=model, value_hint=hint)
                problems += _partial_rules(section, name, raw)
    services, jobs, addons = typed["services"], typed["jobs"], typed["addons"]
    if environment == PRODUCTION:
        # A bare `plan: <type>` takes the production default size (basic is refused there).
        addons = {
            name: a
            if a.size_given or a.type == "custom"
            else a.model_copy(update={"plan": f"{a.type}:{PRODUCTION_DEFAULT_SIZE}"})
            for name, a in addons.items()
        }
    problems += rules.check_workloads(services, jobs)
    problems += rules.check_depends_on(_depends(filled.get("services") or {}))
    problems += rules.check_addons(addons, filled.get("addons") or {}, environment if check_prod else None)
    if problems or doc is None:
        return None, problems
    doc = doc.model_copy(update={"services": services, "jobs": jobs, "addons": addons})
    doc._environment = environment
    return doc, []


def check_document(
    data: dict, lines: LineMap, *, environment: str | None = None, overlay: bool = False
) -> tuple[DiceYml | None, list[SpecError]]:
    """Validate loaded dice.yml data; returns (typed spec or None, every error found)."""
    problems: list[Problem] = []
    for key in data:
        if key not in TOP_KEYS:
            problems.append(((key,), f"unknown key '{key}'{did_you_mean(key, TOP_KEYS)}"))
    sections = {name: _mapping(data, name, problems) for name, _ in _SECTIONS}
    if len(sections["services"]) > MAX_SERVICES:
        problems.append(
            (("services",), f"too many services: {len(sections['services'])} (at most {MAX_SERVICES})")
        )
        return None, _errors(problems, lines)
    for name, _ in _SECTIONS:
        problems += rules.check_names(name, list(sections[name]))
    if not overlay:
        missing = []
        if "version" not in data:
            missing.append('version "2.0"')
        if not sections["services"] and not sections["jobs"]:
            missing.append("at least one service or job")
        if missing:
            problems.append(((), f"not a complete spec (an overlay?): it needs {' and '.join(missing)}"))
    blocks = _environment_blocks(data, problems, "environments")
    values = _environment_blocks(data, problems, "values")
    base = {**data, **sections}
    notes: list[Problem] = []  # warnings
    overlays = {
        env: (w, _overlay_of(w, b, sections["services"], problems, notes)) for env, (w, b) in blocks.items()
    }

    common = _common_values(values)

    def view(env: str | None) -> tuple[dict, OriginLines]:
        if env in overlays:
            written, block = overlays[env]
            merged = deep_merge(base, block)
            if "addons" in block:
                # An environment's addons, when given, replace the base set (as Erda's merge does).
                merged["addons"] = block["addons"]
            view_lines = OriginLines(
                lines, lines.prefixed(("environments", written)), ("environments", written)
            )
        else:
            merged, view_lines = base, OriginLines(lines)
        # Without a workspace, a placeholder keeps its default; one without a default that every
        # environment's values give is filled with the first one's value (for type checks); each
        # environment is then checked with its own.
        env_values = values.get(env, (None, {}))[1] if env else {}
        fallback = None if env else common
        filled = {k: (v if k == "values" else fill_values(v, env_values, fallback)) for k, v in merged.items()}
        return filled, view_lines

    filled, view_lines = view(environment)
    doc, found = _validate_typed(filled, environment, check_prod=True, values=values)
    problems += _relocate(found, view_lines)
    seen_paths = {path for path, _ in found}
    # Without a workspace, every environment is checked merged (errors only it causes are reported).
    checked = [e for e in ENVIRONMENTS if e in overlays or e in values]
    for env in checked if environment is None else ():
        filled, env_lines = view(env)
        _, found = _validate_typed(filled, env, check_prod=False, values=values)
        suffix = (
            f" (with environments.{overlays[env][0]} merged)"
            if env in overlays
            else f" (with values.{values[env][0]})"
        )
        for path, message in found:
            if path in seen_paths:
                continue  # one error per place: the base view's (or an earlier environment's) stands
            seen_paths.add(path)
            moved = _relocate([(path, message)], env_lines)[0]
            problems.append(moved if moved[0] != path else (path, message + suffix))
    problems += _platform_problems(data)
    errors = _errors(problems, lines, view_lines)
    if doc is not None and not errors:
        doc._warnings = _errors(notes + _deprecations(data), lines)
    return (doc if not errors else None), errors


def _relocate(problems: list[Problem], view_lines: OriginLines) -> list[Problem]:
    """Paths that an environment overlay supplied are reported under environments.<env>."""
    out = []
    for path, message in problems:
        origin = view_lines.origin(path)
        out.append(((*origin, *path) if origin else path, message))
    return out


def _errors(problems: list[Problem], lines: LineMap, view_lines: LineMap | None = None) -> list[SpecError]:
    out = []
    for path, message in problems:
        line = lines.get(path)
        if line is None and view_lines is not None:
            line = view_lines.nearest(path)
        if line is None:
            line = lines.nearest(path)
        out.append(SpecError(format_path(path), line, message))
    return sort_errors(out)


def _environment(workspace: str | None) -> str | None:
    return normalize_workspace(workspace) if workspace else None


def parse_dice_yml(
    text: str | bytes, *, source: str = "dice.yml", workspace: str | None = None, overlay: bool = False
) -> DiceYml:
    """Parse and validate a dice.yml for a workspace (or the base file); SpecInvalid lists every error.

    `workspace` is DEV/TEST/STAGING/PROD or development/... in any case (ValueError if unknown);
    `overlay=True` accepts a fragment (no version, no services) meant to be merged onto a spec.
    """
    environment = _environment(workspace)
    data, lines = load_yaml(text, source=source)
    doc, errors = check_document(data, lines, environment=environment, overlay=overlay)  # type: ignore[arg-type]
    if errors or doc is None:
        raise SpecInvalid(errors or [SpecError("", None, "invalid spec")])
    return doc


def validate_dice_yml(
    text: str | bytes, *, source: str = "dice.yml", workspace: str | None = None
) -> list[SpecError]:
    """Every error of a complete dice.yml (empty list when valid)."""
    return check_dice_yml(text, source=source, workspace=workspace)[0]


def check_dice_yml(
    text: str | bytes, *, source: str = "dice.yml", workspace: str | None = None
) -> tuple[list[SpecError], list[SpecError]]:
    """(errors, warnings) of a complete dice.yml; warnings (deprecated forms still read) are
    reported only when the file is valid."""
    try:
        doc = parse_dice_yml(text, source=source, workspace=workspace)
    except SpecInvalid as exc:
        return exc.errors, []
    return [], list(doc.warnings)


def merge_overlay(
    base_text: str | bytes,
    overlay_text: str | bytes,
    *,
    base_source: str = "dice.yml",
    overlay_source: str = "overlay.yml",
    workspace: str | None = None,
) -> DiceYml:
    """Merge an overlay file onto a base dice.yml (maps deep, lists replaced) and validate the result.

    Error lines point into the overlay for what it supplied, into the base file otherwise.
    """
    environment = _environment(workspace)
    base, base_lines = load_yaml(base_text, source=base_source)
    over, over_lines = load_yaml(overlay_text, source=overlay_source)
    merged = deep_merge(base, over)
    lines = OriginLines(base_lines, over_lines)
    doc, errors = check_document(merged, lines, environment=environment)  # type: ignore[arg-type]
    if errors or doc is None:
        raise SpecInvalid(errors or [SpecError("", None, "invalid spec")])
    return doc


def effective_spec(text: str | bytes, *, source: str = "dice.yml", workspace: str | None = None) -> dict:
    """The spec as it deploys to a workspace, as plain JSON-ready data (for release diffs)."""
    return parse_dice_yml(text, source=source, workspace=workspace).effective()
