"""pipeline.yml (version "1.1") without Django: parse, validate and plan a pipeline's tasks."""

from pipelineyml.graph import plan
from pipelineyml.models import (
    Action,
    PipelineYml,
    PlannedTask,
    Reference,
    Stage,
)
from pipelineyml.parser import parse_pipeline_yml, pipeline_from_data, validate_pipeline_yml

__all__ = [
    "Action",
    "PipelineYml",
    "PlannedTask",
    "Reference",
    "Stage",
    "parse_pipeline_yml",
    "pipeline_from_data",
    "plan",
    "validate_pipeline_yml",
]
