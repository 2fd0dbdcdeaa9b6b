"""One model scored by lm-evaluation-harness, as a library: the base, or the base with the PEFT adapter.

lm-eval's `HFLM` loads the model (and applies the adapter with peft, as `peft=` on its command line
does), runs the log-likelihood and generation requests and aggregates the metrics with their standard
errors; we keep, per task, the reported metric, its standard error, the item count and every item's
answer (the judge reads the held-out answers).
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

from pipeline.evaluate.tasks import Task


@dataclasses.dataclass
class Side:
    """A model as evaluated: its weights, an optional adapter, and the tokenizer to read it with."""

    label: str
    model: str
    adapter: str | None = None
    tokenizer_path: str | None = None

    @property
    def tokenizer(self) -> str:
        """The adapter's tokenizer when it saved one (with the chat template used in training)."""
        if self.tokenizer_path:
            return self.tokenizer_path
        if self.adapter and (Path(self.adapter) / "tokenizer_config.json").exists():
            return self.adapter
        return self.model

    def describe(self) -> str:
        return self.model + (f" + adapter {self.adapter}" if self.adapter else "")


@dataclasses.dataclass
class Score:
    value: float
    stderr: float | None
    n: int
    metric: str


def require() -> None:
    """lm-eval is the eval extra's (`pip install 'instruct-pipeline[eval]'`), not every install's."""
    import importlib.util

    from pipeline.errors import UserError

    if importlib.util.find_spec("lm_eval") is None:
        raise UserError("pipeline eval needs lm-evaluation-harness: pip install 'instruct-pipeline[eval]'")


def load(side: Side, batch_size: int):
    """lm-eval's HF model for one side, on the GPU when there is one."""
    import torch
    from lm_eval.models.huggingface import HFLM

    device = "cuda" if torch.cuda.is_available() else "cpu"
    return HFLM(pretrained=side.model, peft=side.adapter, tokenizer=side.tokenizer, device=device,
                batch_size=batch_size, dtype="auto")


def score(lm, tasks: list[Task], include_path: Path, limit: int | None) -> tuple[dict[str, Score], dict[str, list[str]]]:
    """Every task's reported metric with its standard error, and every item's filtered answer."""
    from lm_eval import evaluator, simple_evaluate
    from lm_eval.tasks import TaskManager

    logging.getLogger("lm_eval").setLevel(logging.WARNING)
    # lm-eval records the commit of the working directory's git repository, which says nothing of the models,
    # and lets git's "fatal: not a git repository" through to the console wherever there is none.
    evaluator.get_git_commit_hash = lambda: None
    hub = any(t.harness_name == t.name for t in tasks)
    manager = TaskManager(include_path=str(include_path), include_defaults=hub)
    out = simple_evaluate(model=lm, tasks=[t.harness_name for t in tasks], task_manager=manager, limit=limit,
                          log_samples=True, bootstrap_iters=1000, verbosity="WARNING")
    scores, answers = {}, {}
    for task in tasks:
        result = out["results"][task.harness_name]
        metric = task.metric or _first_metric(result)
        name, _, filter_name = metric.partition(",")
        stderr = result.get(f"{name}_stderr,{filter_name}")
        samples = [s for s in out["samples"][task.harness_name] if s.get("filter", filter_name) == filter_name]
        scores[task.name] = Score(float(result[metric]), None if stderr in (None, "N/A") else float(stderr),
                                  len(samples), metric)
        answers[task.name] = [_answer(s) for s in sorted(samples, key=lambda s: s["doc_id"])]
    return scores, answers


def _first_metric(result: dict) -> str:
    return next(k for k in result if "," in k and "_stderr" not in k)


def _answer(sample: dict) -> str:
    """The model's answer to one item as the metric read it (a generation), or its raw response."""
    resps = sample.get("filtered_resps") or sample.get("resps") or [""]
    first = resps[0]
    return first if isinstance(first, str) else str(first)
