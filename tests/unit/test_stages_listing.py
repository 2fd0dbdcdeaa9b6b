"""`pipeline stages` as a user reads it: every stage described, options in YAML terms, no class names."""

from __future__ import annotations

import json
import re

from pipeline import registry
from pipeline.commands.stages import describe


def test_every_stage_has_a_summary_and_no_internal_class_names():
    described = [describe(cls) for cls in registry.all_stages().values()]
    assert len(described) >= 16
    for d in described:
        assert d["summary"], f"stage {d['name']} has no description"
        for name, field in d["fields"].items():
            shown = f"{field['type']} {json.dumps(field['default'], default=str)}"
            assert not re.search(r"\b(stages|filters|generators|pipeline)\.\w|<class|Config\b|=\S+ \w+=", shown), \
                f"{d['name']}.{name} shows {shown!r}"


def test_nested_options_show_as_mappings():
    dedup = describe(registry.get("dedup"))
    assert dedup["fields"]["boilerplate"]["type"] == "{unit, max_docs, min_chars} | null"
    candidates = describe(registry.get("preferences"))["fields"]["candidates"]
    assert candidates["default"][0] == {"llm": "teacher", "temperature": 0.3, "samples": 1, "max_tokens": 1024}
