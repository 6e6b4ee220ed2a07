"""Clusters: registration with encrypted credentials, bad kubeconfigs, overcommit rules, permissions,
what the deploy code reads, the local sync, the inspection rules and the resource report."""

from __future__ import annotations

import base64
import datetime

import pytest
import yaml
from django.contrib.auth import get_user_model
from django.db import connection
from django.urls import reverse

from apps.clusters import services
from apps.clusters.choices import CheckStatus
from apps.clusters.models import Cluster, NamespaceUsage, Node
from apps.projects import services as project_services
from apps.projects.choices import Role
from tests.api_cases import ScopedAPICases, unique

SECRET_TOKEN = "tok-9f8e7d6c5b4a-very-secret"
# Nothing listens on port 1: the connectivity check fails at once, without DNS or waiting.
DEAD_SERVER = "https://127.0.0.1:1"


def kubeconfig(token: str = SECRET_TOKEN, server: str = DEAD_SERVER, contexts=("one", "two")) -> str:
    doc = {
        "apiVersion": "v1", "kind": "Config",
        "clusters": [{"name": "c", "cluster": {"server": server,
                                               "certificate-authority-data": base64.b64encode(b"ca").decode()}}],
        "users": [{"name": "u", "user": {"token": token}}],
        "contexts": [{"name": c, "context": {"cluster": "c", "user": "u"}} for c in contexts],
        "current-context": contexts[0],
    }
    return yaml.safe_dump(doc)


def register(user, name=None, **kwargs):
    """A cluster owned by the first organization the user manages clusters of (staff: platform-wide)."""
    from apps.clusters.scope import managed_organizations
    from apps.projects.models import Organization

    kwargs.setdefault("kubeconfig", kubeconfig())
    if "organization" not in kwargs and not user.is_superuser:
        kwargs["organization"] = Organization.objects.filter(pk__in=managed_organizations(user)).first()
    return services.register_cluster(user, name=name or unique("c"), **kwargs)


@pytest.fixture
def developer(tenant_a):
    user = tenant_a.add_user("dev-a", Role.DEVELOPER)
    _, key = project_services.create_token(user, name="t")
    from rest_framework.test import APIClient

    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    client.user = user
    return client


# ---- the API suite -----------------------------------------------------------------------------


class TestClusterAPI(ScopedAPICases):
    basename = "cluster"
    update_data = {"wildcard_domain": "apps.example.com", "ingress_class": "nginx"}

    def make(self, tenant):
        return register(tenant.owner, check=False)

    def lookup(self, obj):
        return obj.name

    def create_data(self, tenant):
        return {"name": unique("api"), "kubeconfig": kubeconfig(), "wildcard_domain": "x.example.com",
                "organization": tenant.org.slug}

    # An organization's clusters are its own; every organization also sees `local` (granted to all).
    def test_list_shows_only_own_organization(self, tenant_a, tenant_b):
        super().test_list_shows_only_own_organization(tenant_a, tenant_b)
        ids = self._ids(tenant_a.api().get(self.list_url(), {"limit": 1000}))
        assert Cluster.local().pk in ids


# ---- encryption at rest -----------------------------------------------------------------------


def test_processes_starting_together_make_one_standalone_key(settings, tmp_path, monkeypatch):
    """Web processes and workers that start together each ask for the key (the local cluster's
    sealed state files): one key is written, whole, and every one of them gets it."""
    import threading

    from apps.clusters import crypto

    monkeypatch.delenv("DICE_ENCRYPTION_KEY", raising=False)
    settings.DATA_DIR = str(tmp_path)
    keys: list[str] = []
    starts = [threading.Thread(target=lambda: keys.append(crypto._standalone_key())) for _ in range(16)]
    for thread in starts:
        thread.start()
    for thread in starts:
        thread.join()
    assert len(keys) == 16 and len(set(keys)) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["encryption_key"]
    assert (tmp_path / "encryption_key").read_text() == keys[0]


