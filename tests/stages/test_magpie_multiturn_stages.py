"""The `magpie` stage and multi-turn `respond` through the engine, on real Ray, with the seed-trained
tiny teacher served in process (transformers backend).

The teacher writes word-like text that ends its turns, so some conversations come through whole
and the rest are dropped with a reason: the tests check the shape of what came through (turns
that alternate, the system prompt variants, provenance) and that every conversation is accounted for.
"""

from __future__ import annotations

import json

import pytest

from generators.magpie import PRE_QUERY_VERSION, template_digest

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]

SYSTEM = "You are a helpful assistant."
MAGPIE_REASONS = {"empty_instruction", "instruction_truncated", "response_truncated", "empty_response", "llm_error", "template_unsplittable"}


@pytest.fixture(scope="module")
def teacher(trained_teacher) -> dict:
    return {"teacher": {"backend": "transformers", "model": str(trained_teacher), "batch_size": 16}}


def _meta(row):
    return json.loads(row["meta"])


def _input_rows():
    return [{"id": "seed-1", "messages": [{"role": "user", "content": "Name three primary colours."}], "generated_by": "human",
             "parent_id": None, "source": "seeds", "meta": None}]  # fmt: skip


def _answered_rows(shared_data):
    """Five seed tasks with their human answers: conversations the simulator goes on from."""
    tasks = [json.loads(line) for line in (shared_data / "seeds/self_instruct/seed_tasks.jsonl").read_text().splitlines()[1:6]]
    return [{"id": t["id"], "generated_by": "human", "parent_id": None, "source": "seeds", "meta": None,
             "messages": [{"role": "user", "content": t["instruction"]}, {"role": "assistant", "content": t["instances"][0]["output"]}]}
            for t in tasks]  # fmt: skip


def test_magpie_stage_samples_multi_turn_conversations_from_the_template(run_stage, teacher, trained_teacher):
    from transformers import AutoTokenizer

    config = {"count": 8, "turns": 2, "system_prompts": [None, SYSTEM], "max_tokens": 64, "response_max_tokens": 96, "batch_size": 4}
    kept, dropped = run_stage("magpie", config, _input_rows(), llms=teacher, seed=0)
    assert "seed-1" in {r["id"] for r in kept}  # the input passes through
    made = [r for r in kept + dropped if r["source"] == "magpie"]
    assert len(made) == 8 and len({r["id"] for r in made}) == 8
    done = [r for r in kept if r["source"] == "magpie"]
    assert done, [r["_drop_reason"] for r in dropped]
    digest = template_digest(AutoTokenizer.from_pretrained(trained_teacher))
    for r in made:
        meta = _meta(r)
        assert r["generated_by"] == str(trained_teacher) and r["parent_id"] is None
        assert meta["prompt_version"] == {"query": PRE_QUERY_VERSION, "respond": "respond@1"} and meta["chat_template"] == digest
        system = meta["system_prompt"] == 1
        turns = r["messages"][1:] if system else r["messages"]
        assert (r["messages"][:1] == [{"role": "system", "content": SYSTEM}]) == system
        assert [m["role"] for m in turns] == ["user", "assistant"] * meta["turns"] + (["user"] if len(turns) % 2 else [])
        if r in done:
            assert meta["turns"] == 2 and all(m["content"].strip() for m in turns)
        else:
            assert r["_drop_reason"] in MAGPIE_REASONS and meta["turns"] < 2
    assert {_meta(r)["system_prompt"] for r in made} == {0, 1}


def test_respond_stage_continues_each_conversation_to_n_turns(run_stage, teacher, trained_teacher, shared_data):
    answered = _answered_rows(shared_data)
    rows = _input_rows() + answered
    config = {"turns": 3, "max_tokens": 128, "simulator_max_tokens": 128}
    kept, dropped = run_stage("respond", config, rows, llms=teacher, seed=0)
    assert sorted(r["id"] for r in kept + dropped) == sorted(r["id"] for r in rows)
    continued = [r for r in kept + dropped if "turns" in _meta(r)]  # all but a row whose first answer failed
    assert {r["id"] for r in continued} >= {r["id"] for r in answered}
    for r in continued:
        meta = _meta(r)
        assert [m["role"] for m in r["messages"][: 2 * meta["turns"]]] == ["user", "assistant"] * meta["turns"]
        assert meta["prompt_version"]["simulate"] == "respond.user_simulator@1" and meta["user_simulator"] == str(trained_teacher)
        if meta["turns"] > 1:  # a model answered a simulated turn: the row is the model's now
            assert r["generated_by"] == str(trained_teacher)
    assert any(_meta(r)["turns"] >= 2 for r in continued), [r["_drop_reason"] for r in dropped]
    for r in kept:
        assert _meta(r)["turns"] == 3 and len(r["messages"]) == 6 and all(m["content"].strip() for m in r["messages"])
    for r in dropped:
        assert r["_drop_reason"] in {"simulator_llm_error", "simulator_truncated", "empty_user_turn", "response_truncated",
                                     "empty_response", "llm_error"} and _meta(r).get("turns", 0) < 3  # fmt: skip
    for original in answered:  # an answered row keeps its answer and goes on from it
        assert next(o for o in continued if o["id"] == original["id"])["messages"][:2] == original["messages"]


def test_respond_takes_the_user_turns_from_a_separate_simulator_entry(run_stage, teacher, trained_teacher, tmp_path, shared_data):
    """`user_simulator` names another `llms:` entry: its client writes the user turns, `llm`'s the answers.
    The simulator is the same teacher under another path, so the rows say which entry wrote what. The
    rows come answered, so every one goes to the simulator whatever the teacher answers."""
    simulator = tmp_path / "simulator"
    simulator.symlink_to(trained_teacher, target_is_directory=True)
    llms = {**teacher, "simulator": {"backend": "transformers", "model": str(simulator), "batch_size": 16}}
    config = {"turns": 2, "user_simulator": "simulator", "max_tokens": 128, "simulator_max_tokens": 128}
    rows = _answered_rows(shared_data)
    kept, dropped = run_stage("respond", config, rows, llms=llms, seed=0)
    assert sorted(r["id"] for r in kept + dropped) == sorted(r["id"] for r in rows)
    assert {_meta(r)["user_simulator"] for r in kept + dropped} == {str(simulator)}
    answered = [r for r in kept + dropped if _meta(r)["turns"] == 2]
    assert answered, [r["_drop_reason"] for r in dropped]
    for r in answered:  # a simulated turn answered by `llm`, not by the simulator's entry
        assert _meta(r)["responder"] == r["generated_by"] == str(trained_teacher)
    for r in kept:
        assert [m["role"] for m in r["messages"]] == ["user", "assistant"] * 2
