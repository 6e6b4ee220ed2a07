"""Webhooks as GitHub, GitLab and Gitea send them: payloads shaped like the providers' documented
examples (tests/fixtures/webhooks/), signed as each provider signs, for push, tag push, deletion,
ping and merge (pull) requests; GitHub's form-encoded deliveries; signed bodies of unexpected
shapes; and the glob rules of branch patterns, one test per rule."""

from __future__ import annotations

import copy
import hashlib
import hmac
import json
import uuid
from pathlib import Path
from urllib.parse import urlencode

import pytest

from pipelineyml.globs import check_glob, glob_match, matches_any

FIXTURES = Path(__file__).parent / "fixtures" / "webhooks"
SECRET = "It's a Secret to Everybody"

PIPELINE = """\
version: "1.1"
on:
  push:
    branches: [main, master, develop, "feature/**"]
    tags: ["v*"]
  merge:
    branches: [main, master]
stages:
  - stage:
      - echo:
          params: {msg: "${{ triggers.push.commit }}"}
"""

EVENTS = {
    "github": {"push": "push", "tag_push": "push", "delete_push": "push", "ping": "ping",
               "pull_request": "pull_request"},
    "gitlab": {"push": "Push Hook", "tag_push": "Tag Push Hook", "delete_push": "Push Hook",
               "merge_request": "Merge Request Hook"},
    "gitea": {"push": "push", "tag_push": "push", "delete_push": "push", "delete": "delete",
              "pull_request": "pull_request"},
}


def fixture(name: str) -> dict:
    return json.loads((FIXTURES / f"{name}.json").read_text())


def signed_headers(provider: str, body: bytes, event: str, *, secret: str = SECRET, delivery: str | None = None,
                   content_type: str = "application/json") -> dict:
    """The headers each provider sends (as Django test-client META keys)."""
    delivery = delivery or str(uuid.uuid4())
    digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    if provider == "github":
        return {"HTTP_X_GITHUB_EVENT": event, "HTTP_X_GITHUB_DELIVERY": delivery,
                "HTTP_X_HUB_SIGNATURE_256": f"sha256={digest}", "HTTP_USER_AGENT": "GitHub-Hookshot/abc123"}
    if provider == "gitea":
        return {"HTTP_X_GITEA_EVENT": event, "HTTP_X_GITEA_DELIVERY": delivery, "HTTP_X_GITEA_SIGNATURE": digest}
    return {"HTTP_X_GITLAB_EVENT": event, "HTTP_X_GITLAB_EVENT_UUID": delivery, "HTTP_X_GITLAB_TOKEN": secret}


@pytest.fixture
def hooked(tenant_a):
    """tenant_a with a webhook secret and a definition listening to pushes, tags and merges."""
    from apps.pipelines import services

    services.set_config(tenant_a.owner, tenant_a.project, key="webhook_secret", value=SECRET, secret=True)
    services.save_definition(tenant_a.owner, tenant_a.app, source=PIPELINE, name="ci")
    return tenant_a


def deliver(tenant, provider: str, payload: dict, event: str, **kwargs):
    from rest_framework.test import APIClient

    body = json.dumps(payload).encode()
    return APIClient().post(f"/api/webhooks/{provider}/{tenant.app.pk}/", body, content_type="application/json",
                            **signed_headers(provider, body, event, **kwargs))


def runs():
    from apps.pipelines.models import PipelineRun

    return list(PipelineRun.objects.order_by("pk"))


# ---- pushes, tags, deletions, pings, merge requests ------------------------------------------------

PUSHES = [("github", "github_push", "main", "0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c", "Mona Lisa Octocat"),
          ("gitlab", "gitlab_push", "master", "da1560886d4f094c3e6c9ef40349f7d38b5d27d7", "GitLab dev user"),
          ("gitea", "gitea_push", "develop", "bffeb74224043ba2feb48d137756c8a9331c449a", "Gitea")]


