"""The lm-eval tasks we write for local benchmark copies: lm-eval loads them offline and builds the same
prompts and targets as its own task of that name, from the shared GSM8K and MMLU files."""

from __future__ import annotations

import pytest

from pipeline import hub
from pipeline.errors import UserError
from pipeline.evaluate.tasks import HELD_OUT, lm_eval_task_names, resolve, write_configs


def _load(folder, names):
    from lm_eval.tasks import TaskManager

    manager = TaskManager(include_path=str(folder), include_defaults=False)
    return manager.load_task_or_group(names)


@pytest.mark.shared_data
def test_local_copies_become_lm_eval_tasks(tmp_path, shared_data):
    tasks = resolve(["gsm8k", "mmlu", HELD_OUT], str(shared_data / "benchmarks"), tmp_path)
    assert [t.name for t in tasks] == ["gsm8k", "mmlu", HELD_OUT]
    assert [t.benchmark for t in tasks] == ["gsm8k", "mmlu", None]
    folder = write_configs(tasks, tmp_path / "tuned", [{"prompt": "<s>user: hi\nassistant:", "answer": "Hello"}], 16)
    loaded = _load(folder, [t.harness_name for t in tasks])
    by_name = {t.config.task: t for t in _flatten(loaded)}

    gsm8k = by_name["pipeline_gsm8k"]
    docs = list(gsm8k.test_docs())
    assert len(docs) == 1319
    first = docs[0]
    assert gsm8k.doc_to_text(first) == f"Question: {first['question']}\nAnswer:"  # lm-eval's gsm8k prompt
    assert gsm8k.doc_to_target(first).endswith("#### 18")

    mmlu = by_name["pipeline_mmlu"]
    docs = list(mmlu.test_docs())
    assert len(docs) == 14042
    doc = docs[0]
    assert len(doc["choices"]) == 4 and doc["answer"] in range(4)
    assert mmlu.doc_to_text(doc).endswith(f"D. {doc['choices'][3]}\nAnswer:")
    assert mmlu.doc_to_choice(doc) == ["A", "B", "C", "D"]

    held = by_name["pipeline_held_out"]
    (doc,) = held.test_docs()
    assert held.doc_to_text(doc) == "<s>user: hi\nassistant:" and held.doc_to_target(doc) == "Hello"


def _flatten(loaded):
    for value in loaded.values():
        if isinstance(value, dict):
            yield from _flatten(value)
        else:
            yield value


def test_an_unknown_task_is_one_line(tmp_path):
    with pytest.raises(UserError, match="unknown task 'gsm9k'"):
        resolve(["gsm9k"], None, tmp_path)


def test_a_benchmark_with_no_local_copy_and_no_hub(tmp_path, monkeypatch):
    monkeypatch.setattr(hub, "reachable", lambda: False)
    with pytest.raises(UserError, match="'arc_easy' has no local copy .*Hub cannot be reached"):
        resolve(["arc_easy"], str(tmp_path), tmp_path)


def test_lm_eval_s_task_names_are_indexed_once_per_installation(tmp_path, monkeypatch):
    """Indexing lm-eval's task configs took 15 to 20 s on every eval that named one of its tasks, and on every
    typo of ours: the names are read back from the user's cache, until another lm-eval is installed."""
    import lm_eval
    import lm_eval.tasks

    built = []

    class Manager:
        all_tasks = ["gsm8k", "hellaswag", "mmlu"]

        def __init__(self):
            built.append(self)

    monkeypatch.setattr(lm_eval.tasks, "TaskManager", Manager)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert lm_eval_task_names() == {"gsm8k", "hellaswag", "mmlu"} == lm_eval_task_names()
    assert len(built) == 1 and len(list((tmp_path / "pipeline").iterdir())) == 1
    monkeypatch.setattr(lm_eval, "__version__", "99.0")
    assert lm_eval_task_names() == {"gsm8k", "hellaswag", "mmlu"} and len(built) == 2


def test_a_task_named_twice(tmp_path):
    with pytest.raises(UserError, match="named twice"):
        resolve(["held_out", "held_out"], None, tmp_path)