def test_credentials_are_encrypted_at_rest_and_never_shown(tenant_a):
    api = tenant_a.api()
    r = api.post("/api/clusters/", {"name": "enc", "server": DEAD_SERVER, "token": SECRET_TOKEN,
                                    "ca": "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"},
                 format="json")
    assert r.status_code == 201, r.content
    assert SECRET_TOKEN not in r.content.decode()
    assert r.json()["credentials"]["set"] is True
    assert r.json()["credentials"]["fingerprint"].startswith("sha256:")
    register(tenant_a.owner, name="enc2")
    with connection.cursor() as cur:
        cur.execute("SELECT * FROM clusters_cluster WHERE name IN ('enc', 'enc2')")
        rows = cur.fetchall()
    assert len(rows) == 2
    for row in rows:
        raw = " ".join(str(v) for v in row)
        assert SECRET_TOKEN not in raw
        assert base64.b64encode(SECRET_TOKEN.encode()).decode() not in raw
        assert "BEGIN CERTIFICATE" not in raw and "current-context" not in raw
    for name in ("enc", "enc2"):
        cluster = Cluster.objects.get(name=name)
        assert SECRET_TOKEN in services.cluster_ref(cluster).config["kubeconfig"]
        page = tenant_a.browser_client().get(cluster.get_absolute_url()).content.decode()
        assert SECRET_TOKEN not in page and "set (" in page
        detail = api.get(f"/api/clusters/{name}/").content.decode()
        assert SECRET_TOKEN not in detail and "kubeconfig_text" not in detail
    from apps.projects.models import AuditEvent

    assert not any(SECRET_TOKEN in str(e.after) + str(e.before) for e in AuditEvent.objects.all())


def test_connectivity_check_on_save_reports_an_unreachable_server(tenant_a):
    cluster = register(tenant_a.owner, name="dead")
    cluster.refresh_from_db()
    assert cluster.check_status == CheckStatus.ERROR
    assert cluster.check_report["reachable"] is False
    assert "cannot reach" in cluster.check_report["error"]
    page = tenant_a.browser_client().get(cluster.get_absolute_url()).content.decode()
    assert "Unreachable" in page and "cannot reach" in page


# ---- bad kubeconfigs ----------------------------------------------------------------------------


BAD_KUBECONFIGS = [
    ("not: [valid yaml", "not valid YAML"),
    ("- just\n- a list\n", "not valid YAML"),
    ("apiVersion: v1\nkind: Config\n", "no 'clusters' list"),
    (kubeconfig().replace("current-context: one", "current-context: nope"), "no context 'nope'"),
    (kubeconfig().replace(f"server: {DEAD_SERVER}", "insecure: true"), "server is missing"),
    (kubeconfig().replace(f"token: {SECRET_TOKEN}", "username: x"), "has no credentials"),
    (kubeconfig().replace("certificate-authority-data:", "certificate-authority: /etc/ca.crt\n    x:"),
     "refers to a file"),
    (kubeconfig().replace(f"token: {SECRET_TOKEN}", "exec: {command: aws}"), "command or auth provider"),
]


@pytest.mark.parametrize(("text", "message"), BAD_KUBECONFIGS)
def test_bad_kubeconfig_is_a_clear_error_and_creates_nothing(tenant_a, text, message):
    before = Cluster.objects.count()
    r = tenant_a.api().post("/api/clusters/", {"name": "bad", "kubeconfig": text}, format="json")
    assert r.status_code == 400, r.content
    assert message in str(r.json()["kubeconfig"]), r.json()
    assert Cluster.objects.count() == before


def test_unknown_context_names_the_contexts_there_are(tenant_a):
    r = tenant_a.api().post("/api/clusters/", {"name": "bad", "kubeconfig": kubeconfig(), "context": "three"},
                            format="json")
    assert r.status_code == 400
    assert "no context 'three' in the kubeconfig; it has: one, two" in str(r.json())
    assert not Cluster.objects.filter(name="bad").exists()


def test_bad_kubeconfig_upload_on_the_page_shows_the_error(tenant_a):
    from django.core.files.uploadedfile import SimpleUploadedFile

    client = tenant_a.browser_client()
    before = Cluster.objects.count()
    r = client.post(reverse("clusters:cluster_add"), {
        "name": "bad", "kubeconfig_file": SimpleUploadedFile("kubeconfig", b"::: nope: ["), **_ratios()})
    assert r.status_code == 200
    assert "not valid YAML" in r.content.decode()
    assert Cluster.objects.count() == before


