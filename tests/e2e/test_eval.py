"""`pipeline finetune` then `pipeline eval` on CPU, where fine-tuning measurably helps.

The task: a fixed table of facts (city -> country) asked in one template with a ticket number that makes
every prompt distinct, so the held-out split (by lineage) holds new prompts about facts the training
side taught. The random tiny model answers none; the tuned one must answer most. A broken adapter (not
applied), a chat template that differs between training and serving, or a loss on the wrong tokens would
each leave it near zero. lm-eval's numbers for base + adapter must equal lm-eval run directly on the
merged model, on the same task configs.
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tiny_models.llama import build_tiny_model
from tests.cli import cli

ROOT = Path(__file__).resolve().parents[2]
FACTS = {"Lyon": "France", "Porto": "Portugal", "Krakow": "Poland", "Graz": "Austria", "Gent": "Belgium",
         "Turku": "Finland", "Bergen": "Norway", "Malmo": "Sweden"}
# A LoRA that reaches the LM head: the random tiny model's head (weights ~0.02) cannot put enough
# probability on one token through the blocks alone.
TRAIN = ["--epochs", "7", "--lr", "5e-3", "--batch-size", "16", "--grad-accum", "1", "--rank", "16",
         "--set", "sft.eval_fraction=0.2", "--set", "sft.warmup_ratio=0.0", "--set", "sft.eval_every=1000",
         "--set", "sft.sample_every=1000", "--set", "sft.checkpoint_every=1000",
         "--set", "lora.target_modules=[q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj,lm_head]"]


def facts_run(root: Path, rows: int = 200) -> tuple[Path, Path]:
    rng = random.Random(0)
    chats = []
    for i in range(rows):
        city = rng.choice(list(FACTS))
        prompt = f"#{rng.randint(1000, 9999)} " + " ".join([city] * 4)
        chats.append({"id": str(i), "messages": [{"role": "user", "content": prompt},
                                                 {"role": "assistant", "content": FACTS[city]}]})
    model = build_tiny_model(root / "model", [m["content"] for c in chats for m in c["messages"]], vocab_size=600)
    run = root / "run"
    (run / "data").mkdir(parents=True)
    pq.write_table(pa.Table.from_pylist(chats), run / "data" / "part-00000.parquet")
    (run / "manifest.json").write_text(json.dumps({"name": "facts", "rows": rows, "config": {"finetune": {"model": str(model)}}}))
    return run, model


def pipeline(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    done = cli(*args, timeout=600)
    if check:
        assert done.returncode == 0, done.stderr[-3000:]
    return done


@pytest.mark.slow
@pytest.mark.shared_data
def test_finetune_then_eval_shows_the_gain(tmp_path, shared_data):
    run, model = facts_run(tmp_path)
    pipeline("finetune", str(run), *TRAIN, "--merge")
    adapter = run / "finetune" / "adapter"
    done = pipeline("eval", str(model), "--adapter", str(adapter), "--tasks", "held_out,gsm8k,mmlu",
                    "--benchmarks-dir", str(shared_data / "benchmarks"), "--limit", "10", "--max-new-tokens", "8")
    result = json.loads((run / "finetune" / "eval" / "eval.json").read_text())
    by_task = {t["task"]: t for t in result["tasks"]}
    held = by_task["held_out"]
    assert held["base"]["n"] == held["tuned"]["n"] == 10
    assert held["base"]["value"] <= 0.2 and held["tuned"]["value"] >= 0.8, held
    assert held["difference"] == pytest.approx(held["tuned"]["value"] - held["base"]["value"])
    for name in ("gsm8k", "mmlu"):
        t = by_task[name]
        assert t["tuned"]["n"] == 10 and t["tuned"]["stderr"] is not None
        assert t["contamination"]["items_found"] == 0 and t["contamination"]["source"] == "scan of the training rows"
    assert by_task["mmlu"]["contamination"]["items"] == 14042
    assert "| held_out | exact_match,none | 10 |" in done.stdout
    assert "<svg" in (run / "finetune" / "eval" / "eval.html").read_text()

    # lm-eval straight on the merged model, on the task configs the eval wrote for the tuned side.
    merged = run / "finetune" / "merged"
    script = (
        "import json, sys\n"
        "from lm_eval import simple_evaluate\n"
        "from lm_eval.models.huggingface import HFLM\n"
        "from lm_eval.tasks import TaskManager\n"
        f"lm = HFLM(pretrained={str(merged)!r}, tokenizer={str(adapter)!r}, device='cpu', batch_size=8, dtype='auto')\n"
        f"tm = TaskManager(include_path={str(run / 'finetune' / 'eval' / 'tasks' / 'tuned')!r}, include_defaults=False)\n"
        "out = simple_evaluate(model=lm, tasks=['pipeline_held_out', 'pipeline_gsm8k', 'pipeline_mmlu'], task_manager=tm,"
        " limit=10, bootstrap_iters=1000)\n"
        "print(json.dumps({k: {m: v for m, v in r.items() if m != 'alias'} for k, r in out['results'].items()}))\n"
    )
    direct = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert direct.returncode == 0, direct.stderr[-3000:]
    numbers = json.loads(direct.stdout.strip().splitlines()[-1])
    for name, t in by_task.items():
        metric = t["metric"]
        stderr_key = metric.replace(",", "_stderr,", 1)
        assert numbers[f"pipeline_{name}"][metric] == pytest.approx(t["tuned"]["value"], abs=1e-9), name
        assert numbers[f"pipeline_{name}"][stderr_key] == pytest.approx(t["tuned"]["stderr"], abs=1e-9), name

    # The finetune section's eval (what `pipeline finetune` runs after training with eval.enabled): the table
    # lands in the model card, after the card's own sections.
    from pipeline import storage
    from pipeline.evaluate.run import after_finetune
    from pipeline.train.card import trained_from
    from pipeline.train.config import FinetuneConfig

    settings = trained_from((adapter / "README.md").read_text())[1]
    cfg = FinetuneConfig.model_validate({**settings, "eval": {"enabled": True, "tasks": ["held_out"], "limit": 10,
                                                              "max_new_tokens": 8}})
    again = after_finetune(cfg, storage.locate(run), storage.locate(run / "finetune"))
    assert again["tasks"][0]["tuned"]["value"] == held["tuned"]["value"]
    card = (adapter / "README.md").read_text()
    assert "## Evaluation" in card and "| held_out | exact_match,none | 10 |" in card
    assert card.index("## Data provenance") < card.index("## Evaluation")


@pytest.mark.slow
def test_judge_through_a_real_backend(tmp_path):
    """The judge path with a real LLM client (the transformers backend on the tiny model, from --judge-config):
    every held-out pair goes to it in both orders; a judge that writes no verdict is reported as such."""
    run, model = facts_run(tmp_path, rows=60)
    pipeline("finetune", str(run), "--max-steps", "2", "--set", "sft.eval_fraction=0.2")
    judge_config = tmp_path / "judge.yaml"
    judge_config.write_text(f"llms:\n  judge: {{backend: transformers, model: {model}}}\n")
    done = pipeline("eval", str(model), "--adapter", str(run / "finetune" / "adapter"), "--tasks", "held_out",
                    "--limit", "5", "--max-new-tokens", "6", "--judge-config", str(judge_config))
    judge = json.loads((run / "finetune" / "eval" / "eval.json").read_text())["judge"]
    assert judge["model"] == str(model) and judge["prompts"] == 5
    assert judge["judged"] + judge["failed"] == 5
    assert judge["mean_length_base"] > 0 and judge["mean_length_tuned"] > 0
    assert f"Judge `{model}` on 5 held-out prompts, both orders" in done.stdout
    bad = pipeline("eval", str(model), "--tasks", "mmlu", "--judge-config", str(judge_config), "--out", str(tmp_path),
                   check=False)
    assert bad.returncode == 2 and "add held_out to tasks" in bad.stderr


@pytest.mark.slow
@pytest.mark.shared_data
def test_contamination_from_the_run_beside_the_scores(tmp_path, shared_data):
    """`pipeline run` (decontaminate, action flag) -> `pipeline finetune` -> `pipeline eval`: the GSM8K item the
    run flagged, and so trained on, marks GSM8K's score; the run's report gets the evaluation section."""
    gsm8k = json.loads((shared_data / "benchmarks" / "gsm8k" / "test.jsonl").read_text().splitlines()[0])
    chats = [{"id": "leak", "messages": [{"role": "user", "content": gsm8k["question"]},
                                         {"role": "assistant", "content": gsm8k["answer"]}]}]
    chats += [{"id": str(i), "messages": [{"role": "user", "content": f"#{1000 + i} {city} {city}"},
                                          {"role": "assistant", "content": country}]}
              for i, (city, country) in enumerate(list(FACTS.items()) * 3)]
    (tmp_path / "rows.jsonl").write_text("".join(json.dumps(c) + "\n" for c in chats))
    benchmarks = shared_data / "benchmarks"
    (tmp_path / "c.yaml").write_text(
        f"name: leaky\ninput: {{format: jsonl, paths: [{tmp_path / 'rows.jsonl'}]}}\noutput: {{path: {tmp_path / 'run'}}}\n"
        f"stages:\n  - decontaminate: {{benchmarks: [gsm8k, mmlu], benchmarks_dir: {benchmarks}, action: flag}}\n")
    pipeline("run", str(tmp_path / "c.yaml"))
    run = tmp_path / "run"
    model = build_tiny_model(tmp_path / "model", [m["content"] for c in chats for m in c["messages"]], vocab_size=600)
    # The finetune section's eval, through the command: the table in the card, the section in the run's report.
    pipeline("finetune", str(run), "--model", str(model), "--max-steps", "2", "--set", "sft.eval_fraction=0.2",
             "--set", "eval.enabled=true", "--set", "eval.tasks=[gsm8k]", "--set", "eval.limit=3",
             "--set", f"eval.benchmarks_dir={benchmarks}")
    report = (run / "report.html").read_text()
    assert "<h2>Evaluation</h2>" in report and "⚠ 1 items in the training data" in report
    assert report.count("<svg") >= 2  # the run's own charts and the evaluation's
    assert "## Evaluation" in (run / "finetune" / "adapter" / "README.md").read_text()

    done = pipeline("eval", str(model), "--adapter", str(run / "finetune" / "adapter"), "--tasks", "held_out,gsm8k,mmlu",
                    "--benchmarks-dir", str(benchmarks), "--limit", "3", "--max-new-tokens", "4")
    tasks = {t["task"]: t for t in json.loads((run / "finetune" / "eval" / "eval.json").read_text())["tasks"]}
    assert tasks["gsm8k"]["contamination"] == {"items": 1319, "items_found": 1, "leaked": 1,
                                               "source": "stats.json (01-decontaminate, action flag)"}
    assert tasks["mmlu"]["contamination"]["items_found"] == 0
    rows = {line.split(" | ")[0].strip("| "): line for line in done.stdout.splitlines() if line.startswith("| ")}
    assert "⚠ 1 items in the training data" in rows["gsm8k"] and "⚠" not in rows["mmlu"]

