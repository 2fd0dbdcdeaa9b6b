"""The generation stages through the engine, on real Ray with a real (tiny, random-weight) model.

The model writes noise, so these tests check what must hold whatever the model says: every input
row is accounted for, produced rows follow the record schema and carry lineage and prompt
versions, and everything the model got wrong is dropped with a named reason. The algorithms'
exact rules are pinned down with scripted models in tests/unit/synthetic/.
"""

from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.slow

SEED_ROWS = 12


@pytest.fixture(scope="module")
def tiny_llm(tmp_path_factory, shared_data) -> dict:
    from tiny_models.llama import build_tiny_model

    tasks = [json.loads(l) for l in (shared_data / "seeds/self_instruct/seed_tasks.jsonl").read_text().splitlines()]
    texts = [t["instruction"] for t in tasks] + [i["output"] for t in tasks for i in t["instances"] if i["output"]]
    path = build_tiny_model(tmp_path_factory.mktemp("tiny"), texts)
    return {"teacher": {"backend": "transformers", "model": str(path), "batch_size": 16}}


@pytest.fixture(scope="module")
def seed_rows(shared_data) -> list[dict]:
    rows = []
    for line in (shared_data / "seeds/self_instruct/seed_tasks.jsonl").read_text().splitlines()[:SEED_ROWS]:
        t = json.loads(line)
        rows.append({
            "id": t["id"], "messages": [{"role": "user", "content": t["instruction"]}], "generated_by": "human",
            "parent_id": None, "source": "seeds", "meta": json.dumps({"instances": t["instances"], "is_classification": t["is_classification"]}),
        })  # fmt: skip
    return rows


def _meta(row):
    return json.loads(row["meta"])


def test_self_instruct_stage_seeds_from_file_and_accounts_for_every_proposal(run_stage, tiny_llm, seed_rows, shared_data):
    seeds = shared_data / "seeds/self_instruct/seed_tasks.jsonl"
    config = {"seeds": str(seeds), "target": 3, "requests_per_round": 2, "max_stale_rounds": 2, "max_tokens": 48, "instance_max_tokens": 32}
    kept, dropped = run_stage("self_instruct", config, seed_rows[:2], llms=tiny_llm, seed=1)
    assert {r["id"] for r in kept} >= {r["id"] for r in seed_rows[:2]}  # the input passes through
    generated = [r for r in kept + dropped if r["source"] == "self_instruct"]
    assert generated, "the stage must report what happened to its proposals"
    for r in generated:
        meta = _meta(r)
        assert meta["prompt_version"]["propose"].startswith("self_instruct.propose@")
    for r in dropped:
        assert r["_drop_reason"] in {
            "too_short", "too_long", "unsuitable_for_text_model", "write_a_program", "starts_with_punctuation",
            "starts_non_ascii", "truncated", "rouge_similar", "llm_error", "no_valid_instance",
        }  # fmt: skip


def test_evol_instruct_stage_lineage_and_elimination(run_stage, tiny_llm, seed_rows):
    config = {"rounds": 2, "max_tokens": 32, "response_max_tokens": 32}
    kept, dropped = run_stage("evol_instruct", config, seed_rows[:4], llms=tiny_llm, seed=3)
    attempts = [r for r in kept + dropped if r["id"] not in {s["id"] for s in seed_rows}]
    assert len(attempts) == 4 * 2  # one attempt per lineage per round, success or not
    assert {r["id"] for r in seed_rows[:4]} <= {r["id"] for r in kept}
    ids = {r["id"] for r in kept} | {s["id"] for s in seed_rows}
    for r in attempts:
        meta = _meta(r)
        assert meta["operation"] in {"add_constraints", "deepen", "concretize", "increase_reasoning", "complicate_input", "breadth"}
        assert r["parent_id"] in ids and r["id"] == f"{meta['root_id']}.e{meta['round']}"
        assert meta["prompt_version"]["evolve"].startswith("evol_instruct.")
    assert all(r["_drop_reason"] for r in dropped)


def test_respond_stage_several_samples(run_stage, tiny_llm, seed_rows):
    kept, dropped = run_stage("respond", {"samples": 2, "max_tokens": 16}, seed_rows[:3], llms=tiny_llm, seed=0)
    out = kept + dropped
    assert sorted(r["id"] for r in out) == sorted(f"{s['id']}.s{k}" for s in seed_rows[:3] for k in range(2))
    for r in out:
        assert r["parent_id"] in {s["id"] for s in seed_rows} and r["messages"][-1]["role"] == "assistant"
        assert _meta(r)["prompt_version"]["respond"] == "respond@1"
    assert all(r["_drop_reason"] in ("response_truncated", "empty_response") for r in dropped)


def test_preferences_stage_rows_follow_the_preference_schema(run_stage, tiny_llm, seed_rows):
    config = {"candidates": [{"llm": "teacher", "temperature": 0.2, "max_tokens": 12}, {"llm": "teacher", "temperature": 1.0, "max_tokens": 12}],
              "judge_max_tokens": 16}  # fmt: skip
    kept, dropped = run_stage("preferences", config, seed_rows[:3], llms=tiny_llm, seed=0)
    assert len(kept) + len(dropped) == 3
    for r in kept:
        assert r["scores"]["chosen"] - r["scores"]["rejected"] >= 1
    for r in dropped:  # a random model's judge rarely writes a rating: those pairs must not pass
        assert r["_drop_reason"] in ("judge_unparsed", "tie", "below_margin", "too_few_responses")
        assert r["prompt"][0]["role"] == "user"


def test_grounded_stage_on_documents(run_stage, tiny_llm):
    docs = [
        {"id": "d1", "text": "The heart pumps blood through the body. " * 20, "url": "https://example.org/heart", "source": "web", "meta": "{}"},
        {"id": "d2", "text": "Too short.", "url": None, "source": "web", "meta": "{}"},
    ]
    kept, dropped = run_stage("grounded", {"min_words": 20, "max_tokens": 16}, docs, llms=tiny_llm, seed=0)
    out = {r["parent_id"]: r for r in kept + dropped}
    assert set(out) == {"d1", "d2"}
    assert out["d2"]["_drop_reason"] == "document_too_short"
    d1 = out["d1"]
    assert d1.get("_drop_reason") in (None, "low_score", "judge_unparsed", "empty_instruction", "truncated")
    assert _meta(d1)["prompt_version"]["backtranslate"].startswith("grounded.backtranslate@")
