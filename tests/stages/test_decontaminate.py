"""The decontaminate stage through the engine, on real GSM8K and HumanEval items planted in text."""

from __future__ import annotations

import pytest
import ray.data

from filters.contamination import REGISTRY, load_items
from pipeline.config import build_stage, load_run
from pipeline.errors import UserError
from pipeline.execute import run_stage as execute

INTRO = "Notes from the weekend workshop on gardening, with photos and a list of the plants we swapped. "
OUTRO = " Thanks to everyone who came; the next meeting is in the library on the first Saturday of May."


@pytest.fixture(scope="module")
def planted(shared_data):
    bench = shared_data / "benchmarks"
    gsm = load_items(REGISTRY["gsm8k"], bench)
    code = load_items(REGISTRY["humaneval"], bench)
    rows = [
        {"id": "clean-1", "text": INTRO + OUTRO},
        {"id": "gsm-verbatim", "text": INTRO + gsm[5].parts[0] + "\n" + gsm[5].parts[1] + OUTRO},
        {"id": "gsm-question", "text": INTRO + gsm[9].parts[0].upper() + OUTRO},
        {"id": "code", "text": INTRO + code[3].parts[0] + OUTRO},
        {"id": "clean-2", "text": OUTRO * 3},
    ]
    return {"bench": str(bench), "rows": rows, "gsm": gsm, "code": code}


def config(planted, **kw):
    return {"benchmarks": ["gsm8k", "humaneval"], "benchmarks_dir": planted["bench"], **kw}


def test_drop_names_the_benchmark_and_keeps_clean_rows(run_stage, planted):
    kept, dropped = run_stage("decontaminate", config(planted), planted["rows"])
    assert sorted(r["id"] for r in kept) == ["clean-1", "clean-2"]
    assert all(r["contamination"] == [] for r in kept)
    reasons = {r["id"]: r["_drop_reason"] for r in dropped}
    assert reasons == {"gsm-verbatim": "contaminated:gsm8k", "gsm-question": "contaminated:gsm8k", "code": "contaminated:humaneval"}


def test_flag_keeps_every_row_records_items_and_spans_and_counts_them(ray_session, tmp_path, planted):
    stage = build_stage("decontaminate", config(planted, action="flag"), index=1, output_dir=tmp_path)
    stage.prepare()
    rows = planted["rows"] + [dict(planted["rows"][1], id="again")]
    output = execute(stage, ray.data.from_items(rows)).materialize()
    by_id = {r["id"]: r for r in output.take_all()}
    assert len(by_id) == len(rows) and all(r["_drop_reason"] is None for r in by_id.values())

    [hit] = by_id["gsm-verbatim"]["contamination"]
    item = planted["gsm"][5]
    assert (hit["benchmark"], hit["item_id"], hit["coverage"]) == ("gsm8k", item.item_id, 1.0)
    text = by_id["gsm-verbatim"]["text"]
    assert [text[s["start"]:s["end"]] for s in hit["spans"]] == [item.parts[0] + "\n" + item.parts[1]]
    [partial] = by_id["gsm-question"]["contamination"]
    assert partial["item_id"] == planted["gsm"][9].item_id and 0 < partial["coverage"] < 1
    assert by_id["code"]["contamination"][0]["item_id"] == "HumanEval/3"

    summary = stage.summarize(output)
    gsm, code = summary["benchmarks"]["gsm8k"], summary["benchmarks"]["humaneval"]
    assert (gsm["items"], gsm["items_found"], gsm["rows_with_hits"]) == (len(planted["gsm"]), 2, 3)
    assert (code["items"], code["items_found"], code["rows_with_hits"]) == (164, 1, 1)
    assert code["pct_items_found"] == pytest.approx(100 / 164, abs=1e-3)
    assert summary["plots"][0]["x"] == ["gsm8k", "humaneval"]


def test_remove_spans_cuts_the_leak_and_drops_rows_needing_too_many_cuts(run_stage, planted):
    leak, other = planted["gsm"][5].parts[0], planted["gsm"][7].parts[0]
    rows = [
        {"id": "one-leak", "text": INTRO * 8 + leak + OUTRO * 8},
        {"id": "two-leaks", "text": INTRO * 8 + leak + OUTRO * 8 + other + OUTRO},
    ]
    kept, dropped = run_stage("decontaminate", config(planted, action="remove_spans", window=20, max_cuts=1), rows)
    assert [r["id"] for r in dropped] == ["two-leaks"] and dropped[0]["_drop_reason"] == "too_contaminated"
    [row] = kept
    assert leak[:40] not in row["text"]
    assert row["text"].startswith(INTRO.strip()) and row["text"].endswith(OUTRO.strip())
    assert len(row["text"]) > len(rows[0]["text"]) - len(leak) - 2 * 20 - 10


