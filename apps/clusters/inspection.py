"""The inspection: what in a cluster is broken or about to break, as findings with a severity."""

from __future__ import annotations

import datetime
from urllib.parse import urlencode

from django.urls import reverse
from django.utils import timezone

from apps.clusters import kube
from apps.clusters.choices import ClusterKind, Severity
from apps.clusters.models import Cluster, InspectionReport

PENDING_AFTER = 10 * 60  # seconds a pod may stay Pending before it is reported
CRASH_RESTARTS = 5
CERT_WARNING_DAYS = 21
CERT_CRITICAL_DAYS = 7
PVC_WARNING, PVC_CRITICAL = 0.80, 0.95
QUOTA_WARNING = 0.90
KEEP_REPORTS = 20


def _cmdb_link(text: str) -> str:
    return reverse("cmdb:items") + "?" + urlencode({"q": text})


def _finding(severity, check, obj, message, *, namespace="", org="", link="") -> dict:
    return {"severity": str(severity), "check": check, "object": obj, "namespace": namespace,
            "org": org, "message": message, "link": link}


def findings_from(cluster: Cluster, data: dict) -> list[dict]:
    """Pure: turn kube.inspection_data() into findings (tests feed it made-up data)."""
    out: list[dict] = []
    ns_org = {ns: labels.get("dice.io/org", "") for ns, labels in data.get("namespaces", {}).items()}
    node_link = cluster.get_absolute_url()
    for node in data["nodes"]:
        ready = next((c for c in node["conditions"] if c["type"] == "Ready"), None)
        if ready is None or ready["status"] != "True":
            why = (ready or {}).get("reason") or "no Ready condition"
            out.append(_finding(Severity.CRITICAL, "node_not_ready", node["name"], f"node is not ready ({why})",
                                link=f"{node_link}#node-{node['name']}"))
        for c in node["conditions"]:
            if c["type"] in ("MemoryPressure", "DiskPressure", "PIDPressure") and c["status"] == "True":
                out.append(_finding(Severity.WARNING, "node_pressure", node["name"], f"{c['type']}: {c['message']}",
                                    link=f"{node_link}#node-{node['name']}"))
    for pod in data["pods"]:
        ns, org = pod["namespace"], pod["labels"].get("dice.io/org", "") or ns_org.get(pod["namespace"], "")
        obj = f"{ns}/{pod['name']}"
        if "CrashLoopBackOff" in pod["waiting"]:
            out.append(_finding(Severity.CRITICAL, "pod_crashloop", obj,
                                f"crash-looping ({pod['restarts']} restarts)", namespace=ns, org=org,
                                link=_cmdb_link(ns)))
        elif pod["restarts"] >= CRASH_RESTARTS and pod["phase"] == "Running":
            out.append(_finding(Severity.WARNING, "pod_restarts", obj, f"{pod['restarts']} restarts",
                                namespace=ns, org=org, link=_cmdb_link(ns)))
        bad_wait = [w for w in pod["waiting"] if w in ("ImagePullBackOff", "ErrImagePull", "CreateContainerConfigError")]
        if bad_wait:
            out.append(_finding(Severity.WARNING, "pod_waiting", obj, ", ".join(bad_wait), namespace=ns, org=org,
                                link=_cmdb_link(ns)))
        if pod["phase"] == "Pending" and pod["age_seconds"] >= PENDING_AFTER:
            minutes = int(pod["age_seconds"] // 60)
            why = f": {pod['reason']}" if pod.get("reason") else ""
            out.append(_finding(Severity.WARNING, "pod_pending", obj, f"pending for {minutes} min{why}",
                                namespace=ns, org=org, link=_cmdb_link(ns)))
    now = datetime.datetime.fromisoformat(data["now"]) if data.get("now") else timezone.now()
    for cert in data["certificates"]:
        ns, obj = cert["namespace"], f"{cert['namespace']}/{cert['name']}"
        org = ns_org.get(ns, "")
        if not cert.get("not_after"):
            out.append(_finding(Severity.WARNING, "certificate", obj, cert.get("error") or "unreadable certificate",
                                namespace=ns, org=org))
            continue
        left = datetime.datetime.fromisoformat(cert["not_after"]) - now
        days = left.total_seconds() / 86400
        if days < 0:
            out.append(_finding(Severity.CRITICAL, "certificate", obj, f"expired on {cert['not_after'][:10]}",
                                namespace=ns, org=org))
        elif days < CERT_CRITICAL_DAYS:
            out.append(_finding(Severity.CRITICAL, "certificate", obj,
                                f"expires in {days:.0f} days ({cert['not_after'][:10]})", namespace=ns, org=org))
        elif days < CERT_WARNING_DAYS:
            out.append(_finding(Severity.WARNING, "certificate", obj,
                                f"expires in {days:.0f} days ({cert['not_after'][:10]})", namespace=ns, org=org))
    stats = data.get("volume_stats") or {}
    for pvc in data["pvcs"]:
        ns, obj = pvc["namespace"], f"{pvc['namespace']}/{pvc['name']}"
        org = ns_org.get(ns, "")
        usage = stats.get(obj)
        if usage is None:
            out.append(_finding(Severity.UNKNOWN, "pvc_usage", obj,
                                "usage unknown (no kubelet volume stats from this cluster)", namespace=ns, org=org))
            continue
        ratio = usage["used"] / usage["capacity"] if usage["capacity"] else 0
        if ratio >= PVC_WARNING:
            sev = Severity.CRITICAL if ratio >= PVC_CRITICAL else Severity.WARNING
            out.append(_finding(sev, "pvc_usage", obj, f"{ratio:.0%} full", namespace=ns, org=org))
    for q in data["quotas"]:
        ns = q["namespace"]
        for resource, hard in q["hard"].items():
            used = q["used"].get(resource)
            if used is None:
                continue
            try:
                h, u = kube.parse_quantity(hard), kube.parse_quantity(used)
            except ValueError:
                continue
            if h and u > h:
                sev, msg = Severity.CRITICAL, f"{resource}: {used} used, over the quota of {hard}"
            elif h and float(u / h) >= QUOTA_WARNING:
                sev, msg = Severity.WARNING, f"{resource}: {used} of {hard} used"
            elif not h and u:
                sev, msg = Severity.CRITICAL, f"{resource}: {used} used, quota is 0"
            else:
                continue
            out.append(_finding(sev, "quota", f"{ns}/{q['name']}", msg, namespace=ns, org=ns_org.get(ns, ""),
                                link=_cmdb_link(ns)))
    order = {Severity.CRITICAL: 0, Severity.WARNING: 1, Severity.UNKNOWN: 2, Severity.INFO: 3}
    out.sort(key=lambda f: (order.get(f["severity"], 9), f["check"], f["object"]))
    return out


def inspect_cluster(cluster: Cluster) -> InspectionReport:
    """Inspect the cluster now and keep the report (the last KEEP_REPORTS per cluster)."""
    findings, error = [], ""
    if cluster.kind == ClusterKind.KUBERNETES:
        from apps.clusters.services import session_for

        try:
            session = session_for(cluster)
            try:
                findings = findings_from(cluster, kube.inspection_data(session))
            finally:
                session.close()
        except kube.KubeError as exc:
            error = str(exc)
    counts = {s: sum(1 for f in findings if f["severity"] == s) for s in Severity.values}
    report = InspectionReport.objects.create(cluster=cluster, findings=findings, counts=counts, error=error)
    old = cluster.inspections.values_list("pk", flat=True)[KEEP_REPORTS:]
    InspectionReport.objects.filter(pk__in=list(old)).delete()
    return report


def visible_findings(user, report: InspectionReport) -> list[dict]:
    """Cluster managers see everything; others see cluster-wide findings and their organizations' ones."""
    from apps.clusters.scope import can_manage_cluster
    from apps.projects import scope
    from scheduler.base import dns_label

    if can_manage_cluster(user, report.cluster):
        return report.findings
    mine = {dns_label(o.slug) for o in scope.organizations_for(user)}
    return [f for f in report.findings if not f["namespace"] or (f["org"] and f["org"] in mine)]