@pytest.mark.parametrize(("provider", "name", "branch", "commit", "author"), PUSHES)
def test_a_push_starts_a_run_with_the_pushed_commit(hooked, provider, name, branch, commit, author):
    response = deliver(hooked, provider, fixture(name), EVENTS[provider]["push"])
    assert response.status_code == 202, response.content
    (run,) = runs()
    assert run.trigger == "push" and run.workspace == "DEV"
    payload = run.trigger_payload
    assert (payload["branch"], payload["commit"], payload["author"]) == (branch, commit, author)
    assert payload["repo"].endswith(".git")


@pytest.mark.parametrize("provider", ["github", "gitlab", "gitea"])
def test_a_tag_push_matches_on_push_tags(hooked, provider):
    response = deliver(hooked, provider, fixture(f"{provider}_tag_push"), EVENTS[provider]["tag_push"])
    assert response.status_code == 202, response.content
    (run,) = runs()
    assert run.trigger_payload["tag"] == "v1.0.0" and run.trigger_payload["branch"] == ""
    assert run.trigger_payload["commit"] and set(run.trigger_payload["commit"]) != {"0"}


@pytest.mark.parametrize(("provider", "name"), [("github", "github_delete_push"), ("gitlab", "gitlab_delete_push"),
                                                ("gitea", "gitea_delete_push"), ("gitea", "gitea_delete")])
def test_a_branch_deletion_starts_nothing(hooked, provider, name):
    event = EVENTS[provider]["delete" if name == "gitea_delete" else "delete_push"]
    response = deliver(hooked, provider, fixture(name), event)
    assert response.status_code == 200, response.content
    assert runs() == []
    notes = " ".join(response.json()["notes"])
    assert "feature/old deleted: no run started" in notes
    assert "no runtime 'feature-old' of this branch runs: nothing to remove" in notes


def test_a_branch_deletion_removes_the_branch_runtime_in_dev(hooked, settings, tmp_path):
    from apps.deploy import deployments
    from apps.deploy.models import Runtime
    from apps.deploy.services import create_release

    settings.DICE_DEPLOY_FILES = tmp_path / "files"
    settings.DICE_LOCAL_ROOT = tmp_path / "local"
    release = create_release(hooked.owner, hooked.app, spec_text=(
        'version: "2.0"\nservices:\n  web:\n    image: web:1\n    cmd: sleep 60\n    resources: {cpu: 0.1, mem: 32}\n'))
    branch_runtime = deployments.deploy(hooked.owner, hooked.app, "DEV", release=release,
                                        runtime_name="feature-old").runtime
    main_runtime = deployments.deploy(hooked.owner, hooked.app, "DEV", release=release, runtime_name="main").runtime

    response = deliver(hooked, "github", fixture("github_delete_push"), "push")
    assert response.status_code == 200, response.content
    assert "runtime feature-old in DEV removed" in response.json()["notes"]
    assert not Runtime.objects.filter(pk=branch_runtime.pk).exists()
    assert Runtime.objects.filter(pk=main_runtime.pk).exists()
    assert runs() == []


def test_a_branch_deletion_leaves_a_prod_runtime_to_people(hooked, settings, tmp_path):
    from apps.deploy import deployments
    from apps.deploy.models import Runtime
    from apps.deploy.services import create_release
    from apps.pipelines import services

    settings.DICE_DEPLOY_FILES = tmp_path / "files"
    settings.DICE_LOCAL_ROOT = tmp_path / "local"
    services.save_branch_rule(hooked.owner, hooked.project, pattern="feature/**", workspace="PROD")
    release = create_release(hooked.owner, hooked.app, spec_text=(
        'version: "2.0"\nservices:\n  web:\n    image: web:1\n    cmd: sleep 60\n    resources: {cpu: 0.1, mem: 32}\n'))
    runtime = deployments.deploy(hooked.owner, hooked.app, "PROD", release=release, runtime_name="feature-old").runtime
    response = deliver(hooked, "gitlab", fixture("gitlab_delete_push"), "Push Hook")
    assert response.status_code == 200
    assert any("left running" in note for note in response.json()["notes"])
    assert Runtime.objects.filter(pk=runtime.pk).exists()


