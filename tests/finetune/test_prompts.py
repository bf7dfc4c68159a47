"""Parsing a model's tags against a taxonomy, and the JSON schema that constrains them on vLLM."""

from __future__ import annotations

import json

from lorag.finetune.prompts import json_schema, parse_output
from lorag.finetune.tasks import Taxonomy

MENU = Taxonomy.model_validate({"fields": {"cuisine": {"values": ["thai", "italian"]},
                                           "dietary": {"type": "multi", "values": ["vegan", "gluten-free"]}}})


def test_multi_values_come_back_once_in_the_taxonomy_order() -> None:
    parsed = parse_output(MENU, 'Sure: {"dietary": ["gluten-free", "vegan", "gluten-free"], "cuisine": "thai"}')
    assert parsed.valid and parsed.value == {"cuisine": "thai", "dietary": ["vegan", "gluten-free"]}


def test_outputs_outside_the_taxonomy_say_what_is_wrong() -> None:
    assert "cuisine must be one of" in parse_output(MENU, '{"cuisine": "french", "dietary": []}').problem
    assert "unknown keys ['spice']" in parse_output(MENU, '{"cuisine": "thai", "dietary": [], "spice": 1}').problem
    assert not parse_output(MENU, "thai, vegan").valid


def test_the_schema_admits_exactly_the_taxonomy() -> None:
    schema = json_schema(MENU)
    assert schema["required"] == ["cuisine", "dietary"] and schema["additionalProperties"] is False
    assert schema["properties"]["dietary"] == {"type": "array", "items": {"enum": ["vegan", "gluten-free"]},
                                                  "maxItems": 2}
    json.dumps(schema)  # what goes to the server as response_format
