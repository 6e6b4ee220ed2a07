"""Catalog of the built-in action types: the params and outputs each one declares."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ActionTypeSpec:
    """A built-in action type. `params`/`outputs` of None mean free-form (not checked)."""

    name: str
    description: str
    params: frozenset[str] | None = None
    outputs: frozenset[str] | None = None
    # Params whose values must be integers >= 0 (checked only when not a ${{ }} reference).
    int_params: frozenset[str] = frozenset()


def _spec(
    name: str,
    description: str,
    *,
    params: tuple[str, ...] | None = None,
    outputs: tuple[str, ...] | None = None,
    int_params: tuple[str, ...] = (),
) -> ActionTypeSpec:
    return ActionTypeSpec(
        name=name,
        description=description,
        params=frozenset(params) if params is not None else None,
        outputs=frozenset(outputs) if outputs is not None else None,
        int_params=frozenset(int_params),
    )


BUILTIN_ACTIONS: dict[str, ActionTypeSpec] = {
    spec.name: spec
    for spec in (
        _spec(
            "git-checkout",
            "clone a git repository into the action's directory",
            # `uri` is the name real Erda files use; `url` is accepted as its synonym.
            params=("url", "uri", "branch", "commit", "depth", "username", "password"),
            outputs=("commit", "branch", "author", "message"),
            int_params=("depth",),
        ),
        # Scripts write free-form outputs (`key=value` in $METAFILE), so any output key is allowed.
        _spec("custom-script", "run the action's commands in its image", params=None, outputs=None),
        # release and dice take many params in real files (image maps, dice_yml ...): not checked.
        # `releaseID` is Erda's name of the same value as `release_id` (Erda's CI pipelines use it).
        _spec(
            "release",
            "build a release from dice.yml and an image map",
            outputs=("release_id", "releaseID", "version"),
        ),
        # A pipeline.yml called as an action (Erda `snippet`): its outputs are the called pipeline's.
        _spec("snippet", "run another pipeline.yml as one action", params=None, outputs=None),
        _spec("dice", "deploy a release onto a runtime", outputs=("runtime_id", "deployment_id", "preview_url")),
        _spec("manual-review", "wait for a person to approve", outputs=()),
        _spec(
            "wait", "sleep for a while", params=("wait_time_sec",), outputs=(), int_params=("wait_time_sec",)
        ),
        _spec("echo", "print a message", params=("msg",), outputs=()),
        # Erda's flink action; `bigDataConf` is the same params as one JSON string.
        _spec(
            "flink",
            "run a Flink job on the workspace's Flink data cluster",
            params=("resource", "class", "args", "flinkConf", "bigDataConf", "detach", "name"),
            outputs=("job_name", "cluster", "state"),
        ),
        _spec(
            "image-build",
            "build an OCI image from a Dockerfile without a daemon and push it to the registry",
            params=("context", "dockerfile", "image", "tag"),
            outputs=("image", "digest", "image_ref"),
        ),
        _spec(
            "cluster-inspect",
            "inspect a cluster and store the report",
            params=("cluster", "fail_on"),
            outputs=("critical", "warning", "info", "unknown", "report_id", "cluster"),
        ),
    )
}


def lookup(action_type: str) -> ActionTypeSpec | None:
    """The built-in spec of `action_type`, or None for types outside the catalog (not checked)."""
    return BUILTIN_ACTIONS.get(action_type)
