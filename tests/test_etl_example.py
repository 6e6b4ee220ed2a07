"""examples/etl: its pipeline parses and plans (every spark param valid), and its extract makes the
orders the check step counts on. The transform runs on Spark in the spark tier's pipeline tests'
way; the whole example is not run here (it needs Spark, PostgreSQL and a git repository)."""

from __future__ import annotations

import csv
import sys

from pipelineyml import parse_pipeline_yml
from scheduler.spark.app import from_params
from tests.conftest import ROOT

ETL = ROOT / "examples" / "etl"


def test_the_pipeline_parses_and_its_spark_params_are_valid():
    pipeline = parse_pipeline_yml((ETL / "pipeline.yml").read_text())
    assert [a.alias for a in pipeline.actions] == ["repo", "extract", "transform", "load", "check"]
    transform = pipeline.action("transform")
    app = from_params(dict(transform.params))
    assert app.python and app.resource.endswith("examples/etl/transform.py") and app.driver_mem == 512


def test_extract_writes_the_orders(tmp_path):
    sys.path.insert(0, str(ETL))
    try:
        import extract
    finally:
        sys.path.remove(str(ETL))
    extract.main(str(tmp_path / "orders.csv"), 100)
    rows = list(csv.DictReader((tmp_path / "orders.csv").open()))
    assert len(rows) == 100 and {r["region"] for r in rows} == {"north", "south", "east", "west"}