def test_kubeconfig_contexts_are_listed_for_the_form(tenant_a):
    from django.core.files.uploadedfile import SimpleUploadedFile

    r = tenant_a.browser_client().post(reverse("clusters:kubeconfig_contexts"), {
        "kubeconfig_file": SimpleUploadedFile("kubeconfig", kubeconfig().encode())})
    body = r.content.decode()
    assert '<option value="one">one (current)</option>' in body and '<option value="two">two</option>' in body


def test_only_the_chosen_context_is_stored(tenant_a):
    text = kubeconfig()
    doc = yaml.safe_load(text)
    doc["users"].append({"name": "other", "user": {"token": "other-users-token"}})
    doc["contexts"].append({"name": "third", "context": {"cluster": "c", "user": "other"}})
    cluster = register(tenant_a.owner, name="ctx", kubeconfig=yaml.safe_dump(doc), context="two", check=False)
    stored = services.kubeconfig_text(cluster)
    assert "other-users-token" not in stored and yaml.safe_load(stored)["current-context"] == "two"
    assert cluster.context == "two" and cluster.api_server == DEAD_SERVER


# ---- overcommit -----------------------------------------------------------------------------------


def _ratios(**over):
    data = {f"{ws}_{r}_ratio": "1" for ws in ("DEV", "TEST", "STAGING", "PROD") for r in ("cpu", "mem")}
    data.update(over)
    return data


def test_prod_memory_overcommit_needs_the_switch(tenant_a):
    api = tenant_a.api()
    body = {"name": "oc", "kubeconfig": kubeconfig(), "overcommit_ratios": {"PROD": {"mem_ratio": 1.5}}}
    r = api.post("/api/clusters/", body, format="json")
    assert r.status_code == 400 and "allow_prod_mem_overcommit" in str(r.json())
    assert not Cluster.objects.filter(name="oc").exists()

    r = api.post("/api/clusters/", {**body, "allow_prod_mem_overcommit": True}, format="json")
    assert r.status_code == 201, r.content
    assert r.json()["overcommit"]["PROD"]["mem_ratio"] == 1.5
    # Turning the switch off while PROD overcommits memory is refused, and changes nothing.
    r = api.patch("/api/clusters/oc/", {"allow_prod_mem_overcommit": False}, format="json")
    assert r.status_code == 400
    assert Cluster.objects.get(name="oc").allow_prod_mem_overcommit is True
    page = tenant_a.browser_client().get("/clusters/oc/").content.decode()
    assert "Memory overcommit in PROD is on" in page


def test_ratios_below_one_and_unknown_workspaces_are_refused(tenant_a):
    cluster = register(tenant_a.owner, check=False)
    api = tenant_a.api()
    for bad in ({"DEV": {"cpu_ratio": 0.5}}, {"QA": {"cpu_ratio": 2}}, {"DEV": {"cpu_ratio": "x"}}):
        r = api.patch(f"/api/clusters/{cluster.name}/", {"overcommit_ratios": bad}, format="json")
        assert r.status_code == 400, (bad, r.content)
    r = api.patch(f"/api/clusters/{cluster.name}/", {"overcommit_ratios": {"DEV": {"cpu_ratio": 4, "mem_ratio": 2}}},
                  format="json")
    assert r.status_code == 200
    oc = services.overcommit_for(cluster, "dev")
    assert (oc.cpu_ratio, oc.mem_ratio, oc.allow_prod_mem_overcommit) == (4.0, 2.0, False)
    assert services.overcommit_for(cluster, "PROD").mem_ratio == 1.0


def test_edit_form_refuses_prod_memory_overcommit_without_the_switch(tenant_a):
    cluster = register(tenant_a.owner, check=False)
    client = tenant_a.browser_client()
    r = client.post(reverse("clusters:cluster_edit", args=[cluster.name]), _ratios(PROD_mem_ratio="2"))
    assert r.status_code == 200 and "allow_prod_mem_overcommit" in r.content.decode()
    r = client.post(reverse("clusters:cluster_edit", args=[cluster.name]),
                    {**_ratios(PROD_mem_ratio="2", DEV_cpu_ratio="3"), "allow_prod_mem_overcommit": "on",
                     "wildcard_domain": "apps.example.com"})
    assert r.status_code == 302
    cluster.refresh_from_db()
    assert cluster.wildcard_domain == "apps.example.com"
    assert services.overcommit_for(cluster, "PROD").mem_ratio == 2.0
    assert services.overcommit_for(cluster, "DEV").cpu_ratio == 3.0


