"""One eval end to end: tasks resolved, each model scored by lm-eval, the judge, contamination, outputs.

Everything a user can get wrong (an unknown task, a missing adapter, a benchmark with neither a local
copy nor the Hub) is found before a model loads. Writes `eval.json` and `eval.md` into the output
folder, beside the task configs (`tasks/`) that lm-eval ran, so a number can be traced to its items.
"""

from __future__ import annotations

import dataclasses
import gc
import json
import sys
import time
from pathlib import Path

from pipeline import hub, report, storage
from pipeline.errors import UserError
from pipeline.evaluate import contamination, harness, heldout, served, table
from pipeline.evaluate.harness import Side
from pipeline.evaluate.tasks import HELD_OUT, resolve, write_configs
from pipeline.quiet import quiet_libraries
from pipeline.storage import Location
from pipeline.train.card import add_evaluation, trained_from
from pipeline.train.config import EvalSection, FinetuneConfig
from pipeline.train.console import duration


@dataclasses.dataclass
class Trained:
    """What the adapter was trained on, when a `pipeline finetune` model card says so."""

    run_dir: Location
    config: FinetuneConfig


def trained_of(adapter: str | None) -> Trained | None:
    """The run and settings of an adapter `pipeline finetune` wrote (its README.md), else None."""
    if not adapter:
        return None
    try:
        run_dir, config = trained_from((storage.locate(adapter) / "README.md").read_text())
    except OSError:
        return None
    if not run_dir or not config:
        return None
    return Trained(storage.locate(run_dir), FinetuneConfig.model_validate(config))


def sides(model: str, adapter: str | None, against: str | None) -> list[Side]:
    """Base first, then the tuned model; one side when there is nothing to compare against."""
    tuned = Side("tuned" if (adapter or against) else "model", model, adapter)
    if not (adapter or against):
        return [tuned]
    base = Side("base", against or model)
    if base.model == model:
        base.tokenizer_path = tuned.tokenizer  # the same weights: the same tokenizer and template as served tuned
    return [base, tuned]


def check_inputs(model: str, adapter: str | None, against: str | None) -> None:
    """The models and the adapter are there, and where lm-eval can load them (local disk or the Hub)."""
    for what, name in (("adapter", adapter), ("model", model), ("--against", against)):
        if name and "://" in name:
            raise UserError(f"eval: {what} {name}: lm-eval loads models from local disk or the Hub; copy it here first")
    if adapter and not (storage.locate(adapter) / "adapter_config.json").exists():
        raise UserError(f"eval: adapter not found: {adapter} has no adapter_config.json")

    for what, name in (("model", model), ("--against", against)):
        why = name and hub.local_or_hub_problem(name, "model")
        if why:
            raise UserError(f"eval: {what} {name}: {why}")


def evaluate(settings: EvalSection, model: str, out: Path, adapter: str | None = None,
             against: str | None = None, trained: Trained | None = None, vllm_url: str | None = None) -> dict:
    """Score every side on every task, compare, and write eval.json and eval.md into `out`; with
    `vllm_url`, through that vLLM server (the adapter served as a LoRA) instead of loading the models."""
    started = time.perf_counter()
    harness.require()
    quiet_libraries()
    check_inputs(model, adapter, against)
    for side in sides(model, adapter, against):
        why = hub.tokenizer_problem(side.tokenizer)
        if why:
            raise UserError(f"eval: the tokenizer of {side.label} ({side.tokenizer}): {why}")
    trained = trained or trained_of(adapter)
    folder = out / "tasks"
    tasks = resolve(settings.tasks, settings.benchmarks_dir, folder)
    train_chats, prompts = _prompts(settings, trained)
    if vllm_url:
        served.check_adapter(adapter, tasks)
    server = served.connect(vllm_url) if vllm_url else None
    names = {s.label: server.name_of(s.model, s.adapter) for s in sides(model, adapter, against)} if server else {}
    for name in names.values():
        served.check_logprobs(server, name, tasks)
    timing = {"load_s": 0.0, "harness_s": 0.0}
    scores, answers = {}, {}
    for side in sides(model, adapter, against):
        from transformers import AutoTokenizer

        items = heldout.render(AutoTokenizer.from_pretrained(side.tokenizer), prompts, side.tokenizer) if prompts else None
        include = write_configs(tasks, folder / side.label, items, settings.max_new_tokens)
        t0 = time.perf_counter()
        print(f"eval: {side.label} ({names.get(side.label) or side.describe()}) on {', '.join(t.name for t in tasks)}"
              + (f", the first {settings.limit} items of each" if settings.limit else ""), file=sys.stderr, flush=True)
        if server:
            lm = served.load(server, names[side.label], side.tokenizer, settings.batch_size)
        else:
            lm = harness.load(side, settings.batch_size)
        t1 = time.perf_counter()
        scores[side.label], answers[side.label] = harness.score(lm, tasks, include, settings.limit)
        timing["load_s"] += t1 - t0
        timing["harness_s"] += time.perf_counter() - t1
        print(f"eval: {side.label} scored in {duration(time.perf_counter() - t0)}", file=sys.stderr, flush=True)
        del lm
        gc.collect()
    result = {
        "models": {s.label: s.describe() + (f" on vLLM {server.url} as {names[s.label]}" if server else "")
                   for s in sides(model, adapter, against)},
        "limit": settings.limit,
        "tasks": table.compare(tasks, scores, _contamination(tasks, trained, train_chats, settings)),
    }
    if settings.judge and prompts and len(scores) == 2:
        t0 = time.perf_counter()
        result["judge"] = _judge(settings, prompts, answers)
        timing["judge_s"] = time.perf_counter() - t0
    timing["total_s"] = time.perf_counter() - started
    timing["ours_s"] = timing["total_s"] - sum(v for k, v in timing.items() if k not in ("total_s",))
    result["timing"] = {k: round(v, 3) for k, v in timing.items()}
    out.mkdir(parents=True, exist_ok=True)
    (out / "eval.json").write_text(json.dumps(result, indent=2) + "\n")
    (out / "eval.md").write_text(table.markdown(result) + "\n")
    (out / "eval.html").write_text(report.page("Evaluation", report.evaluation(result)))
    return result


