"""Base against tuned, per task: the scores with their standard errors, the difference, and the
benchmark's contamination in the training data beside it; as eval.json's records and a Markdown table."""

from __future__ import annotations

import math

from pipeline.evaluate.harness import Score
from pipeline.evaluate.tasks import Task

LEAK_MARK = "⚠"


def compare(tasks: list[Task], scores: dict[str, dict[str, Score]], leaks: dict[str, dict]) -> list[dict]:
    """One record per task. The difference's standard error treats the two scores as independent, which
    overstates it on shared items (a paired test would be tighter), so a difference it calls clear is."""
    records = []
    for task in tasks:
        record = {"task": task.name, "metric": next(iter(scores.values()))[task.name].metric, "source": task.source}
        for label, by_task in scores.items():
            s = by_task[task.name]
            record[label] = {"value": s.value, "stderr": s.stderr, "n": s.n}
        if "base" in scores:
            base, tuned = scores["base"][task.name], scores["tuned"][task.name]
            record["difference"] = tuned.value - base.value
            if base.stderr is not None and tuned.stderr is not None:
                record["difference_stderr"] = math.hypot(base.stderr, tuned.stderr)
        if task.benchmark:
            record["contamination"] = leaks.get(task.benchmark)
        records.append(record)
    return records


def contamination_text(found: dict | None) -> str:
    if found is None:
        return "not checked (no training data known)"
    text = f"{found['items_found']} of {found['items']} items found ({found['source']})"
    if found["leaked"]:
        return f"{LEAK_MARK} {found['leaked']} items in the training data: {text}"
    return text


def _score(s: dict | None) -> str:
    if not s:
        return ""
    return f"{s['value']:.3f}" + (f" ± {s['stderr']:.3f}" if s.get("stderr") is not None else "")


def markdown(result: dict) -> str:
    """The table for the model card and the terminal."""
    labels = list(result["models"])
    lines = ["Models: " + "; ".join(f"{label}: `{desc}`" for label, desc in result["models"].items()), ""]
    header = ["task", "metric", "n", *labels] + (["difference"] if "base" in labels else []) + ["contamination"]
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for r in result["tasks"]:
        n = r[labels[-1]]["n"]
        cells = [r["task"], r["metric"], str(n), *(_score(r.get(label)) for label in labels)]
        if "base" in labels:
            diff = f"{r['difference']:+.3f}" + (f" ± {r['difference_stderr']:.3f}" if "difference_stderr" in r else "")
            cells.append(diff)
        cells.append(contamination_text(r["contamination"]) if "contamination" in r else "(the run's own prompts)")
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "Scores are means over the items with their standard errors (lm-evaluation-harness, zero-shot); "
              + (f"the first {result['limit']} items of each task. " if result.get("limit") else "")
              + f"{LEAK_MARK} marks a benchmark whose items are in the training data: its score is not a clean measurement."]
    if result.get("judge"):
        lines += ["", judge_text(result["judge"])]
    return "\n".join(lines)


def judge_text(judge: dict) -> str:
    """The judge's result in one sentence, for the table's page, the card and the report."""
    text = f"Judge `{judge['model']}` on {judge['prompts']} held-out prompts, both orders: "
    if judge["judged"]:
        text += (f"tuned win rate {judge['win_rate']:.1%}, length-controlled {judge['length_controlled']:.1%} "
                 f"({judge['judged']} judged)")
    else:
        text += "no usable verdict"
    text += (f"; mean answer length base {judge['mean_length_base']:.0f}, tuned {judge['mean_length_tuned']:.0f} "
             "characters" + (f"; {judge['failed']} prompts without a usable verdict" if judge["failed"] else "") + ".")
    return text
