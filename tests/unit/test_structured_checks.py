"""`structured: on` with an LLM that cannot guide its decoding is refused by the stage's checks, before Ray."""

from __future__ import annotations

import pytest

from pipeline.config import build_stage

LLMS = {"local": {"backend": "transformers", "model": "m"}, "server": {"backend": "vllm_server", "model": "m", "url": None}}


@pytest.mark.parametrize("stage, options", [
    ("self_instruct", {"llm": "local"}),
    ("evol_instruct", {"llm": "local"}),
    ("annotate", {"llm": "local"}),
    ("preferences", {"candidates": [{"llm": "server", "samples": 2}], "judge": "local"}),
])  # fmt: skip
def test_structured_on_needs_a_vllm_server(tmp_path, stage, options):
    def problems(structured):
        built = build_stage(stage, {**options, "structured": structured}, index=1, output_dir=tmp_path, llms=LLMS)
        return [p for p in built.check() if p.option == ("structured",)]

    [problem] = problems("on")
    assert "llm 'local' is transformers" in problem.message and "structured: auto" in problem.message
    assert problems("auto") == [] and problems("off") == []


def test_structured_on_with_a_vllm_server_is_fine(tmp_path):
    built = build_stage("annotate", {"llm": "server", "structured": "on"}, index=1, output_dir=tmp_path, llms=LLMS)
    assert [p for p in built.check() if p.option == ("structured",)] == []
