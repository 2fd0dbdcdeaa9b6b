"""The `annotate` stage through the engine on real Ray, its ratings from a scripted OpenAI-API server
(a document of N words scores N mod 6), so the test knows each rating: the seeded sample, the columns
of sampled and unsampled rows, every row kept, and the stage's metrics. The real vLLM server rates
documents in tests/e2e/test_annotate_classify.py."""

from __future__ import annotations

import json

import pytest
from openai_stub import OpenAIStub

pytestmark = pytest.mark.slow  # Ray


class RaterStub(OpenAIStub):
    def _answer(self, path, body, headers):
        doc = body["messages"][-1]["content"].split("[Extract]\n")[1].split("\n\nWrite one")[0]
        with self._lock:
            self.bodies.append(body)
        words = len(doc.split())
        text = "no score at all" if doc.startswith("Unrated") else f"It has {words} words.\nScore: {words % 6}"
        choice = {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}
        return 200, json.dumps({"model": body["model"], "choices": [choice], "usage": {"prompt_tokens": 1, "completion_tokens": 1}}).encode()


def _docs(n: int) -> list[dict]:
    return [{"id": f"doc-{i}", "text": ("Unrated " if i == 3 else "") + " ".join(["word"] * (i + 1)), "source": "web"}
            for i in range(n)]


@pytest.fixture
def rater():
    with RaterStub() as stub:
        yield stub


def test_annotate_rates_exactly_the_seeded_sample_and_keeps_every_row(run_stage, rater):
    llms = {"teacher": {"backend": "vllm_server", "url": rater.url, "model": "stub-model"}}
    docs = _docs(40)
    kept, dropped = run_stage("annotate", {"sample": 12}, docs, llms=llms, seed=5)
    assert not dropped and sorted(r["id"] for r in kept) == sorted(d["id"] for d in docs)
    sampled = [r for r in kept if r["annotation_prompt"] is not None]
    assert len(sampled) == 12 == len(rater.bodies)
    assert {r["annotation_prompt"] for r in sampled} == {"annotate.educational_value@1"}
    for r in sampled:
        words = len(r["text"].split())
        if r["text"].startswith("Unrated"):
            assert r["annotation_score"] is None and r["annotation_rationale"] is None
        else:
            assert r["annotation_score"] == words % 6 and r["annotation_rationale"] == f"It has {words} words."
    for r in kept:
        if r["annotation_prompt"] is None:
            assert r["annotation_score"] is None and r["annotation_rationale"] is None
    assert rater.bodies[0]["structured_outputs"]["regex"].endswith("Score: (5|4|3|2|1|0)")

    again, _ = run_stage("annotate", {"sample": 12}, list(reversed(docs)), llms=llms, seed=5)
    assert {r["id"] for r in again if r["annotation_prompt"]} == {r["id"] for r in sampled}  # the seed picks them, not the order
    other, _ = run_stage("annotate", {"sample": 12}, docs, llms=llms, seed=6)
    assert {r["id"] for r in other if r["annotation_prompt"]} != {r["id"] for r in sampled}


def test_annotate_summary_counts_what_was_rated(ray_session, rater, tmp_path):
    import ray.data

    from pipeline.config import build_stage
    from pipeline.execute import run_stage

    llms = {"teacher": {"backend": "vllm_server", "url": rater.url, "model": "stub-model", "concurrency": 4}}
    stage = build_stage("annotate", {"sample": 1.0, "structured": "off"}, index=1, output_dir=tmp_path, llms=llms, seed=1)
    stage.prepare()
    out = run_stage(stage, ray.data.from_items(_docs(10))).materialize()
    summary = stage.summarize(out)
    assert (summary["sampled"], summary["scored"], summary["unscored"]) == (10, 9, 1)
    expected = {str(k): sum(1 for i in range(10) if i != 3 and (i + 1) % 6 == k) for k in range(6)}
    assert summary["scores"] == expected and summary["prompt"] == "annotate.educational_value@1"
    assert all("structured_outputs" not in b for b in rater.bodies)
