"""Every real dice.yml of the Erda corpus parses; the overlay fragment is valid only merged onto its base.
The conformance tier: the corpus is read in place from ../shared (tests/conftest.py)."""

from __future__ import annotations

import json

import pytest

from diceyml import effective_spec, merge_overlay, parse_dice_yml, validate_dice_yml
from speckit import SpecInvalid
from tests.conftest import CONFORMANCE

pytestmark = pytest.mark.conformance

CORPUS = CONFORMANCE / "dice"
OVERLAY = "pkg_parser_diceyml_samples_dice_test.yml"
OVERLAY_BASE = "pkg_parser_diceyml_samples_dice.yml"
FILES = sorted(p.name for p in CORPUS.glob("*.yml") if p.name != OVERLAY)


def read(name: str) -> str:
    return (CORPUS / name).read_text(encoding="utf-8")


def test_corpus_is_there():
    assert "erda.yml" in FILES and (CORPUS / OVERLAY).exists()


@pytest.mark.parametrize("name", FILES)
@pytest.mark.parametrize("workspace", [None, "DEV", "test", "Staging"])
def test_corpus_file_parses(name, workspace):
    doc = parse_dice_yml(read(name), source=name, workspace=workspace)
    assert doc.version == "2.0"
    assert doc.services or doc.jobs
    json.dumps(doc.effective())


@pytest.mark.parametrize("name", FILES)
def test_corpus_file_in_prod_only_refuses_basic_addons(name):
    errors = validate_dice_yml(read(name), source=name, workspace="PROD")
    assert errors, "every corpus file has a basic (or legacy small) addon"
    for err in errors:
        assert err.path.startswith("addons.") and err.path.endswith(".plan")
        assert "basic is not allowed in production" in err.message
        assert err.line is not None


def test_overlay_fragment_alone_is_not_a_complete_spec():
    with pytest.raises(SpecInvalid) as info:
        parse_dice_yml(read(OVERLAY), source=OVERLAY)
    (err,) = info.value.errors
    assert "not a complete spec (an overlay?)" in err.message
    assert err.path == ""


def test_overlay_fragment_is_valid_as_an_overlay():
    doc = parse_dice_yml(read(OVERLAY), source=OVERLAY, overlay=True)
    assert doc.addons["zk"].size == "ultimate"


def test_overlay_fragment_merged_onto_its_base():
    doc = merge_overlay(read(OVERLAY_BASE), read(OVERLAY), base_source=OVERLAY_BASE, overlay_source=OVERLAY)
    front = doc.services["showcase-front"]
    assert front.envs == {
        "TERMINUS_TRACE_ENABLE": "false",
        "TERMINUS_APP_NAME": "showcase-front-app",
        "A": "1",
    }
    assert front.health_check.http.port == 7079
    assert front.image == "nginx:latest"  # kept from the base
    assert doc.addons["zk"].plan == "zookeeper:ultimate"  # legacy large
    assert doc.addons["mysql"].plan == "mysql:basic"  # legacy small


def test_erda_yml_values_per_workspace():
    text = read("erda.yml")
    base = parse_dice_yml(text)
    server = base.services["erda-server"]
    assert server.resources.cpu == 1 and server.resources.mem == 2048  # placeholder defaults
    assert server.deployments.replicas == 2
    assert server.binds[0].host == "/netdata/dice-ops/dice-config/certificates/etcd-ca.pem"
    assert server.binds[0].container == "/certs/etcd-ca.pem" and server.binds[0].type == "ro"
    assert server.health_check.kind == "http" and server.health_check.http.path == "/api/healthy"
    assert base.services["cluster-manager"].health_check is None  # http: {} and exec: {}
    assert base.services["cluster-agent"].health_check.exec.cmd == "ls"
    assert base.envs["OAUTH_CLIENT_ID"] == "<%$.IAM.OAUTH_CLIENT_ID%>"
    assert base.envs["OTEL_TRACES_ENABLED"] == "false" and base.envs["OTEL_TRACES_SAMPLER_ARG"] == "0.1"
    assert base.addons["infos"].type == "custom"

    test = parse_dice_yml(text, workspace="TEST")
    assert test.environment == "test"
    assert test.services["erda-server"].resources.cpu == 1
    assert test.services["monitor"].resources.cpu == 0.1  # values.test.request_cpu
    assert test.services["log-service"].deployments.replicas == 1

    prod = effective_spec(text.replace("mysql:basic", "mysql:professional"), workspace="production")
    assert prod["services"]["erda-server"]["binds"][0]["host"].startswith("<%$.Storage.MountPoint%>/dice-ops")
    assert prod["services"]["gittar"]["binds"][0]["host"] == "<%$.Storage.GittarDataPath%>"
    assert "environments" not in prod and "values" not in prod
