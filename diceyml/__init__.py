"""dice.yml: parse, validate and type an application spec, free of Django (see SPEC.md)."""

from diceyml.environments import ENVIRONMENTS, environment_name, normalize_workspace
from diceyml.models import (
    Addon,
    Bind,
    DiceYml,
    Endpoint,
    HealthCheck,
    Job,
    Port,
    Resources,
    Service,
    Volume,
)
from diceyml.parser import (
    MAX_SERVICES,
    check_dice_yml,
    check_document,
    effective_spec,
    merge_overlay,
    parse_dice_yml,
    validate_dice_yml,
)
from diceyml.schema import dice_yml_json_schema

__all__ = [
    "ENVIRONMENTS",
    "MAX_SERVICES",
    "Addon",
    "Bind",
    "DiceYml",
    "Endpoint",
    "HealthCheck",
    "Job",
    "Port",
    "Resources",
    "Service",
    "Volume",
    "check_dice_yml",
    "check_document",
    "dice_yml_json_schema",
    "effective_spec",
    "environment_name",
    "merge_overlay",
    "normalize_workspace",
    "parse_dice_yml",
    "validate_dice_yml",
]
