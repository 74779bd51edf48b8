"""The JSON Schema: generated from the models and registry, committed, and true to the specs."""

from __future__ import annotations

import json

import jsonschema
import pytest
import yaml

from conftest import ROOT, SPECS
from dlspec.spec.schema import schema_text, spec_schema

COMMITTED = ROOT / "schemas" / "dlspec.schema.json"


def test_committed_schema_is_up_to_date() -> None:
    assert COMMITTED.read_text() == schema_text(), (
        "schemas/dlspec.schema.json is stale: run `dlspec schema -o schemas/dlspec.schema.json`")


def test_schema_is_valid_draft_2020_12() -> None:
    jsonschema.Draft202012Validator.check_schema(spec_schema())


@pytest.mark.parametrize("path", sorted(SPECS.glob("*.yaml")), ids=lambda p: p.stem)
def test_every_spec_validates_against_the_schema(path) -> None:
    validator = jsonschema.Draft202012Validator(json.loads(COMMITTED.read_text()))
    errors = [e.message for e in validator.iter_errors(yaml.safe_load(path.read_text()))]
    assert errors == []


def test_schema_catches_a_misspelt_parameter_for_editors() -> None:
    validator = jsonschema.Draft202012Validator(spec_schema())
    spec = {"dlspec": 1, "name": "x", "inputs": {"x": {"shape": [4]}},
            "network": [{"linear": {"out_featurs": 3}}], "optimizr": {"type": "sgd"}}
    assert not validator.is_valid(spec)
    spec["network"] = [{"linear": {"out_features": "$(width * 2)"}}, "relu", {"linear": 3}]
    spec.pop("optimizr")
    assert validator.is_valid(spec)