# ---- permissions ----------------------------------------------------------------------------------


def test_non_ops_users_are_refused(tenant_a, developer):
    cluster = register(tenant_a.owner, check=False)
    Node.objects.create(cluster=cluster, name="n1")
    assert developer.get("/api/clusters/").status_code == 200
    assert developer.get(f"/api/clusters/{cluster.name}/nodes/").status_code == 200
    assert developer.post("/api/clusters/", {"name": "x", "kubeconfig": kubeconfig()},
                          format="json").status_code == 403
    assert developer.patch(f"/api/clusters/{cluster.name}/", {"wildcard_domain": "x.y"},
                           format="json").status_code == 403
    assert developer.delete(f"/api/clusters/{cluster.name}/").status_code == 403
    assert developer.post(f"/api/clusters/{cluster.name}/check/").status_code == 403
    assert developer.post(f"/api/clusters/{cluster.name}/sync/").status_code == 403
    assert developer.put(f"/api/clusters/{cluster.name}/nodes/n1/labels/", {"labels": ["dice/job"]},
                         format="json").status_code == 403
    assert developer.post(f"/api/clusters/{cluster.name}/inspection/").status_code == 403
    assert not Cluster.objects.filter(name="x").exists()
    from django.test import Client

    page = Client()
    page.force_login(developer.user)
    assert page.get(reverse("clusters:cluster_add")).status_code == 403
    assert page.get(reverse("clusters:cluster_edit", args=[cluster.name])).status_code == 403
    assert page.post(reverse("clusters:cluster_check", args=[cluster.name])).status_code == 403
    assert page.get(reverse("clusters:clusters")).status_code == 200
    assert "Add" not in page.get(reverse("clusters:clusters")).content.decode().split("<h2>Clusters</h2>")[1][:200]


def test_ops_role_may_manage_clusters(tenant_a):
    ops = tenant_a.add_user("ops-a", Role.OPS)
    cluster = register(ops, check=False)
    services.update_cluster(ops, cluster, storage_class="fast")
    assert Cluster.objects.get(pk=cluster.pk).storage_class == "fast"


def test_local_cluster_always_exists_and_cannot_be_deleted(tenant_a):
    api = tenant_a.api()
    assert api.get("/api/clusters/local/").json()["kind"] == "local"
    r = api.delete("/api/clusters/local/")
    assert r.status_code == 403 and "platform-wide" in str(r.json())  # an org's owner does not manage it
    staff = get_user_model().objects.create_superuser("root-local", password="pw")
    assert staff.is_superuser
    with pytest.raises(Exception, match="cannot be deleted"):
        services.delete_cluster(staff, Cluster.local())
    assert Cluster.objects.filter(name="local").exists()


def test_cluster_bound_to_a_workspace_cannot_be_deleted(tenant_a):
    cluster = register(tenant_a.owner, check=False)
    ws = tenant_a.project.workspaces.get(kind="DEV")
    project_services.update_workspace(tenant_a.owner, ws, cluster=cluster)
    r = tenant_a.api().delete(f"/api/clusters/{cluster.name}/")
    assert r.status_code == 400 and "bound" in str(r.json())


def test_workspace_binding_lists_every_cluster_and_needs_manage_clusters(tenant_a):
    cluster = register(tenant_a.owner, check=False)
    owner = tenant_a.browser_client()
    url = reverse("projects:workspace_edit", args=[tenant_a.org.slug, tenant_a.project.slug, "PROD"])
    page = owner.get(url).content.decode()
    assert f'value="{cluster.name}"' in page and 'value="local"' in page
    r = owner.post(url, {"cluster": cluster.name, "cpu_quota": "4", "mem_quota": "2048"})
    assert r.status_code == 302
    assert tenant_a.project.workspaces.get(kind="PROD").cluster == cluster
    dev = tenant_a.add_user("dev-bind", Role.DEVELOPER)
    from django.core.exceptions import PermissionDenied

    with pytest.raises(PermissionDenied):
        project_services.update_workspace(dev, tenant_a.project.workspaces.get(kind="DEV"), cluster=cluster)


