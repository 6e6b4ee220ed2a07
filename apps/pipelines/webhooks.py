"""Git provider webhooks (GitHub, GitLab, Gitea) read as the providers document them: the body
(JSON, or GitHub's form-encoded `payload=`), the signature, the delivery id, and the event, checked
field by field, so a signed body of an unexpected shape is a 400 naming the field.

Events understood (anything else is answered 200 and ignored):
- push of a branch or tag; a push that deletes one (`deleted: true`, or `after` all zeros) is a
  deletion, and so are GitHub's and Gitea's `delete` events
- merge requests: GitHub and Gitea `pull_request`, GitLab `Merge Request Hook`; opened, reopened
  or updated with new commits is `merge`, closed or merged is `merge_end` (its preview goes)
- GitHub's `ping` (sent when the hook is made). GitLab and Gitea have no ping: their *Test*
  button sends a push.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass, field
from urllib.parse import parse_qs

PROVIDERS = ("github", "gitlab", "gitea")
ZERO_SHAS = frozenset({"0" * 40, "0" * 64})
MAX_BODY = 25 * 1024 * 1024  # GitHub caps payloads at 25 MB

EVENT_HEADERS = {"github": "X-GitHub-Event", "gitlab": "X-Gitlab-Event", "gitea": "X-Gitea-Event"}
DELIVERY_HEADERS = {"github": "X-GitHub-Delivery", "gitlab": "X-Gitlab-Event-UUID", "gitea": "X-Gitea-Delivery"}


class BadSignature(Exception):
    """The delivery is not signed with the application's webhook secret (or it has none)."""


class BadDelivery(Exception):
    """The body cannot be read, or a field has a shape the provider never sends."""


@dataclass
class GitEvent:
    """One delivery, reduced to what triggers need. `kind`: push, delete, merge, merge_end, ping or ignored."""

    kind: str
    provider: str
    ref: str = ""
    branch: str = ""
    tag: str = ""
    commit: str = ""
    repo: str = ""
    author: str = ""
    message: str = ""
    action: str = ""
    target_branch: str = ""
    number: int | None = None
    title: str = ""
    note: str = ""
    extra: dict = field(default_factory=dict)

    def payload(self) -> dict:
        """The trigger values a run keeps (`${{ triggers.<event>.<field> }}`)."""
        event = "push" if self.kind == "push" else self.kind
        values = {"event": event, "provider": self.provider, "ref": self.ref, "branch": self.branch,
                  "tag": self.tag, "commit": self.commit, "repo": self.repo, "author": self.author,
                  "message": self.message}
        if self.kind == "merge":
            values.update(action=self.action, source_branch=self.branch, target_branch=self.target_branch,
                          number=self.number, title=self.title)
        values.update(self.extra)
        return values


# ---- signature, body, delivery id -------------------------------------------------------------------


def verify(provider: str, secret: str | None, headers, body: bytes) -> None:
    """GitHub and Gitea sign the raw body (HMAC-SHA256); GitLab sends the secret as a token."""
    if not secret:
        raise BadSignature("no webhook secret")
    if provider == "github":
        given = headers.get("X-Hub-Signature-256", "")
        expected = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    elif provider == "gitea":
        given = headers.get("X-Gitea-Signature", "")
        expected = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    elif provider == "gitlab":
        given, expected = headers.get("X-Gitlab-Token", ""), secret
    else:
        raise BadSignature(f"unknown provider {provider!r}")
    if not given or not hmac.compare_digest(given.encode(), expected.encode()):
        raise BadSignature("signature mismatch")


def delivery_id(provider: str, headers) -> str:
    """The provider's id of this delivery ('' when it sends none); a redelivery keeps the same id."""
    return str(headers.get(DELIVERY_HEADERS[provider], "") or "").strip()[:100]


def read_body(headers, body: bytes) -> dict:
    """The JSON document, sent as JSON or (GitHub's default) form-encoded as `payload=<json>`."""
    content_type = str(headers.get("Content-Type", "")).split(";")[0].strip().lower()
    text = body
    if content_type == "application/x-www-form-urlencoded":
        try:
            form = parse_qs(body.decode("utf-8"), keep_blank_values=True, strict_parsing=False)
        except UnicodeDecodeError:
            raise BadDelivery("the form body is not UTF-8") from None
        if "payload" not in form:
            raise BadDelivery("a form-encoded delivery carries its JSON in the field `payload`; it is missing")
        text = form["payload"][0].encode()
    try:
        document = json.loads(text or b"{}")
    except RecursionError:
        raise BadDelivery("the JSON document is nested too deeply") from None
    except ValueError as exc:
        raise BadDelivery(f"the body is not JSON: {exc}") from None
    if not isinstance(document, dict):
        raise BadDelivery(f"the body must be a JSON object, not {_kind(document)}")
    return document