def test_instruction_rows_are_checked_through_the_view(run_stage, planted):
    question = planted["gsm"][11].parts[0]
    rows = [
        {"id": "leak", "messages": [{"role": "user", "content": question}, {"role": "assistant", "content": "It is 4."}]},
        {"id": "fine", "messages": [{"role": "user", "content": "Write a haiku about rain."},
                                    {"role": "assistant", "content": question}]},
    ]
    kept, dropped = run_stage("decontaminate", config(planted, view="instruction"), rows)
    assert [r["id"] for r in dropped] == ["leak"] and [r["id"] for r in kept] == ["fine"]
    answer = "The answer needs a careful reading of the numbers. " * 5
    rows[1]["messages"][1]["content"] = answer + question + " " + answer
    kept, dropped = run_stage("decontaminate", config(planted, action="remove_spans", window=0), rows)
    assert [r["id"] for r in dropped] == ["leak"]  # a message that is all leak leaves nothing
    [fine] = kept
    assert fine["messages"][0]["content"] == "Write a haiku about rain."
    assert fine["messages"][1]["content"] == answer.strip() + "\n\n" + answer.strip()


def test_unknown_benchmark_is_a_user_error_when_the_config_loads(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("input: {format: jsonl, paths: [x.jsonl]}\noutput: o\nstages:\n  - decontaminate: {benchmarks: [gsm8k, gsm9k]}\n")
    with pytest.raises(UserError, match=r"c.yaml:4: stages\[0\]\.decontaminate\.benchmarks\[1\]: unknown benchmark 'gsm9k'; did you mean 'gsm8k'\?"):
        load_run(path)


def test_preference_rows_are_checked_in_prompt_chosen_and_rejected(run_stage, planted):
    """Preference rows were scanned as empty text: a DPO set with a leaked GSM8K question in `chosen` passed as clean."""
    question = planted["gsm"][5].parts[0]
    answer = "Let me work through it step by step before giving the final number. " * 4
    rows = [
        {"id": "leak-in-chosen", "prompt": [{"role": "user", "content": "Tell me a word problem."}],
         "chosen": [{"role": "assistant", "content": answer + question + " " + answer}],
         "rejected": [{"role": "assistant", "content": "No."}]},
        {"id": "leak-in-prompt", "prompt": [{"role": "user", "content": question}],
         "chosen": [{"role": "assistant", "content": answer + question}], "rejected": [{"role": "assistant", "content": "No."}]},
        {"id": "clean", "prompt": [{"role": "user", "content": "Say hi."}],
         "chosen": [{"role": "assistant", "content": "Hi!"}], "rejected": [{"role": "assistant", "content": "Bye."}]},
    ]
    kept, dropped = run_stage("decontaminate", config(planted), rows)
    assert {r["id"]: r["_drop_reason"] for r in dropped} == {"leak-in-chosen": "contaminated:gsm8k", "leak-in-prompt": "contaminated:gsm8k"}
    assert [r["id"] for r in kept] == ["clean"]

    kept, _ = run_stage("decontaminate", config(planted, action="flag"), rows)
    by_id = {r["id"]: r for r in kept}
    [hit] = by_id["leak-in-chosen"]["contamination"]
    assert (hit["item_id"], hit["field"]) == (planted["gsm"][5].item_id, "chosen")
    [span] = hit["spans"]
    assert (span["field"], span["message"]) == ("chosen", 0)
    assert rows[0]["chosen"][0]["content"][span["start"]:span["end"]] == question
    assert by_id["leak-in-prompt"]["contamination"][0]["field"] == "prompt"
    assert by_id["clean"]["contamination"] == []

    kept, dropped = run_stage("decontaminate", config(planted, action="remove_spans", window=0), rows)
    assert [(r["id"], r["_drop_reason"]) for r in dropped] == [("leak-in-prompt", "too_contaminated")]  # nothing left of it
    assert dropped[0]["chosen"] == rows[1]["chosen"]  # a dropped row goes to the rejects uncut, its leaks in view
    cut = {r["id"]: r for r in kept}["leak-in-chosen"]
    assert cut["chosen"][0]["content"] == answer.strip() + "\n\n" + answer.strip()
    assert (cut["prompt"], cut["rejected"]) == (rows[0]["prompt"], rows[0]["rejected"])  # only the field that matched is cut


def test_a_leak_in_an_answer_is_named_by_its_message(run_stage, planted):
    question = planted["gsm"][11].parts[0]
    rows = [{"id": "r", "messages": [{"role": "system", "content": "Be kind."}, {"role": "user", "content": "Write a haiku."},
                                     {"role": "assistant", "content": "Here: " + question}]}]
    kept, _ = run_stage("decontaminate", config(planted, action="flag"), rows)
    [hit] = kept[0]["contamination"]
    assert hit["field"] == "messages" and [(s["field"], s["message"], s["start"]) for s in hit["spans"]] == [("messages", 2, 6)]


def test_an_mmlu_hit_is_named_by_its_subject(run_stage, planted):
    """An MMLU hit was identified as `0`..`14041`, its position over all 57 subjects."""
    items = load_items(REGISTRY["mmlu"], planted["bench"])
    item = next(it for it in items if it.item_id == "high_school_biology/17")
    question, *choices = item.parts
    text = INTRO + question + "\n" + "\n".join(f"{label}. {c}" for label, c in zip("ABCD", choices)) + "\nAnswer: B" + OUTRO
    kept, _ = run_stage("decontaminate", {"benchmarks": ["mmlu"], "benchmarks_dir": planted["bench"], "action": "flag"},
                        [{"id": "mmlu-leak", "text": text}])
    assert [(h["benchmark"], h["item_id"], h["field"]) for h in kept[0]["contamination"]] == [("mmlu", "high_school_biology/17", "text")]
