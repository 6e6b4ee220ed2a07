"""JSON Schema of dice.yml generated from the models (the input forms, short forms included)."""

from __future__ import annotations

from functools import lru_cache
from typing import Literal

from pydantic import Field

from diceyml.models import DiceYml, EnvironmentOverlay

_EnvName = Literal["development", "test", "staging", "production", "DEV", "TEST", "STAGING", "PROD"]


class _SchemaDoc(DiceYml):
    """DiceYml with `environments` described as overlays (they are merged before validation)."""

    environments: dict[_EnvName, EnvironmentOverlay] = Field(default_factory=dict)  # type: ignore[assignment]


@lru_cache(maxsize=1)
def _schema() -> dict:
    schema = _SchemaDoc.model_json_schema(mode="validation", by_alias=True)
    schema["title"] = "dice.yml"
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["description"] = (
        "Dice application spec, version 2.0 (services, jobs, addons, environments, values)"
    )
    return schema


def dice_yml_json_schema() -> dict:
    """The JSON Schema of dice.yml (served at /api/spec/schema/); a fresh copy each call."""
    import copy

    return copy.deepcopy(_schema())