def event_name(provider: str, headers) -> str:
    return str(headers.get(EVENT_HEADERS[provider], "") or "").strip().lower()


# ---- reading fields by their documented shapes ------------------------------------------------------


def _kind(value) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean", type(None): "null"}.get(
        type(value), "a number")


def _obj(data: dict, key: str, where: str) -> dict:
    value = data.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise BadDelivery(f"`{where}` must be an object, not {_kind(value)}")
    return value


def _str(data: dict, key: str, where: str) -> str:
    value = data.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise BadDelivery(f"`{where}` must be a string, not {_kind(value)}")
    return value


def _objects(data: dict, key: str, where: str) -> list[dict]:
    value = data.get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        raise BadDelivery(f"`{where}` must be a list, not {_kind(value)}")
    for i, item in enumerate(value):
        if not isinstance(item, dict):
            raise BadDelivery(f"`{where}[{i}]` must be an object, not {_kind(item)}")
    return value


def _bool(data: dict, key: str, where: str) -> bool:
    value = data.get(key)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise BadDelivery(f"`{where}` must be a boolean, not {_kind(value)}")
    return value


def _int(data: dict, key: str, where: str) -> int | None:
    value = data.get(key)
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool):
        raise BadDelivery(f"`{where}` must be a number, not {_kind(value)}")
    return value


def _repo_url(payload: dict) -> str:
    repo = _obj(payload, "repository", "repository")
    project = _obj(payload, "project", "project")
    for source, name, key in ((repo, "repository", "clone_url"), (repo, "repository", "git_http_url"),
                              (project, "project", "git_http_url"), (project, "project", "http_url"),
                              (repo, "repository", "http_url"), (repo, "repository", "url")):
        value = _str(source, key, f"{name}.{key}")
        if value:
            return value
    return ""


def _split_ref(ref: str) -> tuple[str, str]:
    if ref.startswith("refs/heads/"):
        return ref.removeprefix("refs/heads/"), ""
    if ref.startswith("refs/tags/"):
        return "", ref.removeprefix("refs/tags/")
    return "", ""


# ---- events ------------------------------------------------------------------------------------------


def parse_event(provider: str, headers, payload: dict) -> GitEvent:
    name = event_name(provider, headers)
    handler = _HANDLERS.get((provider, name))
    if handler is None:
        return GitEvent(kind="ignored", provider=provider, note=f"event {name or '(none)'!r} is not used: ignored")
    return handler(provider, payload)


def _ping(provider: str, payload: dict) -> GitEvent:
    hook = _obj(payload, "hook", "hook")
    _str(payload, "zen", "zen")
    events = hook.get("events")
    if events is not None and not (isinstance(events, list) and all(isinstance(e, str) for e in events)):
        raise BadDelivery("`hook.events` must be a list of strings")
    listened = ", ".join(events or []) or "the default events"
    return GitEvent(kind="ping", provider=provider, repo=_repo_url(payload),
                    note=f"ping received (hook {hook.get('id', '?')}, events: {listened})")


def _push(provider: str, payload: dict) -> GitEvent:
    ref = _str(payload, "ref", "ref")
    if not ref:
        raise BadDelivery("a push names its `ref` (refs/heads/<branch> or refs/tags/<tag>)")
    branch, tag = _split_ref(ref)
    after = _str(payload, "after", "after")
    checkout_sha = _str(payload, "checkout_sha", "checkout_sha")
    commits = _objects(payload, "commits", "commits")
    head = _obj(payload, "head_commit", "head_commit")
    if not head and commits:
        head = commits[-1]
    where = "head_commit" if payload.get("head_commit") else f"commits[{len(commits) - 1}]"
    author = _str(_obj(head, "author", f"{where}.author"), "name", f"{where}.author.name")
    message = _str(head, "message", f"{where}.message")
    pusher = _obj(payload, "pusher", "pusher")
    user_name = _str(payload, "user_name", "user_name")
    pusher_name = (_str(pusher, "name", "pusher.name") or _str(pusher, "full_name", "pusher.full_name")
                   or _str(pusher, "login", "pusher.login"))
    deleted = _bool(payload, "deleted", "deleted") or after in ZERO_SHAS
    event = GitEvent(
        kind="delete" if deleted else "push", provider=provider, ref=ref, branch=branch, tag=tag,
        commit="" if deleted else (after or checkout_sha), repo=_repo_url(payload),
        author=author or user_name or pusher_name, message=message,
    )
    if not branch and not tag:
        event.kind, event.note = "ignored", f"{ref} is neither a branch nor a tag: ignored"
    return event


