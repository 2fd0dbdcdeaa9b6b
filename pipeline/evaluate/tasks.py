"""The lm-evaluation-harness tasks of an eval, as task configs we write for local files.

lm-eval's own task configs name Hub datasets, which an offline machine cannot load. A benchmark with a
local copy (the layout `decontaminate` reads under a benchmarks directory, found by the contamination
registry) is therefore read with our readers, written as one JSONL file in a common shape, and given a
YAML config with lm-eval's own prompt, choices and metric for that benchmark (`dataset_path: json`).
The run's held-out prompts become one more task, `held_out`: the prompt rendered with the model's own
chat template, the reference answer matched exactly. A name without a local copy is lm-eval's built-in
task of that name, usable only when the Hub answers.

Prompts are zero-shot: the local copies hold test splits only, and few-shot examples drawn from the
test split would be evaluated on too.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from pathlib import Path

import yaml

from filters.contamination.benchmarks import REGISTRY, BenchmarkNotFound, read_rows, local_files
from pipeline import hub, storage
from pipeline.errors import UserError

HELD_OUT = "held_out"
PREFIX = "pipeline_"  # our configs' task names, distinct from lm-eval's built-in ones


@dataclasses.dataclass(frozen=True)
class Task:
    """One evaluated task: the name the user gave, lm-eval's task name, the metric reported, and where
    its items came from (a local file, the Hub, or the run's held-out split)."""

    name: str
    harness_name: str
    metric: str
    source: str
    benchmark: str | None = None  # the contamination registry's name, for the contamination column


def _mmlu_rows(rows):
    for r in rows:
        yield {"question": r["question"], "choices": [str(r[f"choice{i}"]) for i in range(4)], "answer": int(r["answer"])}


def _gsm8k_rows(rows):
    for r in rows:
        yield {"question": r["question"], "answer": r["answer"]}


# The benchmarks we can run from a local copy: how its rows map to the common shape, lm-eval's config for
# that shape (prompt, targets, metric as in lm-eval's own task of the name), and the metric we report.
_GSM8K_CONFIG = {
    "output_type": "generate_until",
    "doc_to_text": "Question: {{question}}\nAnswer:",
    "doc_to_target": "{{answer}}",
    "metric_list": [{"metric": "exact_match", "aggregation": "mean", "higher_is_better": True, "ignore_case": True,
                     "ignore_punctuation": False, "regexes_to_ignore": [",", "\\$", "(?s).*#### ", "\\.$"]}],
    "generation_kwargs": {"until": ["Question:", "</s>", "<|im_end|>"], "do_sample": False, "temperature": 0.0},
    "filter_list": [{"name": "strict-match", "filter": [{"function": "regex", "regex_pattern": "#### (\\-?[0-9\\.\\,]+)"},
                                                        {"function": "take_first"}]},
                    {"name": "flexible-extract", "filter": [{"function": "regex", "group_select": -1,
                                                             "regex_pattern": "(-?[$0-9.,]{2,})|(-?[0-9]+)"},
                                                            {"function": "take_first"}]}],
}
_MMLU_CONFIG = {
    "output_type": "multiple_choice",
    "doc_to_text": "{{question.strip()}}\nA. {{choices[0]}}\nB. {{choices[1]}}\nC. {{choices[2]}}\nD. {{choices[3]}}\nAnswer:",
    "doc_to_choice": ["A", "B", "C", "D"],
    "doc_to_target": "answer",
    "metric_list": [{"metric": "acc", "aggregation": "mean", "higher_is_better": True}],
}
LOCAL = {
    "gsm8k": (_gsm8k_rows, _GSM8K_CONFIG, "exact_match,strict-match"),
    "mmlu": (_mmlu_rows, _MMLU_CONFIG, "acc,none"),
}
_HELD_OUT_METRIC = "exact_match,none"


def check_names(names: list[str]) -> None:
    """Names that can never be a task, before anything loads: one line, exit 2."""
    if not names:
        raise UserError("eval: no tasks given (e.g. --tasks held_out,gsm8k,mmlu)")
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise UserError(f"eval: task {dup[0]!r} is named twice")


def resolve(names: list[str], benchmarks_dir: str | None, folder: Path) -> list[Task]:
    """Every named task as lm-eval will run it; local benchmarks are written into `folder/data`.

    Raises UserError for a name that is neither ours nor lm-eval's, and for a benchmark with no local
    copy while the Hub cannot be reached."""
    check_names(names)
    benchmarks_dir = benchmarks_dir or os.environ.get("PIPELINE_BENCHMARKS_DIR")
    tasks, remote = [], []
    for name in names:
        if name == HELD_OUT:
            tasks.append(Task(name, PREFIX + name, _HELD_OUT_METRIC, "the run's held-out split"))
            continue
        files = _local_copy(name, benchmarks_dir)
        if files and name in LOCAL:
            tasks.append(_write_local(name, files, folder))
        elif files:
            raise UserError(f"eval: task {name!r} has a local copy under {benchmarks_dir}, but only "
                            f"{', '.join(sorted(LOCAL))} can be evaluated from local files")
        else:
            remote.append(name)
    if remote:
        tasks += _hub_tasks(remote, benchmarks_dir)
    order = {n: i for i, n in enumerate(names)}
    return sorted(tasks, key=lambda t: order[t.name])


def _local_copy(name: str, benchmarks_dir: str | None) -> list:
    spec = REGISTRY.get(name)
    if spec is None or not benchmarks_dir:
        return []
    try:
        return local_files(spec, benchmarks_dir)
    except BenchmarkNotFound as e:
        raise UserError(f"eval: {e}") from None


def _write_local(name: str, files: list, folder: Path) -> Task:
    to_rows, _, metric = LOCAL[name]
    data = folder / "data" / f"{name}.jsonl"
    data.parent.mkdir(parents=True, exist_ok=True)
    with data.open("w") as out:
        for row in to_rows(read_rows(files)):
            out.write(json.dumps(row) + "\n")
    return Task(name, PREFIX + name, metric, ", ".join(str(f) for f in files), benchmark=name)


def _hub_tasks(names: list[str], benchmarks_dir: str | None) -> list[Task]:
    """lm-eval's built-in tasks of these names."""
    known = lm_eval_task_names()
    unknown = [n for n in names if n not in known]
    if unknown:
        local = ", ".join([HELD_OUT, *sorted(LOCAL)])
        raise UserError(f"eval: unknown task {unknown[0]!r} (from local copies: {local}; or an lm-eval task name)")
    if not hub.reachable():
        where = f"nothing for it under {benchmarks_dir}" if benchmarks_dir else "--benchmarks-dir is not set"
        raise UserError(f"eval: task {names[0]!r} has no local copy ({where}) and the Hugging Face Hub cannot be "
                        f"reached; give a benchmarks directory with {names[0]}/ in it")
    return [Task(n, n, "", "lm-eval's task (Hugging Face Hub)", benchmark=n if n in REGISTRY else None) for n in names]


def lm_eval_task_names() -> set[str]:
    """lm-eval's task, group and tag names. Indexing its configs (some 14,000 YAML files) took 15 to 20 s on
    every `pipeline eval` that named one of its tasks, and on every typo of ours; the names are kept in the
    user's cache folder, one file per lm-eval version and installation."""
    import lm_eval

    where = Path(lm_eval.__file__).parent
    key = hashlib.sha256(f"{lm_eval.__version__} {where}".encode()).hexdigest()[:16]
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "pipeline" / f"lm-eval-tasks-{key}.json"
    try:
        return set(json.loads(cache.read_text()))
    except (OSError, ValueError):
        pass
    from lm_eval.tasks import TaskManager

    names = sorted(TaskManager().all_tasks)
    try:  # written whole or not at all; one that cannot be written costs the next run the index again
        storage.locate(cache).write_text(json.dumps(names))
    except OSError:
        pass
    return set(names)


def write_configs(tasks: list[Task], folder: Path, held_out: list[dict] | None, max_new_tokens: int) -> Path:
    """One side's task configs in `folder/<side>`: the local benchmarks' configs (same for both sides)
    and the held-out task with prompts rendered by this side's tokenizer (`held_out`: prompt, answer)."""
    folder.mkdir(parents=True, exist_ok=True)
    data = folder.parent / "data"
    for task in tasks:
        if task.harness_name == task.name:
            continue  # lm-eval's own
        if task.name == HELD_OUT:
            path = folder / f"{HELD_OUT}.jsonl"
            path.write_text("".join(json.dumps(r) + "\n" for r in held_out or []))
            config = _held_out_config(max_new_tokens)
        else:
            path = data / f"{task.name}.jsonl"
            config = dict(LOCAL[task.name][1])
        config = {"task": task.harness_name, "dataset_path": "json",
                  "dataset_kwargs": {"data_files": {"test": str(path.resolve())}}, "test_split": "test",
                  "num_fewshot": 0, **config, "metadata": {"version": 1.0}}
        (folder / f"{task.harness_name}.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    return folder


def _held_out_config(max_new_tokens: int) -> dict:
    """Greedy answers to the held-out prompts, matched exactly (after stripping) against the reference.
    Generation stops where the model's generation config says a turn ends."""
    return {
        "output_type": "generate_until",
        "doc_to_text": "{{prompt}}",
        "doc_to_target": "{{answer}}",
        "target_delimiter": "",
        "generation_kwargs": {"until": [], "do_sample": False, "temperature": 0.0, "max_gen_toks": max_new_tokens},
        "filter_list": [{"name": "none", "filter": [{"function": "remove_whitespace"}, {"function": "take_first"}]}],
        "metric_list": [{"metric": "exact_match", "aggregation": "mean", "higher_is_better": True,
                         "ignore_case": False, "ignore_punctuation": False}],
    }
