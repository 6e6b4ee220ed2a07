"""`dice spec render`: multi-document YAML in apply order; exit 1 invalid or refused, 2 usage."""

from __future__ import annotations

import pytest
import yaml

from dice_cli.main import main
from tests.conftest import DATA
from tests.unit.test_k8s_render_schemas import validate_all

SAMPLE = str(DATA / "diceyml" / "legacy.yml")  # built-in addons, an exposed port, images given
NO_IMAGE = 'version: "2.0"\nservices:\n  api:\n    ports: [80]\n  worker:\n    image: w:1\n'


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_render_sample(capsys):
    code, out, err = run(capsys, "spec", "render", SAMPLE, "--workspace", "dev", "--domain", "apps.example.com")
    assert code == 0, err
    docs = list(yaml.safe_load_all(out))
    assert out.startswith("---\n")
    validate_all(docs)
    kinds = [d["kind"] for d in docs]
    assert kinds[0] == "Namespace" and kinds[-1] == "Ingress"
    assert kinds.index("Secret") < kinds.index("StatefulSet") < kinds.index("Deployment")


def test_namespace_and_ratios(capsys):
    code, out, _ = run(capsys, "spec", "render", SAMPLE, "--workspace", "TEST", "--namespace", "demo",
                       "--cpu-ratio", "2", "--mem-ratio", "2")
    assert code == 0
    docs = list(yaml.safe_load_all(out))
    assert {d["metadata"].get("namespace", d["metadata"]["name"]) for d in docs} == {"demo"}
    web = next(d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"] == "web")
    res = web["spec"]["template"]["spec"]["containers"][0]["resources"]
    assert res == {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"cpu": "200m", "memory": "256Mi"}}


def test_missing_image_is_exit_1(capsys, tmp_path):
    path = tmp_path / "dice.yml"
    path.write_text(NO_IMAGE)
    code, out, err = run(capsys, "spec", "render", str(path), "--workspace", "DEV")
    assert code == 1 and out == ""
    assert "service 'api': no image" in err


def test_images_from_the_command_line(capsys, tmp_path):
    path = tmp_path / "dice.yml"
    path.write_text('version: "2.0"\nservices:\n  api:\n    ports: [80]\n')
    code, out, _ = run(capsys, "spec", "render", str(path), "--workspace", "DEV", "--image", "api=reg.example/api:3")
    assert code == 0 and "image: reg.example/api:3" in out


def test_invalid_spec_is_exit_1_with_validate_errors(capsys):
    code, out, err = run(capsys, "spec", "render", SAMPLE, "--workspace", "PROD")
    assert code == 1 and out == ""
    assert "legacy.yml:44: addons.db.plan: plan 'mysql:small': size basic is not allowed" in err


def test_refused_overcommit_is_exit_1(capsys, tmp_path):
    path = tmp_path / "dice.yml"
    path.write_text('version: "2.0"\nservices:\n  api:\n    image: a:1\n')
    code, out, err = run(capsys, "spec", "render", str(path), "--workspace", "PROD", "--mem-ratio", "2")
    assert code == 1 and out == "" and "refused in PROD" in err
    code, out, _ = run(capsys, "spec", "render", str(path), "--workspace", "PROD", "--mem-ratio", "2",
                       "--allow-prod-mem-overcommit")
    assert code == 0 and "kind: Deployment" in out


def test_operators_flag(capsys, tmp_path):
    path = tmp_path / "dice.yml"
    path.write_text('version: "2.0"\nservices:\n  api:\n    image: a:1\naddons:\n  es: {plan: "elasticsearch:basic"}\n'
                    '  db: {plan: "postgresql:basic"}\n')
    code, _, err = run(capsys, "spec", "render", str(path), "--workspace", "DEV")
    assert code == 1 and "elasticsearches.elasticsearch.k8s.elastic.co" in err
    code, out, _ = run(capsys, "spec", "render", str(path), "--workspace", "DEV", "--operators", "eck,cnpg")
    assert code == 0
    kinds = {d["kind"] for d in yaml.safe_load_all(out)}
    assert {"Elasticsearch", "Cluster"} <= kinds and "StatefulSet" not in kinds


@pytest.mark.parametrize("argv", [
    ["spec", "render", SAMPLE],
    ["spec", "render", SAMPLE, "--workspace", "nope"],
    ["spec", "render", SAMPLE, "--workspace", "DEV", "--target", "nomad"],
    ["spec", "render", SAMPLE, "--workspace", "DEV", "--cpu-ratio", "0.5"],
    ["spec", "render", SAMPLE, "--workspace", "DEV", "--operators", "bogus"],
])
def test_usage_errors_exit_2(capsys, argv):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