def preflight(settings: EvalSection, out: Location) -> None:
    """What `pipeline finetune` checks before training when its eval section is enabled: the output is
    local, lm-eval is installed and every task resolves (a typo or an unreachable benchmark fails now,
    not after training)."""
    import tempfile

    if not settings.enabled:
        return
    _require_local(out)
    harness.require()
    with tempfile.TemporaryDirectory(prefix="pipeline-eval-") as folder:
        resolve(settings.tasks, settings.benchmarks_dir, Path(folder))


def after_finetune(cfg: FinetuneConfig, run_dir: Location, out: Location) -> dict | None:
    """The `finetune: {eval: ...}` section: the base against the adapter just trained, on the run's
    held-out split and the tasks asked; the table goes into the model card and the run's report."""
    if not cfg.eval.enabled:
        return None
    _require_local(out)
    adapter = out / "adapter"
    if cfg.method == "full":
        result = evaluate(cfg.eval, adapter.local_path().as_posix(), out.local_path() / "eval", against=cfg.model,
                          trained=Trained(run_dir, cfg))
    else:
        result = evaluate(cfg.eval, cfg.model, out.local_path() / "eval", adapter=adapter.local_path().as_posix(),
                          trained=Trained(run_dir, cfg))
    add_evaluation(adapter / "README.md", table.markdown(result))
    _into_run_report(run_dir, result)
    return result


def _into_run_report(run_dir: Location, result: dict) -> None:
    """The run's report.html again, with the evaluation section, when the run wrote its statistics."""
    try:
        stats = json.loads((run_dir / "stats.json").read_text())
    except (OSError, ValueError):
        return
    if isinstance(stats, dict) and "stages" in stats:
        report.write(run_dir / "report.html", {**stats, "evaluation": result})


def _prompts(settings: EvalSection, trained: Trained | None) -> tuple[list, list]:
    """(training conversations, prompts to ask): the prompt file, or the fine-tune's held-out split."""
    if HELD_OUT not in settings.tasks:
        return (heldout.split_of_run(trained.config, trained.run_dir)[0] if trained else []), []
    if settings.prompts:
        train = heldout.split_of_run(trained.config, trained.run_dir)[0] if trained else []
        return train, heldout.from_file(settings.prompts)
    if trained is None:
        raise UserError("eval: held_out needs the adapter of a `pipeline finetune` run (its model card names the run "
                        "and the split), or a prompt file (--prompts)")
    train, held = heldout.split_of_run(trained.config, trained.run_dir)
    if not held:
        raise UserError(f"eval: the fine-tune of {trained.run_dir} held out no rows (sft.eval_fraction is 0); "
                        "give a prompt file (--prompts)")
    return train, held


def _contamination(tasks, trained: Trained | None, train_chats: list, settings: EvalSection) -> dict[str, dict]:
    """Each benchmark's contamination: the run's decontaminate stats, else a scan of the training rows."""
    found = contamination.from_stats(trained.run_dir if trained else None)
    unscanned = [t.benchmark for t in tasks if t.benchmark and t.benchmark not in found]
    if unscanned and train_chats:
        found.update(contamination.scan(unscanned, contamination.training_texts(train_chats), settings.benchmarks_dir))
    return found


def _judge(settings: EvalSection, prompts: list, answers: dict) -> dict:
    from generators.factory import make_client
    from pipeline.evaluate import winrate

    n = len(answers["base"][HELD_OUT])  # the first `limit` prompts were answered
    base, tuned = answers["base"][HELD_OUT], answers["tuned"][HELD_OUT]
    client = make_client(settings.judge)
    try:
        shares = winrate.judge(client, prompts[:n], base, tuned, settings.judge_max_tokens)
    finally:
        client.close()
    rates = winrate.win_rates(shares, [len(a) for a in base], [len(a) for a in tuned])
    return {"model": settings.judge.get("model"), **rates.as_dict()}


def _require_local(out: Location) -> None:
    if not out.is_local:
        raise UserError(f"finetune eval: the output must be a local folder (lm-eval reads from disk): {out}")
