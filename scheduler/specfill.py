"""Deploy-time placeholders of a ServiceGroup's spec, the same on every cluster kind.

`${platform.X}` (DICE_PROJECT_NAME, DICE_CLUSTER_NAME ...) is filled from the runtime's facts
before anything is rendered. `((KEY))` names a project config: it is filled only in envs and in
a service's image_username/image_password (a value that may be secret stays out of commands
and images), from ServiceGroup.secret_configs; each kind decides how the filled value reaches
the process (a Secret on Kubernetes).
"""

from __future__ import annotations

import dataclasses

from diceyml.placeholders import (
    PlaceholderError,
    fill_platform,
    fill_secret,
    has_secret,
    platform_values,
    secret_keys,
)
from scheduler.base import ExecutorError, ServiceGroup


def with_platform_values(group: ServiceGroup, cluster_name: str) -> ServiceGroup:
    """The group with every `${platform.X}` of its spec filled; ExecutorError names an unknown X."""
    rt = group.runtime
    values = platform_values(
        org=rt.org,
        project=rt.project,
        app=rt.app,
        workspace=rt.workspace,
        runtime=rt.name,
        cluster=group.cluster_name or cluster_name,
        runtime_id=rt.runtime_id,
    )
    try:
        spec = fill_platform(group.spec, values)
    except PlaceholderError as exc:
        raise ExecutorError(str(exc)) from None
    return group if spec is group.spec else dataclasses.replace(group, spec=spec)


def _strings(node, path: tuple):
    if isinstance(node, str):
        yield path, node
    elif isinstance(node, dict):
        for key, value in node.items():
            yield from _strings(value, (*path, key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _strings(value, (*path, i))


REGISTRY_FIELDS = ("image_username", "image_password")  # they become a registry Secret


def with_registry_credentials(group: ServiceGroup) -> ServiceGroup:
    """The group with `((KEY))` filled in its services' image_username/image_password (the
    Kubernetes renderer writes them into the registry pull Secret)."""
    changed = {}
    for name, svc in group.spec.services.items():
        update = {
            field: secret_env(getattr(svc, field), group.secret_configs, f"services.{name}.{field}")
            for field in REGISTRY_FIELDS
            if getattr(svc, field) and has_secret(getattr(svc, field))
        }
        if update:
            changed[name] = svc.model_copy(update=update)
    if not changed:
        return group
    spec = group.spec.model_copy(update={"services": {**group.spec.services, **changed}})
    spec._environment = group.spec.environment
    spec._warnings = list(group.spec.warnings)
    return dataclasses.replace(group, spec=spec)


def with_addon_options(group: ServiceGroup) -> ServiceGroup:
    """The group with `((KEY))` filled in its addons' options. A custom addon's filled options
    join the values given to the console (addon_secrets), which every kind keeps secret."""
    addons = dict(group.spec.addons)
    given = {k: dict(v) for k, v in group.addon_secrets.items()}
    changed = False
    for name, addon in group.spec.addons.items():
        filled = {
            k: secret_env(v, group.secret_configs, f"addons.{name}.options.{k}")
            for k, v in addon.options.items()
            if has_secret(v)
        }
        if not filled:
            continue
        changed = True
        if addon.type == "custom":
            addons[name] = addon.model_copy(
                update={"options": {k: v for k, v in addon.options.items() if k not in filled}}
            )
            given[name] = {**filled, **given.get(name, {})}
        else:
            addons[name] = addon.model_copy(update={"options": {**addon.options, **filled}})
    if not changed:
        return group
    spec = group.spec.model_copy(update={"addons": addons})
    spec._environment = group.spec.environment
    spec._warnings = list(group.spec.warnings)
    return dataclasses.replace(group, spec=spec, addon_secrets=given)


def check_secret_placeholders(group: ServiceGroup) -> None:
    """Refuse `((KEY))` outside envs and registry credentials, and keys the console did not
    provide (before anything runs)."""
    if not secret_keys(group.spec):
        return
    data = group.spec.model_dump(mode="json", by_alias=True, exclude={"environments", "values"})
    for path, text in _strings(data, ()):
        if not has_secret(text):
            continue
        where = ".".join(str(p) for p in path)
        in_options = len(path) == 4 and path[0] == "addons" and path[2] == "options"
        if len(path) < 2 or (path[-2] != "envs" and path[-1] not in REGISTRY_FIELDS and not in_options):
            raise ExecutorError(
                f"{where}: a project config placeholder (({text.split('((', 1)[1].split('))', 1)[0]})) is "
                "filled only in envs, image_username/image_password and addon options, so that its value "
                "stays out of commands, images and manifests"
            )
        secret_env(text, group.secret_configs, where)


def secret_env(value: str, configs: dict[str, str], where: str) -> str:
    """An env value with its `((KEY))` placeholders filled; ExecutorError names a missing KEY."""
    try:
        return fill_secret(value, configs, where)
    except PlaceholderError as exc:
        raise ExecutorError(str(exc)) from None
