"""decontaminate's semantic pass through the engine: real GSM8K items reworded by hand and planted in text,
a real (tiny, locally built) sentence-transformers model, and a scripted judge behind a real HTTP client.

The judge is the only test double, and pins only the judge's side: it says yes to the true item of a
planted paraphrase, no to anything else, and fails on one item; everything else (windows, embeddings,
candidates, the client, the column, the actions) is the stage's own.
"""

from __future__ import annotations

import json

import pyarrow as pa
import pytest
import ray.data

from filters.contamination import REGISTRY, load_items
from pipeline.config import build_stage
from pipeline.errors import RunFailed
from pipeline.execute import run_stage as execute
from benchmarks.bench_contamination_leaks import idf_weighted_model
from tests.llm.openai_stub import OpenAIStub
from tests.cli import cli

INTRO = ("Notes from the weekend workshop on gardening, with photos and a list of the plants we swapped. We met at "
         "the community hall, shared seeds and cuttings, and talked about the dry summer and what it did to the beds. ")
OUTRO = (" Thanks to everyone who came; the next meeting is in the library on the first Saturday of May, when we will "
         "plan the spring planting and sort the seed library.")
# GSM8K test items 0 and 1, reworded by hand (no run of their words long enough for the n-grams)
JANET = ("Each day the ducks that Janet keeps produce 16 eggs. Three of them she eats at breakfast every morning, and "
         "with another four she bakes muffins for her friends daily. The rest go to the farmers' market, where every fresh "
         "duck egg sells for $2. What does she earn at the farmers' market per day, in dollars?")
ROBE = ("To make a robe you need two bolts of blue fiber and white fiber amounting to half of that. "
        "Altogether, how many bolts does the robe take?")


class ScriptedJudge(OpenAIStub):
    """Yes for the item that starts with `yes_item`, a 500 for `failing_item`, no for every other pair."""

    def __init__(self, yes_item: str, failing_item: str):
        super().__init__()
        self.models = ["judge-model"]
        self.yes_item, self.failing_item = yes_item, failing_item

    def _answer(self, path, body, headers):
        prompt = body["messages"][-1]["content"]
        with self._lock:
            self.bodies.append(body)
        item = prompt.split("Test item:\n", 1)[1].split("\n\nPassage:", 1)[0]
        if item.startswith(self.failing_item):
            return 500, b'{"error": "scripted failure"}'
        verdict = "yes\nReason: the passage asks the same question in other words" if item.startswith(self.yes_item) \
            else "no\nReason: a different question"
        return 200, json.dumps({"model": body["model"], "usage": {"prompt_tokens": 1, "completion_tokens": 1}, "choices": [
            {"index": 0, "message": {"role": "assistant", "content": f"Verdict: {verdict}"}, "finish_reason": "stop"}]}).encode()


@pytest.fixture(scope="module")
def gsm(shared_data):
    return load_items(REGISTRY["gsm8k"], shared_data / "benchmarks")


@pytest.fixture(scope="module")
def model(tmp_path_factory, gsm) -> str:
    texts = ["\n".join(item.parts) for item in gsm] + [INTRO, OUTRO, JANET, ROBE]
    return str(idf_weighted_model(tmp_path_factory.mktemp("embedder"), texts))


@pytest.fixture
def judge(gsm):
    with ScriptedJudge(gsm[0].parts[0][:40], gsm[1].parts[0][:40]) as stub:
        yield stub


@pytest.fixture(scope="module")
def rows(gsm):
    return [
        {"id": "clean", "text": INTRO + OUTRO},
        {"id": "paraphrase", "text": INTRO + JANET + OUTRO},
        {"id": "unjudged", "text": INTRO + ROBE + OUTRO},
        {"id": "verbatim", "text": INTRO + gsm[5].parts[0] + "\n" + gsm[5].parts[1] + OUTRO},
    ]


def config(shared_data, model, judge, **kw):
    semantic = {"model": model, "judge": "judge", "top_k": 1, "min_cosine": 0.45, **kw.pop("semantic", {})}
    return {"benchmarks": ["gsm8k"], "benchmarks_dir": str(shared_data / "benchmarks"), "semantic": semantic, **kw}


def llms(judge, **kw):
    return {"judge": {"backend": "vllm_server", "url": judge.url, "model": "judge-model", "max_retries": 0, **kw}}


def run(tmp_path, options, rows, judge):
    stage = build_stage("decontaminate", options, index=1, output_dir=tmp_path, llms=llms(judge))
    assert stage.check() == []
    stage.prepare()
    output = execute(stage, ray.data.from_items(rows)).materialize()
    return stage, {r["id"]: r for r in output.take_all()}, output


