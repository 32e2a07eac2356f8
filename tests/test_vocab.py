"""The shared vocabularies: members behave as their strings, and the model's wire schema did not
change when the schema classes were renamed and their fields typed with the vocabularies."""

from __future__ import annotations

import json

from decomposer.core.vocab import (
    CATEGORIES,
    STATUSES,
    CapabilityStatus,
    Category,
    PricingModel,
    ReviewAction,
)
from decomposer.extraction.schema import Extraction, schema_sha256

SCHEMA_SHA256 = "24cc4750636bef8c27da5ca079c56e1593f82281606ce555dfa25de008dd61f9"
"""The digest is part of every request hash and cache key: change it only on purpose."""


def test_members_compare_and_serialise_as_their_strings():
    assert CapabilityStatus.APPROVED == "approved"
    assert f"{PricingModel.OPEN_WEIGHTS}" == str(PricingModel.OPEN_WEIGHTS) == "open-weights"
    assert json.dumps({"action": ReviewAction.KEEP}) == '{"action": "keep"}'
    assert "proposed" in STATUSES and "long-context" in CATEGORIES


def test_wire_schema_is_unchanged():
    assert schema_sha256() == SCHEMA_SHA256
    schema = Extraction.model_json_schema()
    assert set(schema["$defs"]) == {"Capability", "Fact", "FreeTier", "Price", "Profile"}
    category = schema["$defs"]["Capability"]["properties"]["category"]
    assert category == {"enum": [c.value for c in Category], "type": "string"}


def test_parsed_values_are_vocabulary_members():
    extraction = Extraction.model_validate(
        {
            "capabilities": [
                {
                    "name": "Batch API",
                    "category": "batch",
                    "description": "d",
                    "unique": "u",
                    "vs_alternatives": "v",
                    "evidence": ["a quote of the docs"],
                }
            ],
            "profile": {
                "type": None,
                "pricing_model": "freemium",
                "starting_price": None,
                "free_tier": None,
            },
        }
    )
    assert extraction.capabilities[0].category is Category.BATCH
    assert extraction.profile.pricing_model is PricingModel.FREEMIUM
    assert json.loads(extraction.model_dump_json())["profile"]["pricing_model"] == "freemium"