# ---- what the deploy code reads ----------------------------------------------------------------


def test_cluster_ref_and_node_selector(tenant_a):
    cluster = register(tenant_a.owner, check=False, wildcard_domain="apps.example.com", ingress_class="nginx",
                       storage_class="fast")
    ref = services.cluster_ref(cluster)
    assert (ref.name, ref.kind, ref.wildcard_domain, ref.ingress_class, ref.storage_class) == (
        cluster.name, "kubernetes", "apps.example.com", "nginx", "fast")
    assert ref.config["context"] == "one" and "kind: Config" in ref.config["kubeconfig"]
    assert services.cluster_ref(Cluster.local()).kind == "local"

    Node.objects.create(cluster=cluster, name="a", labels={"dice/stateless-service": "true"})
    Node.objects.create(cluster=cluster, name="b", labels={"dice/workspace-prod": "true", "dice/job": "true"})
    assert services.node_selector_for(cluster, "PROD", "stateless") == {
        "dice/workspace-prod": "true", "dice/stateless-service": "true"}
    assert services.node_selector_for(cluster, "DEV", "stateful") == {}
    assert services.node_selector_for(cluster, "dev", "job") == {"dice/job": "true"}
    with pytest.raises(ValueError):
        services.node_selector_for(cluster, "DEV", "cron")


def test_node_labels_on_the_local_cluster_survive_the_sync(tenant_a):
    from apps.clusters.sync import sync_cluster
    from apps.cmdb.models import ConfigurationItem

    local = Cluster.local()
    sync_cluster(local)
    node = local.nodes.get()
    assert node.allocatable["cpu"] >= 1000 and node.ready
    r = tenant_a.api().put(f"/api/clusters/local/nodes/{node.name}/labels/", {"labels": ["dice/job"]},
                           format="json")
    assert r.status_code == 403  # local is platform-wide: staff label its node
    from rest_framework.test import APIClient

    staff = APIClient()
    staff.force_authenticate(get_user_model().objects.create_superuser("root-labels", password="pw"))
    r = staff.put(f"/api/clusters/local/nodes/{node.name}/labels/",
                  {"labels": ["dice/job", "dice/workspace-dev"]}, format="json")
    assert r.status_code == 200, r.content
    assert r.json()["dice_labels"] == ["dice/job", "dice/workspace-dev"]
    bad = staff.put(f"/api/clusters/local/nodes/{node.name}/labels/", {"labels": ["dice/gpu"]},
                             format="json")
    assert bad.status_code == 400 and "unknown dice label" in str(bad.json())
    sync_cluster(local)
    assert local.nodes.get().dice_labels == ["dice/job", "dice/workspace-dev"]
    host = ConfigurationItem.objects.get(kind="host", cluster=local)
    assert host.relations_out.get().target.kind == "cluster"


def test_beat_schedule_exists(db):
    from django_celery_beat.models import PeriodicTask

    tasks = set(PeriodicTask.objects.values_list("task", flat=True))
    assert {"dice.clusters.sync_all", "dice.clusters.inspect_all"} <= tasks


def test_pages_render(tenant_a):
    cluster = register(tenant_a.owner, check=False)
    Node.objects.create(cluster=cluster, name="n1", allocatable={"cpu": 4000, "memory": 8 * 1024 ** 3},
                        requests={"cpu": 3000, "memory": 1024 ** 3}, ready=True)
    client = tenant_a.browser_client()
    for url in (reverse("clusters:clusters"), cluster.get_absolute_url(), reverse("clusters:cluster_add"),
                reverse("clusters:cluster_edit", args=[cluster.name]), reverse("clusters:inspection", args=[cluster.name]),
                reverse("clusters:resources")):
        r = client.get(url)
        assert r.status_code == 200, url
    page = client.get(cluster.get_absolute_url()).content.decode()
    assert 'style="width: 75%"' in page and "dice/stateless-service" in page
    r = client.get(reverse("clusters:clusters"), {"q": cluster.name}, HTTP_HX_REQUEST="true",
                   HTTP_HX_TARGET="object-table")
    assert cluster.name in r.content.decode() and "<html" not in r.content.decode()


# ---- inspection ---------------------------------------------------------------------------------