def test_flag_records_the_judges_verdict_and_reason_beside_ngram_hits(ray_session, tmp_path, shared_data, model, judge, rows, gsm):
    stage, out, output = run(tmp_path, config(shared_data, model, judge, action="flag"), rows, judge)
    assert all(r["_drop_reason"] is None for r in out.values())
    assert out["clean"]["contamination"] == []

    [hit] = out["paraphrase"]["contamination"]
    assert (hit["benchmark"], hit["item_id"], hit["method"], hit["verdict"]) == ("gsm8k", gsm[0].item_id, "semantic", "yes")
    assert hit["reason"] == "the passage asks the same question in other words" and hit["judge"] == "judge-model"
    assert 0.45 <= hit["cosine"] <= 1 and hit["coverage"] is None
    [span] = hit["spans"]
    window = out["paraphrase"]["text"][span["start"]:span["end"]]
    assert span["field"] == "text" and "Janet" in window  # the window that matched holds the planted item

    [failed] = out["unjudged"]["contamination"]  # the judge failed: marked with the error, not clean
    assert (failed["item_id"], failed["verdict"], failed["method"]) == (gsm[1].item_id, "error", "semantic")
    assert failed["reason"].startswith("judge failed:") and "500" in failed["reason"]

    [ngram] = out["verbatim"]["contamination"]  # an n-gram hit: the row is never sent to the judge, nor the clean one
    assert (ngram["method"], ngram["item_id"], ngram["verdict"]) == ("ngram", gsm[5].item_id, None)
    prompts = [b["messages"][-1]["content"] for b in judge.bodies]
    assert len(prompts) == 2 and not any(gsm[5].parts[0][:60] in p for p in prompts)
    assert sum(JANET[:60] in p for p in prompts) == 1

    summary = stage.summarize(output)
    assert summary["benchmarks"]["gsm8k"]["rows_with_hits"] == 2  # the paraphrase and the verbatim copy
    assert summary["benchmarks"]["gsm8k"]["rows_with_semantic_hits"] == 1
    assert summary["semantic"]["rows_unjudged"] == 1


def test_drop_and_remove_spans_apply_to_semantic_hits(ray_session, tmp_path, shared_data, model, judge, rows):
    _, out, _ = run(tmp_path, config(shared_data, model, judge, action="drop"), rows, judge)
    reasons = {i: r["_drop_reason"] for i, r in out.items()}
    assert reasons == {"clean": None, "paraphrase": "contaminated:gsm8k", "unjudged": "contamination_unjudged",
                       "verbatim": "contaminated:gsm8k"}

    _, out, _ = run(tmp_path, config(shared_data, model, judge, action="remove_spans", window=0), rows, judge)
    cut = out["paraphrase"]
    assert cut["_drop_reason"] is None and "Janet" not in cut["text"]
    assert cut["text"].startswith("Notes from the weekend") or cut["text"].rstrip().endswith("seed library.")
    assert out["unjudged"]["_drop_reason"] == "contamination_unjudged" and ROBE in out["unjudged"]["text"]
    assert out["clean"]["text"] == INTRO + OUTRO


def test_min_cosine_above_every_pair_asks_the_judge_nothing(ray_session, tmp_path, shared_data, model, judge, rows):
    _, out, _ = run(tmp_path, config(shared_data, model, judge, action="flag", semantic={"min_cosine": 1.0}), rows, judge)
    assert judge.bodies == [] and out["paraphrase"]["contamination"] == []


def test_a_judge_that_keeps_failing_stops_the_run(tmp_path, shared_data, model, gsm, rows):
    with ScriptedJudge("nothing", "") as failing:  # every item fails
        stage = build_stage("decontaminate", config(shared_data, model, failing, semantic={"min_cosine": -1.0, "top_k": 3}),
                            index=1, output_dir=tmp_path, llms=llms(failing, failure_window=4, max_failure_rate=0.5))
        stage.prepare()
        stage.setup()
        try:
            with pytest.raises(RunFailed, match=r"stage 01-decontaminate: .* requests to .*failed"):
                stage.process_batch(pa.Table.from_pylist(rows))
        finally:
            stage.teardown()


def test_a_missing_model_or_judge_is_found_before_any_work(tmp_path, shared_data, model, judge):
    stage = build_stage("decontaminate", config(shared_data, str(tmp_path / "no-model"), judge, semantic={"judge": "nobody"}),
                        index=1, output_dir=tmp_path, llms=llms(judge))
    problems = {p.option: p.message for p in stage.check()}
    assert problems[("semantic", "model")].endswith("does not exist")
    assert problems[("semantic", "judge")].startswith("llm 'nobody' is not defined")


def test_contamination_report_shows_a_runs_semantic_hits_with_the_judges_reason(ray_session, tmp_path, shared_data, model, judge, rows, gsm):
    import pyarrow.parquet as pq

    _, out, output = run(tmp_path, config(shared_data, model, judge, action="flag"), rows, judge)
    data = tmp_path / "flagged.parquet"
    table = pa.Table.from_pylist([{k: v for k, v in r.items() if not k.startswith("_")} for r in out.values()])
    pq.write_table(table, data)
    report_dir = tmp_path / "report"
    proc = cli("contamination-report", "--data", data, "--benchmarks", "gsm8k", "--benchmarks-dir", shared_data / "benchmarks",
               "--out", report_dir, "--quiet")
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads((report_dir / "report.json").read_text())
    by_item = {(it["item_id"], it["best_row_id"]): it for it in report["items"]}
    semantic = by_item[(gsm[0].item_id, "paraphrase")]
    assert semantic["found_by"] == {"method": "semantic", "cosine": out["paraphrase"]["contamination"][0]["cosine"],
                                    "judge": "judge-model", "reason": "the passage asks the same question in other words"}
    assert "Janet" in semantic["span"]["text"] and semantic["item_ngrams"] is None
    assert by_item[(gsm[5].item_id, "verbatim")]["found_by"] == {"method": "ngram"}
    assert (gsm[1].item_id, "unjudged") not in by_item  # the judge failed there: no find, not a leak either
    assert report["matrix"]["all sources"]["gsm8k"]["items_contaminated"] == 2
    md = (report_dir / "report.md").read_text()
    assert "semantic (cosine" in md and "judge: the passage asks the same question in other words" in md
    assert "the passage asks the same question in other words" in (report_dir / "report.html").read_text()
