"""The API's published contract, case by case (the fuzzer in test_api_contract.py found these):
pages and integer filters refuse what a database cannot hold with a 400 naming the parameter,
every error is a JSON object, the schema declares the 4xx answers, and responses match it."""

from __future__ import annotations

import pytest

TOO_BIG = str(2**63)


@pytest.mark.parametrize("limit", [TOO_BIG, "9223372036854775807", "1001", "0", "-1", "1e3", "1.5", "ten"])
def test_a_limit_outside_1_to_the_page_size_limit_is_a_400_naming_limit(tenant_a, limit):
    response = tenant_a.api().get("/api/projects/", {"limit": limit})
    assert response.status_code == 400, response.content
    assert "1000" in response.json()["limit"][0]


def test_the_page_size_limit_is_served_and_a_setting(tenant_a, settings):
    api = tenant_a.api()
    assert api.get("/api/audit-events/", {"limit": 1000}).status_code == 200
    settings.DICE_API_MAX_PAGE_SIZE = 5
    assert api.get("/api/audit-events/", {"limit": 5}).status_code == 200
    assert api.get("/api/audit-events/", {"limit": 6}).status_code == 400


@pytest.mark.parametrize("offset", [TOO_BIG, "-1", "2.0"])
def test_a_bad_offset_is_a_400_naming_offset(tenant_a, offset):
    response = tenant_a.api().get("/api/projects/", {"offset": offset})
    assert response.status_code == 400 and "offset" in response.json()


INTEGER_FILTERS = [
    ("/api/members/", "project"), ("/api/members/", "application"), ("/api/pipelines/", "application"),
    ("/api/deployments/", "application"), ("/api/deployments/", "runtime"), ("/api/deployments/", "release"),
    ("/api/runtimes/", "application"), ("/api/releases/", "application"), ("/api/releases/", "version"),
    ("/api/releases/", "pipeline_run_id"), ("/api/task-runs/", "run"), ("/api/branch-rules/", "project"),
    ("/api/project-configs/", "project"), ("/api/pipeline-runs/", "application"),
    ("/api/pipeline-runs/", "definition"),
]


@pytest.mark.parametrize(("path", "param"), INTEGER_FILTERS)
@pytest.mark.parametrize("value", ["1e20", TOO_BIG, "-" + TOO_BIG + "0", "1.5", "1e2"])
def test_an_integer_filter_beyond_int64_or_in_float_notation_is_a_400_naming_it(tenant_a, path, param, value):
    response = tenant_a.api().get(path, {param: value})
    assert response.status_code == 400, (path, param, value, response.content)
    assert param in response.json()


@pytest.mark.parametrize(("path", "param"), INTEGER_FILTERS[:4])
def test_an_integer_filter_still_filters(tenant_a, path, param):
    response = tenant_a.api().get(path, {param: "9223372036854775807"})
    assert response.status_code == 200 and response.json()["count"] == 0


@pytest.mark.parametrize("hours", ["1e20", "-1", "878401", "NaN", "Infinity"])
def test_cmdb_hours_out_of_range_is_a_400_naming_hours(tenant_a, hours):
    response = tenant_a.api().get("/api/cmdb/changes/", {"hours": hours})
    assert response.status_code == 400 and "hours" in response.json()


def test_cmdb_hours_in_range_works(tenant_a):
    assert tenant_a.api().get("/api/cmdb/changes/", {"hours": "878400"}).status_code == 200


def test_errors_are_json_objects_with_a_string_detail(tenant_a):
    api = tenant_a.api()
    unknown_url = api.get("/api/no-such-thing/1.5/")
    assert unknown_url.status_code == 404 and unknown_url["Content-Type"] == "application/json"
    assert unknown_url.json() == {"detail": "Not found."}
    bad_json = api.post("/api/projects/", b"{", content_type="application/json")
    assert bad_json.status_code == 400 and isinstance(bad_json.json()["detail"], str)
    sync = api.post("/api/clusters/local/sync/")  # refused by the service with a message
    assert isinstance(sync.json(), dict)
    if "detail" in sync.json():
        assert isinstance(sync.json()["detail"], str)


def _schema(client) -> dict:
    response = client.get("/api/schema/", {"format": "json"})
    assert response.status_code == 200
    return response.json()


def test_every_operation_declares_its_error_responses_with_bodies(client):
    schema = _schema(client)
    operations = [(path, method, op) for path, ops in schema["paths"].items() for method, op in ops.items()]
    assert len(operations) >= 100
    for path, method, op in operations:
        public = not op.get("security") or {} in op["security"]  # `{}`: credentials optional
        wanted = {"400", "403", "404"} | (set() if public else {"401"})
        missing = wanted - set(op["responses"])
        assert not missing, f"{method.upper()} {path} does not declare {missing}"
        for code in wanted:
            assert "application/json" in op["responses"][code]["content"], (path, method, code)
    webhook = schema["paths"]["/api/webhooks/{provider}/{app_id}/"]["post"]["responses"]
    assert {"200", "202", "400", "403", "404", "409"} <= set(webhook)
    assert schema["components"]["schemas"]["Error"]["required"] == ["detail"]


def test_schema_and_responses_agree_on_the_fields_the_fuzzer_caught(tenant_a, client):
    from apps.clusters.models import Cluster
    from apps.clusters.sync import sync_cluster

    schema = _schema(client)["components"]["schemas"]
    assert schema["AuditEvent"]["properties"]["organization"].get("nullable") is True
    assert schema["Item"]["properties"]["organization"].get("nullable") is True
    assert "format" not in schema["Cluster"]["properties"]["api_server"]

    api = tenant_a.api()
    local = api.get("/api/clusters/local/").json()
    assert local["api_server"] == ""
    sync_cluster(Cluster.local())
    nodes = api.get("/api/clusters/local/nodes/").json()
    assert set(nodes) == {"count", "next", "previous", "results"} and nodes["count"] >= 1


def test_inspection_post_is_201_as_documented(tenant_a, client):
    schema = _schema(client)["paths"]["/api/clusters/{name}/inspection/"]
    assert "201" in schema["post"]["responses"] and "200" not in schema["post"]["responses"]
    assert "200" in schema["get"]["responses"]
    response = tenant_a.api().post("/api/clusters/local/inspection/")
    assert response.status_code == 201, response.content
    assert {"cluster", "id", "created", "error", "counts", "findings"} <= set(response.json())