def _cert_b64(days: int) -> str:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "shop.example.com")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(1).not_valid_before(now - datetime.timedelta(days=30))
            .not_valid_after(now + datetime.timedelta(days=days)).sign(key, hashes.SHA256()))
    return base64.b64encode(cert.public_bytes(serialization.Encoding.PEM)).decode()


def test_inspection_findings(db):
    from apps.clusters.inspection import findings_from
    from scheduler.kubernetes.inspect import _certificate_expiry

    cluster = Cluster.local()
    data = {
        "now": datetime.datetime.now(datetime.UTC).isoformat(),
        "namespaces": {"shop": {"dice.io/org": "a-org"}, "kube-system": {}},
        "nodes": [
            {"name": "n1", "conditions": [{"type": "Ready", "status": "False", "reason": "KubeletDown",
                                           "message": ""}], "unschedulable": False},
            {"name": "n2", "conditions": [{"type": "Ready", "status": "True", "reason": "", "message": ""}],
             "unschedulable": False},
        ],
        "pods": [
            {"namespace": "shop", "name": "web-1", "phase": "Running", "waiting": ["CrashLoopBackOff"],
             "restarts": 12, "labels": {"dice.io/org": "a-org"}, "age_seconds": 100, "reason": ""},
            {"namespace": "shop", "name": "web-2", "phase": "Pending", "waiting": [], "restarts": 0,
             "labels": {}, "age_seconds": 3600, "reason": "0/2 nodes are available: Insufficient cpu"},
            {"namespace": "shop", "name": "web-3", "phase": "Pending", "waiting": [], "restarts": 0,
             "labels": {}, "age_seconds": 30, "reason": ""},
        ],
        "certificates": [
            {"namespace": "shop", "name": "tls-soon", **_certificate_expiry(_cert_b64(3))},
            {"namespace": "shop", "name": "tls-later", **_certificate_expiry(_cert_b64(300))},
            {"namespace": "kube-system", "name": "tls-bad", **_certificate_expiry(base64.b64encode(b"x").decode())},
        ],
        "pvcs": [{"namespace": "shop", "name": "data", "capacity": 10 * 1024 ** 3, "phase": "Bound"},
                 {"namespace": "shop", "name": "full", "capacity": 100, "phase": "Bound"}],
        "volume_stats": {"shop/full": {"used": 97, "capacity": 100}},
        "quotas": [{"namespace": "shop", "name": "q", "hard": {"requests.cpu": "2", "pods": "10"},
                    "used": {"requests.cpu": "2500m", "pods": "9"}}],
    }
    findings = findings_from(cluster, data)
    got = {(f["check"], f["object"]): f for f in findings}
    assert got[("node_not_ready", "n1")]["severity"] == "critical"
    assert ("node_not_ready", "n2") not in got
    assert got[("pod_crashloop", "shop/web-1")]["severity"] == "critical"
    assert "Insufficient cpu" in got[("pod_pending", "shop/web-2")]["message"]
    assert ("pod_pending", "shop/web-3") not in got
    assert got[("certificate", "shop/tls-soon")]["severity"] == "critical"
    assert ("certificate", "shop/tls-later") not in got
    assert "not a PEM certificate" in got[("certificate", "kube-system/tls-bad")]["message"]
    assert got[("pvc_usage", "shop/data")]["severity"] == "unknown"
    assert got[("pvc_usage", "shop/full")]["severity"] == "critical"
    quota = [f for f in findings if f["check"] == "quota"]
    assert {f["severity"] for f in quota} == {"critical", "warning"}
    assert findings[0]["severity"] == "critical"  # most severe first
    assert got[("pod_crashloop", "shop/web-1")]["org"] == "a-org"


