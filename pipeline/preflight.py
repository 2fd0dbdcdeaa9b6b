"""Checks before work: everything a config names that can be looked at without running anything.

`pipeline validate` and `pipeline run` both call `check` before Ray starts, so a glob that matches
nothing, a missing model file or a benchmark that cannot be reached offline is reported in a
second, all of them at once, each with its file and line, instead of one at a time after Ray
has started and the stages before it have run.
"""

from __future__ import annotations

from pathlib import Path

from pipeline import hub
from pipeline.config import ValidatedRun, in_file_order
from pipeline.errors import UserError
from pipeline.yaml_source import dotted


def check(run: ValidatedRun) -> None:
    """Raise one UserError listing every problem of the inputs, the tokenizer and the stages."""
    run.worker_env()  # the storage settings, before any path is looked at
    problems = _input_problems(run) + _tokenizer_problems(run)
    for i, stage in enumerate(run.stages):  # a validated run has a stage for every entry of `stages:`
        for problem in stage.check():
            path = ("stages", i, stage.name, *problem.option)
            problems.append((path, f"{run.located.where(path)}: {dotted(path)}: {problem.message}"))
    if problems:
        raise UserError(in_file_order(problems, run.located))


def _input_problems(run: ValidatedRun) -> list[tuple[tuple, str]]:
    from pipeline.readers import expand_paths

    problems = []
    for i, source in enumerate(run.config.input):
        files_key, files = "paths", source.paths
        if source.format == "hf":
            files_key, files = "data_files", source.data_files or []
            why = None if _is_builder(source.dataset) else hub.local_or_hub_problem(source.dataset, "dataset")
            if why:
                path = _input_path(run, i, "dataset")
                problems.append((path, f"{run.located.where(path)}: {dotted(path)}: {why}; "
                                       "give a local copy (a folder `datasets` can load) instead"))
        for j, pattern in enumerate(files):
            path = _input_path(run, i, files_key, j)
            try:
                expand_paths([pattern], dotted(path))
            except UserError as e:
                problems.append((path, f"{run.located.where(path)}: {e}"))
    return problems


def _is_builder(dataset: str) -> bool:
    """`json`, `parquet`, `csv`...: a `datasets` builder that reads `data_files`, not a Hub dataset."""
    from datasets.packaged_modules import _PACKAGED_DATASETS_MODULES

    return dataset in _PACKAGED_DATASETS_MODULES


def _input_path(run: ValidatedRun, i: int, *key) -> tuple:
    """The key path of an input's option: `input` may be one mapping or a list of them."""
    return ("input", i, *key) if isinstance(run.located.data.get("input"), list) else ("input", *key)


def _tokenizer_problems(run: ValidatedRun) -> list[tuple[tuple, str]]:
    name = run.config.tokenizer
    why = hub.local_or_hub_problem(name, "model") if name else None
    where = run.located.where(("tokenizer",))
    return [(("tokenizer",), f"{where}: tokenizer: {why}; give the path of a local tokenizer folder")] if why else []