def test_github_ping_is_answered_and_starts_nothing(hooked):
    response = deliver(hooked, "github", fixture("github_ping"), "ping")
    assert response.status_code == 200
    assert "ping received (hook 123456, events: push, pull_request)" in response.json()["notes"]
    assert runs() == []


MERGES = [("github", "github_pull_request", "pull_request", "new-topic", "main"),
          ("gitlab", "gitlab_merge_request", "Merge Request Hook", "ms-viewport", "master"),
          ("gitea", "gitea_pull_request", "pull_request", "develop", "master")]


@pytest.mark.parametrize(("provider", "name", "event", "source", "target"), MERGES)
def test_a_merge_request_into_a_listed_branch_runs_in_dev(hooked, provider, name, event, source, target):
    from apps.pipelines import services

    services.save_branch_rule(hooked.owner, hooked.project, pattern="**", workspace="PROD")
    response = deliver(hooked, provider, fixture(name), event)
    assert response.status_code == 202, response.content
    (run,) = runs()
    assert run.trigger == "merge" and run.workspace == "DEV"  # never the branch rule's PROD
    assert run.trigger_payload["source_branch"] == source and run.trigger_payload["target_branch"] == target


@pytest.mark.parametrize(("provider", "name", "event", "closing"), [
    ("github", "github_pull_request", "pull_request", {"action": "closed"}),
    ("gitea", "gitea_pull_request", "pull_request", {"action": "closed"}),
    ("gitlab", "gitlab_merge_request", "Merge Request Hook", {"object_attributes": {"action": "merge"}}),
    ("gitlab", "gitlab_merge_request", "Merge Request Hook", {"object_attributes": {"action": "update"}}),
])
def test_closing_or_relabelling_a_merge_request_runs_nothing(hooked, provider, name, event, closing):
    payload = fixture(name)
    for key, value in closing.items():
        if isinstance(value, dict):
            payload[key].update(value)
        else:
            payload[key] = value
    response = deliver(hooked, provider, payload, event)
    assert response.status_code == 200 and runs() == []


def test_github_form_encoded_delivery_is_read_like_json(hooked):
    from rest_framework.test import APIClient

    body = urlencode({"payload": json.dumps(fixture("github_push"))}).encode()
    response = APIClient().post(f"/api/webhooks/github/{hooked.app.pk}/", body,
                                content_type="application/x-www-form-urlencoded",
                                **signed_headers("github", body, "push"))
    assert response.status_code == 202, response.content
    assert runs()[0].trigger_payload["commit"] == "0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c"


def test_a_form_delivery_without_payload_is_a_400(hooked):
    from rest_framework.test import APIClient

    body = b"other=1"
    response = APIClient().post(f"/api/webhooks/github/{hooked.app.pk}/", body,
                                content_type="application/x-www-form-urlencoded",
                                **signed_headers("github", body, "push"))
    assert response.status_code == 400 and "payload" in response.json()["detail"]


# ---- signed bodies of unexpected shapes ------------------------------------------------------------

SHAPES = [
    ("github", "github_push", "push", {"repository": "octocat/Hello-World"}, "`repository` must be an object"),
    ("github", "github_push", "push", {"pusher": "octocat"}, "`pusher` must be an object"),
    ("github", "github_push", "push", {"commits": "many"}, "`commits` must be a list"),
    ("github", "github_push", "push", {"head_commit": {"author": "Mona", "message": "x"}},
     "`head_commit.author` must be an object"),
    ("github", "github_push", "push", {"ref": 7}, "`ref` must be a string"),
    ("gitlab", "gitlab_push", "Push Hook", {"commits": ["a"]}, "`commits[0]` must be an object"),
    ("gitlab", "gitlab_push", "Push Hook", {"project": []}, "`project` must be an object"),
    ("gitlab", "gitlab_merge_request", "Merge Request Hook", {"object_attributes": "x"},
     "`object_attributes` must be an object"),
    ("gitea", "gitea_push", "push", {"pusher": 1}, "`pusher` must be an object"),
    ("gitea", "gitea_pull_request", "pull_request", {"pull_request": {"head": "develop"}},
     "`pull_request.head` must be an object"),
]


