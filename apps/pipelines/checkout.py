"""What a git event gives a run: the params it fills (those named after an event field) and the
defaults of a `git-checkout` step, so a run started by a push or a merge request builds exactly
the commit that was pushed, with no param given by hand."""

from __future__ import annotations

from apps.pipelines import repos
from pipelineyml import PipelineYml

# The fields of a push or merge event a declared param of the same name takes.
EVENT_PARAMS = ("repo", "ref", "branch", "tag", "commit")
GIT_EVENTS = ("push", "merge")


def params_from_event(pipeline: PipelineYml, payload: dict) -> dict:
    """The declared params named after a field of the event (repo, ref, branch, tag, commit) with
    the event's value: the event is the truth for them, over the params' defaults."""
    declared = {p.name for p in pipeline.params}
    return {name: payload[name] for name in EVENT_PARAMS
            if name in declared and payload.get(name) not in (None, "")}


def checkout_defaults(params: dict, payload: dict, run_id: int | None = None) -> dict:
    """A git-checkout step of a run a push or merge request started: without `uri`/`url` it clones
    the event's repository; cloning that repository without a `commit`, it checks out the event's
    commit (not the branch head, which may have moved since). Cloning the console's hosted
    repository, it reads with the run's own credential (repos.checkout_token)."""
    if payload.get("event") not in GIT_EVENTS or not payload.get("repo"):
        return params
    params = dict(params)
    url = params.get("url") or params.get("uri")
    if not url:
        params["uri"] = url = payload["repo"]
    if payload.get("hosted") and url == payload["repo"] and run_id is not None and not params.get("username"):
        params["username"], params["password"] = f"{repos.RUN_USER_PREFIX}{run_id}", repos.checkout_token(run_id)
    same_branch = not params.get("branch") or params.get("branch") == payload.get("branch")
    if url == payload["repo"] and not params.get("commit") and payload.get("commit") and same_branch:
        params["commit"] = payload["commit"]
        params["branch"] = params.get("branch") or payload.get("branch") or ""
    return params
