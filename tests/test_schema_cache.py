"""/api/schema/ is built once per process and format, then served from memory, byte for byte."""

import json

import yaml
from django.test import Client

from dice_console.schema import CachedSchemaView


def test_schema_is_built_once_per_format_and_served_from_memory(db, monkeypatch):
    CachedSchemaView.clear()
    builds = []
    original = CachedSchemaView._get_schema_response

    def counting(self, request):
        builds.append(request.accepted_media_type)
        return original(self, request)

    monkeypatch.setattr(CachedSchemaView, "_get_schema_response", counting)
    client = Client()
    first_json = client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    again_json = client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    first_yaml = client.get("/api/schema/")
    again_yaml = client.get("/api/schema/")
    assert len(builds) == 2, builds  # one JSON, one YAML build; the repeats came from memory
    assert first_json.content == again_json.content and first_yaml.content == again_yaml.content
    assert again_json["Content-Type"].startswith("application/vnd.oai.openapi+json")
    assert again_yaml["Content-Type"].startswith("application/vnd.oai.openapi")
    assert json.loads(again_json.content) == yaml.safe_load(again_yaml.content)
    assert "/api/releases/" in json.loads(again_json.content)["paths"]
    assert again_json["Content-Disposition"] == first_json["Content-Disposition"]