def _delete_event(provider: str, payload: dict) -> GitEvent:
    """GitHub's and Gitea's `delete` event: `ref` is the bare name, `ref_type` branch or tag."""
    ref = _str(payload, "ref", "ref")
    ref_type = _str(payload, "ref_type", "ref_type")
    if not ref or ref_type not in ("branch", "tag"):
        raise BadDelivery("a delete event names its `ref` and its `ref_type` (branch or tag)")
    sender = _obj(payload, "sender", "sender")
    return GitEvent(
        kind="delete", provider=provider, ref=f"refs/{'heads' if ref_type == 'branch' else 'tags'}/{ref}",
        branch=ref if ref_type == "branch" else "", tag=ref if ref_type == "tag" else "",
        repo=_repo_url(payload), author=_str(sender, "login", "sender.login"),
    )


# Merge request actions that put new code up for review; closing or merging ends the request's
# preview (merge_end); the others (edited, labelled...) start nothing. A merge is followed by its
# own push.
GITHUB_PR_ACTIONS = {"opened": "opened", "synchronize": "updated", "synchronized": "updated",
                     "reopened": "reopened"}
GITLAB_MR_ACTIONS = {"open": "opened", "update": "updated", "reopen": "reopened"}


def _github_pull_request(provider: str, payload: dict) -> GitEvent:
    action = _str(payload, "action", "action")
    pr = _obj(payload, "pull_request", "pull_request")
    if not pr:
        raise BadDelivery("a pull_request event carries the object `pull_request`")
    head, base = _obj(pr, "head", "pull_request.head"), _obj(pr, "base", "pull_request.base")
    user = _obj(pr, "user", "pull_request.user")
    event = GitEvent(
        kind="merge", provider=provider, action=GITHUB_PR_ACTIONS.get(action, action),
        ref=f"refs/heads/{_str(head, 'ref', 'pull_request.head.ref')}",
        branch=_str(head, "ref", "pull_request.head.ref"), target_branch=_str(base, "ref", "pull_request.base.ref"),
        commit=_str(head, "sha", "pull_request.head.sha"), title=_str(pr, "title", "pull_request.title"),
        number=_int(payload, "number", "number") or _int(pr, "number", "pull_request.number"),
        repo=_repo_url(payload), author=_str(user, "login", "pull_request.user.login"),
    )
    if action == "closed":
        # Closed, merged or not: its preview environment goes (a merge is followed by its own push).
        event.kind, event.action = "merge_end", "merged" if pr.get("merged") is True else "closed"
    elif action not in GITHUB_PR_ACTIONS:
        event.kind, event.note = "ignored", f"pull request {action!r}: nothing to run"
    return event


def _gitlab_merge_request(provider: str, payload: dict) -> GitEvent:
    attrs = _obj(payload, "object_attributes", "object_attributes")
    if not attrs:
        raise BadDelivery("a merge request event carries the object `object_attributes`")
    action = _str(attrs, "action", "object_attributes.action")
    last = _obj(attrs, "last_commit", "object_attributes.last_commit")
    user = _obj(payload, "user", "user")
    source = _str(attrs, "source_branch", "object_attributes.source_branch")
    event = GitEvent(
        kind="merge", provider=provider, action=GITLAB_MR_ACTIONS.get(action, action), ref=f"refs/heads/{source}",
        branch=source, target_branch=_str(attrs, "target_branch", "object_attributes.target_branch"),
        commit=_str(last, "id", "object_attributes.last_commit.id"),
        message=_str(last, "message", "object_attributes.last_commit.message"),
        title=_str(attrs, "title", "object_attributes.title"),
        number=_int(attrs, "iid", "object_attributes.iid"), repo=_repo_url(payload),
        author=_str(user, "name", "user.name") or _str(user, "username", "user.username"),
    )
    # An `update` without `oldrev` changed the title or labels, not the code.
    if action in ("close", "merge"):
        event.kind, event.action = "merge_end", "merged" if action == "merge" else "closed"
    elif action not in GITLAB_MR_ACTIONS or (action == "update" and not _str(attrs, "oldrev", "object_attributes.oldrev")):
        event.kind, event.note = "ignored", f"merge request {action!r} without new commits: nothing to run"
    return event


# The events each provider sends that start or end something (Gitea's hooks are GitHub's shapes).
_HANDLERS = {
    ("github", "ping"): _ping,
    ("github", "push"): _push,
    ("github", "delete"): _delete_event,
    ("github", "pull_request"): _github_pull_request,
    ("gitlab", "push hook"): _push,
    ("gitlab", "tag push hook"): _push,
    ("gitlab", "merge request hook"): _gitlab_merge_request,
    ("gitea", "push"): _push,
    ("gitea", "delete"): _delete_event,
    ("gitea", "pull_request"): _github_pull_request,
}
