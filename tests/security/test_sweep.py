"""The sweep: every operation of /api/schema/, tried by users of two organizations with every role
(plus staff and an outsider), against the live server. Organization alpha owns the objects named
in the paths; beta's users, the outsider and alpha's read-only members attack them.

A leak is: a 2xx from a user of another organization on an alpha object; an alpha string in a 2xx
body shown to someone outside alpha (or, for alpha's narrower members, a project they cannot see);
a secret value in any response; a successful write by a read-only member. The counts are printed
(`pytest -s`) and every leak is listed when the test fails."""

from __future__ import annotations

import re
from collections import Counter

import yaml

from tests.security.conftest import http

SECRET_VALUE = "sweep-secret-value-7f3a"
SPEC = 'version: "2.0"\nservices:\n  web:\n    cmd: sleep 60\n    resources: {cpu: 0.1, mem: 32}\n'
PIPELINE = 'version: "1.1"\nstages:\n  - stage:\n      - echo: {params: {msg: hi}}\n'
READ_ONLY = {"alpha:guest", "alpha:app-guest"}
# Writes that a read-only member or another organization's user may make: their own token, and
# stateless validation.
OWN_WRITES = {("post", "/api/tokens/"), ("post", "/api/spec/validate/")}


def _kubeconfig() -> str:
    return yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "c",
        "clusters": [{"name": "c", "cluster": {"server": "https://127.0.0.1:1"}}],
        "users": [{"name": "u", "user": {"token": "t"}}],
        "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}],
    })


def _seed(world) -> dict:
    """Objects of alpha for every kind of path parameter (staff-made or the owner's own)."""
    from apps.clusters import services as cluster_services
    from apps.clusters.models import Node
    from apps.cmdb.models import ConfigurationItem
    from apps.deploy import deployments
    from apps.deploy import services as deploy_services
    from apps.pipelines import services as pipeline_services
    from apps.projects.models import ApiToken, AuditEvent, Member

    a, owner = world.a, world.a.users["owner"]
    cluster = cluster_services.register_cluster(owner, name="alpha-prod", kubeconfig=_kubeconfig(),
                                                organization=a.org, check=False)
    Node.objects.create(cluster=cluster, name="n1")
    config = pipeline_services.set_config(owner, a.project, key="DB_PASSWORD", value=SECRET_VALUE, secret=True)
    rule = pipeline_services.save_branch_rule(owner, a.project, pattern="main", workspace="DEV")
    definition = pipeline_services.save_definition(owner, a.app, name="ci", source=PIPELINE)
    run = pipeline_services.start_run(owner, a.app, definition=definition, workspace="DEV")
    release = deploy_services.create_release(owner, a.app, spec_text=SPEC)
    deployment = deployments.deploy(owner, a.app, "DEV", release=release, runtime_name="main")
    item = ConfigurationItem.objects.filter(organization=a.org).first()
    return {
        "/api/applications/": a.app.pk, "/api/projects/": a.other_project.pk, "/api/orgs/": a.org.slug,
        "/api/audit-events/": AuditEvent.objects.filter(organization=a.org).latest("id").pk,
        "/api/branch-rules/": rule.pk, "/api/clusters/": cluster.name,
        "/api/cmdb/changes/": 999999, "/api/cmdb/items/": item.pk if item else 999999,
        "/api/deployments/": deployment.pk, "/api/members/": Member.objects.get(user=owner).pk,
        "/api/pipeline-runs/": run.pk, "/api/pipelines/": definition.pk, "/api/project-configs/": config.pk,
        "/api/releases/": release.pk, "/api/runtimes/": deployment.runtime_id,
        "/api/task-runs/": run.tasks.first().pk, "/api/tokens/": ApiToken.objects.filter(user=owner).first().pk,
        "/api/workspaces/": a.project.workspaces.get(kind="PROD").pk,
        "node": "n1", "provider": "github", "app_id": a.app.pk,
        "values": {"organization": a.org.slug, "project": a.project.pk, "application": a.app.pk,
                   "release": release.pk, "release_id": release.pk, "cluster": cluster.name,
                   "definition": definition.pk, "runtime": deployment.runtime_id},
    }


