"""Deploy-time placeholders of a ServiceGroup's spec, the same on every cluster kind.

`${platform.X}` (DICE_PROJECT_NAME, DICE_CLUSTER_NAME ...) is filled from the runtime's facts
before anything is rendered. `((KEY))` names a project config: it is filled only in envs and in a
service's registry credentials (`image_username`, `image_password`), so that a value that may be
secret stays out of commands and images, from ServiceGroup.secret_configs; each kind decides how the
filled value reaches the process (a Secret on Kubernetes: the variable's, or the pull secret).
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

REGISTRY_CREDENTIALS = ("image_username", "image_password")


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


def check_secret_placeholders(group: ServiceGroup) -> None:
    """Refuse `((KEY))` outside envs and registry credentials, and keys the console did not provide
    (before anything runs)."""
    if not secret_keys(group.spec):
        return
    data = group.spec.model_dump(mode="json", by_alias=True, exclude={"environments", "values"})
    for path, text in _strings(data, ()):
        if not has_secret(text):
            continue
        where = ".".join(str(p) for p in path)
        if not (len(path) >= 2 and path[-2] == "envs") and path[-1] not in REGISTRY_CREDENTIALS:
            raise ExecutorError(
                f"{where}: a project config placeholder (({text.split('((', 1)[1].split('))', 1)[0]})) is "
                "filled only in envs and in image_username/image_password, so that its value stays out of "
                "commands, images and manifests"
            )
        secret_env(text, group.secret_configs, where)


def secret_env(value: str, configs: dict[str, str], where: str) -> str:
    """An env value with its `((KEY))` placeholders filled; ExecutorError names a missing KEY."""
    try:
        return fill_secret(value, configs, where)
    except PlaceholderError as exc:
        raise ExecutorError(str(exc)) from None
