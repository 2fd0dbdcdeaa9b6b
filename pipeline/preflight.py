"""Checks before work: everything a config names that can be looked at without running anything.

`pipeline validate` and `pipeline run` both call `check` before Ray starts, so a glob that matches
nothing, a missing model file or a benchmark that cannot be reached offline is reported in a
second, all of them at once, each with its file and line, instead of one at a time after Ray
has started and the stages before it have run. Storage is asked too: every input is looked at
and a small object is written at the output, so a missing bucket, an unreachable endpoint, wrong
credentials or a read-only key is one line naming the URI, not a failure in a Ray worker.
"""

from __future__ import annotations

from pipeline import hub, storage
from pipeline.config import ValidatedRun, in_file_order
from pipeline.errors import UserError
from pipeline.yaml_source import dotted


def check(run: ValidatedRun) -> None:
    """Raise one UserError listing every problem of the inputs, the tokenizer and the stages."""
    run.worker_env()  # the storage settings, before any path is looked at
    problems = _input_problems(run) + _output_problems(run) + _tokenizer_problems(run)
    for i, stage in enumerate(run.stages):  # a validated run has a stage for every entry of `stages:`
        for problem in stage.check():
            path = ("stages", i, stage.name, *problem.option)
            problems.append((path, f"{run.located.where(path)}: {dotted(path)}: {problem.message}"))
    if problems:
        raise UserError(in_file_order(problems, run.located))


def _input_problems(run: ValidatedRun) -> list[tuple[tuple, str]]:
    problems = []
    for i, source in enumerate(run.config.input):
        files_key, files = "paths", source.paths
        if source.format == "hf":
            files_key, files = "data_files", source.data_files or []
            why = _dataset_problem(source.dataset)
            if why:
                path = _input_path(run, i, "dataset")
                problems.append((path, f"{run.located.where(path)}: {dotted(path)}: {why}"))
        for j, pattern in enumerate(files):
            path = _input_path(run, i, files_key, j)
            try:
                storage.expand([pattern], dotted(path))
            except UserError as e:
                bucket = storage.missing_bucket(pattern)
                problems.append((path, f"{run.located.where(path)}: {e}" + (f" ({bucket})" if bucket else "")))
    return problems


def _dataset_problem(dataset: str) -> str | None:
    """Why an `hf` input's dataset cannot load: one in object storage is looked at there, a local path
    or Hub id as `datasets` would find it."""
    if "://" in dataset:
        return storage.file_problem(dataset, folder=True)
    if _is_builder(dataset):
        return None
    why = hub.local_or_hub_problem(dataset, "dataset")
    return why and f"{why}; give a local copy (a folder `datasets` can load) instead"


def _output_problems(run: ValidatedRun) -> list[tuple[tuple, str]]:
    """Whether the output can be written, asked by writing: a store's permissions cannot be read. On local
    disk the probe goes in the nearest folder that exists, so a check leaves no folder behind."""
    out = storage.locate(run.config.output.path)
    where = out
    while where.is_local and not where.exists() and where.parent.path != where.path:
        where = where.parent
    why = storage.probe_writable(where)
    path = ("output", "path")
    return [(path, f"{run.located.where(path)}: {dotted(path)}: cannot write to {out.uri}: {why}")] if why else []


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