@pytest.mark.parametrize(("provider", "name", "event", "change", "message"), SHAPES)
def test_a_signed_body_of_an_unexpected_shape_is_a_400(hooked, provider, name, event, change, message):
    payload = copy.deepcopy(fixture(name))
    payload.update(change)
    response = deliver(hooked, provider, payload, event)
    assert response.status_code == 400, response.content
    assert message in response.json()["detail"]
    assert runs() == []


@pytest.mark.parametrize("body", [b"[1, 2]", b'"push"', b"{not json", b"null"])
def test_a_signed_body_that_is_not_a_json_object_is_a_400(hooked, body):
    from rest_framework.test import APIClient

    response = APIClient().post(f"/api/webhooks/gitea/{hooked.app.pk}/", body, content_type="application/json",
                                **signed_headers("gitea", body, "push"))
    assert response.status_code == 400 and runs() == []


# ---- branch patterns: the providers' glob rules, one test per rule ---------------------------------


def test_glob_star_does_not_cross_a_slash():
    assert glob_match("feature/*", "feature/login")
    assert not glob_match("feature/*", "feature/old/login")
    assert not glob_match("*", "feature/old")


def test_glob_double_star_crosses_slashes():
    assert glob_match("feature/**", "feature/old/login")
    assert glob_match("**", "feature/old")
    assert glob_match("release/**/hotfix", "release/hotfix")  # `**/` may match nothing
    assert glob_match("release/**/hotfix", "release/1.x/2/hotfix")


def test_glob_question_mark_is_one_character_but_not_a_slash():
    assert glob_match("v?", "v1")
    assert not glob_match("v?", "v10")
    assert not glob_match("a?b", "a/b")


def test_glob_character_classes_and_their_negation():
    assert glob_match("release-[0-9]", "release-7")
    assert not glob_match("release-[0-9]", "release-x")
    assert glob_match("release-[!0-9]", "release-x")
    assert not glob_match("release-[!0-9]", "release-7")


def test_glob_braces_are_alternatives():
    assert glob_match("release/{v1,v2}", "release/v2")
    assert not glob_match("release/{v1,v2}", "release/v3")


def test_glob_other_characters_match_themselves():
    assert glob_match("v1.0+build", "v1.0+build")
    assert not glob_match("v1.0", "v1x0")
    assert glob_match(r"literal\*", "literal*") and not glob_match(r"literal\*", "literally")


def test_glob_lists_a_later_negation_excludes():
    assert matches_any(["feature/**", "!feature/old/**"], "feature/new/x")
    assert not matches_any(["feature/**", "!feature/old/**"], "feature/old/x")
    assert matches_any(["!main", "**"], "main")  # the last matching pattern decides


def test_an_unreadable_pattern_is_refused_where_it_is_written(tenant_a):
    from django.core.exceptions import ValidationError

    from apps.pipelines import services

    assert check_glob("feature/[x") is not None
    with pytest.raises(ValidationError) as info:
        services.save_branch_rule(tenant_a.owner, tenant_a.project, pattern="feature/[x", workspace="DEV")
    assert "not closed" in str(info.value)
    with pytest.raises(ValidationError) as info:
        services.save_definition(tenant_a.owner, tenant_a.app, name="bad",
                                 source=PIPELINE.replace('"feature/**"', '"feature/{a"'))
    assert "on.push.branches.3" in str(info.value)


def test_branch_rules_follow_the_glob_rules(tenant_a):
    from apps.pipelines import services, triggers

    services.save_branch_rule(tenant_a.owner, tenant_a.project, pattern="feature/*", workspace="TEST", priority=1)
    services.save_branch_rule(tenant_a.owner, tenant_a.project, pattern="feature/**", workspace="DEV", priority=2)
    assert triggers.workspace_for_branch(tenant_a.project.pk, "feature/login") == "TEST"
    assert triggers.workspace_for_branch(tenant_a.project.pk, "feature/old/login") == "DEV"  # `*` stopped at `/`
    assert triggers.workspace_for_branch(tenant_a.project.pk, "main") is None