def _path(template: str, seed: dict) -> str:
    collection = template.split("{", 1)[0]

    def fill(match):
        name = match.group(1)
        if name in seed:
            return str(seed[name])
        return str(seed.get(collection, 999999))

    return re.sub(r"{([^}]+)}", fill, template)


def _resolve(schema: dict, node: dict) -> dict:
    while "$ref" in node:
        node = schema["components"]["schemas"][node["$ref"].rsplit("/", 1)[-1]]
    return node


def _body(schema: dict, operation: dict, seed: dict) -> dict | None:
    content = (operation.get("requestBody") or {}).get("content") or {}
    media = content.get("application/json") or next(iter(content.values()), None)
    if not media:
        return None
    node = _resolve(schema, media.get("schema") or {})
    named = {**seed["values"], "username": "outsider", "role": "owner", "workspace": "PROD", "key": "sweep_key",
             "value": "v", "secret": False, "source": PIPELINE, "spec_text": SPEC, "pattern": "main",
             "kubeconfig": _kubeconfig(), "labels": ["dice/job"], "name": "sweep-x", "slug": "sweep-x",
             "repo_url": "https://git.example/x.git", "protected": False, "granted_to": ["beta-org"]}
    body = {}
    for key, prop in (node.get("properties") or {}).items():
        prop = _resolve(schema, prop)
        if prop.get("readOnly"):
            continue
        if key in named:
            body[key] = named[key]
        else:
            body[key] = {"string": "sweep", "integer": 1, "number": 1, "boolean": True, "array": [],
                         "object": {}}.get(prop.get("type"), "sweep")
    return body


def _markers(label: str) -> list[str]:
    """Strings that must not appear in a 2xx body shown to this user."""
    if label in ("staff",) or label.startswith("alpha:") and label not in ("alpha:app-guest", "alpha:proj-lead"):
        return [SECRET_VALUE]
    if label.startswith("alpha:"):
        return [SECRET_VALUE, "alpha-hidden"]
    return [SECRET_VALUE, "alpha-org", "alpha-proj", "alpha-app", "alpha-prod", "alpha-owner"]


def test_sweep_every_operation_with_every_role(live, world):
    seed = _seed(world)
    schema = http(live, world.token(world.staff)).get("/api/schema/", params={"format": "json"}).json()
    users = [(label, user) for label, user in world.all_users()]
    tried, statuses, leaks, per_user = 0, Counter(), [], Counter()
    operations = [(path, method, op) for path, ops in sorted(schema["paths"].items())
                  for method, op in ops.items() if method in ("get", "post", "put", "patch", "delete")]
    # Read-only first, then writes; within each, attackers only for writes (authorized changes
    # are not what the sweep is about, and would change the objects under the others' feet).
    for path, method, op in operations:
        url = _path(path, seed)
        on_alpha_object = "{" in path and not path.startswith("/api/webhooks/")
        for label, user in users:
            outsider = not (label == "staff" or label.startswith("alpha:"))
            if method != "get" and not (outsider or label in READ_ONLY):
                continue
            client = http(live, world.token(user))
            body = _body(schema, op, seed) if method in ("post", "put", "patch") else None
            response = client.request(method.upper(), url, json=body)
            tried += 1
            per_user[label] += 1
            statuses[response.status_code // 100] += 1
            ok = 200 <= response.status_code < 300
            where = f"{label} {method.upper()} {url} -> {response.status_code}"
            if ok and outsider and on_alpha_object:
                leaks.append(f"{where}: another organization's object")
            if ok and method != "get" and (method, path) not in OWN_WRITES:
                leaks.append(f"{where}: a write by a user who may not write here")
            if ok:
                for marker in _markers(label):
                    if marker in response.text:
                        leaks.append(f"{where}: {marker!r} in the body")
    refusals = sum(n for klass, n in statuses.items() if klass == 4)
    print(f"\nsweep: {len(operations)} operations x {len(users)} users: {tried} requests tried, "
          f"{refusals} refused (4xx), {statuses[2]} allowed (2xx), {statuses[5]} server errors, {len(leaks)} leaks")
    assert statuses[5] == 0, "server errors in the sweep"
    assert not leaks, "\n".join(leaks)