def test_inspection_findings_of_other_organizations_are_hidden(tenant_a, tenant_b):
    from apps.clusters.inspection import visible_findings
    from apps.clusters.models import InspectionReport

    cluster = register(tenant_a.owner, check=False)
    report = InspectionReport.objects.create(cluster=cluster, findings=[
        {"severity": "critical", "check": "node_not_ready", "object": "n1", "namespace": "", "org": "",
         "message": "", "link": ""},
        {"severity": "critical", "check": "pod_crashloop", "object": "a/x", "namespace": "a", "org": "a-org",
         "message": "", "link": ""},
        {"severity": "critical", "check": "pod_crashloop", "object": "b/x", "namespace": "b", "org": "b-org",
         "message": "", "link": ""},
    ])
    guest = tenant_b.add_user("guest-b", Role.GUEST)
    assert len(visible_findings(tenant_a.owner, report)) == 3  # owners manage their organization's cluster
    assert tenant_b.api().get(f"/api/clusters/{cluster.name}/inspection/").status_code == 404
    # A platform-wide cluster granted to both: only staff manage it, each organization sees its own.
    staff = get_user_model().objects.create_superuser("root-insp", password="pw")
    shared = register(staff, check=False, granted_to=[tenant_a.org, tenant_b.org])
    report.cluster = shared
    report.save()
    assert [f["object"] for f in visible_findings(guest, report)] == ["n1", "b/x"]
    assert [f["object"] for f in visible_findings(tenant_a.owner, report)] == ["n1", "a/x"]
    assert len(visible_findings(staff, report)) == 3
    r = tenant_b.api().get(f"/api/clusters/{shared.name}/inspection/")
    assert r.status_code == 200 and [f["object"] for f in r.json()["findings"]] == ["n1", "b/x"]


# ---- the resource report ---------------------------------------------------------------------------


def test_resource_report(tenant_a, tenant_b):
    cluster = register(tenant_a.owner, check=False, allow_prod_mem_overcommit=True,
                       overcommit={"PROD": {"cpu_ratio": 2, "mem_ratio": 1.5}})
    ws = tenant_a.project.workspaces.get(kind="PROD")
    project_services.update_workspace(tenant_a.owner, ws, cluster=cluster, cpu_quota=4, mem_quota=4096)
    Node.objects.create(cluster=cluster, name="n1", allocatable={"cpu": 8000, "memory": 16 * 1024 ** 3})
    mib = 1024 ** 2
    NamespaceUsage.objects.create(
        cluster=cluster, namespace="ns1", org="a-org", project="a-proj", workspace="PROD", pods=3,
        cpu_requests=1500, cpu_limits=3000, mem_requests=1024 * mib, mem_limits=2048 * mib)
    NamespaceUsage.objects.create(  # another org's project with the same slug does not count
        cluster=cluster, namespace="ns2", org="b-org", project="a-proj", workspace="PROD", pods=1,
        cpu_requests=9000, cpu_limits=9000)
    r = tenant_a.api().get("/api/reports/resources/", {"project": f"{tenant_a.org.slug}/{tenant_a.project.slug}"})
    assert r.status_code == 200
    rows = {row["workspace"]: row for row in r.json()["results"]}
    assert set(rows) == {"DEV", "TEST", "STAGING", "PROD"}
    prod = rows["PROD"]
    assert prod["cluster"] == cluster.name
    assert prod["requested"] == {"cpu": 1.5, "memory_mib": 1024}
    assert prod["limits"] == {"cpu": 3.0, "memory_mib": 2048}
    assert prod["quota"] == {"cpu": 4.0, "memory_mib": 4096}
    assert prod["saved"] == {"cpu": 1.5, "memory_mib": 512}
    assert prod["cluster_allocatable"]["cpu"] == 8.0
    assert prod["memory_overcommit_danger"] is True and "PROD!" in prod["warnings"][0]
    assert rows["DEV"]["requested"]["cpu"] == 0
    assert tenant_b.api().get("/api/reports/resources/", {"project": tenant_a.project.pk}).json()["count"] == 0
    page = tenant_a.browser_client().get(reverse("clusters:resources"), {"project": tenant_a.project.pk})
    assert page.status_code == 200 and "dangerous" in page.content.decode()


# ---- kubeconfig unit checks ---------------------------------------------------------------------


def test_token_credentials_build_a_kubeconfig():
    from apps.clusters.kubeconfig import KubeconfigError, from_token

    resolved = from_token("https://k8s.example:6443", "", "abc")
    assert resolved.server == "https://k8s.example:6443" and resolved.auth == "token"
    with pytest.raises(KubeconfigError, match="PEM"):
        from_token("https://k8s.example:6443", "not a cert", "abc")
    with pytest.raises(KubeconfigError, match="http"):
        from_token("k8s.example", "", "abc")
