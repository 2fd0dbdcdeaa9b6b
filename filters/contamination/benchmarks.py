"""The benchmark registry: where each benchmark lives and which of its fields a leak would show.

A benchmark item is the text a model is evaluated on, split into parts (question, each choice,
answer, code...): parts are matched separately, because training text formats them in its own way
(option labels, "Answer:" prefixes) and an n-gram across two parts would depend on that formatting.

A benchmark loads from its own files when they exist (`benchmarks_dir` with the built-in layouts below,
or any JSONL/JSON/CSV/Parquet file, gzipped or not, with a field mapping), on local disk or in object
storage (`pipeline.storage`), else from the Hugging Face Hub through `datasets.load_dataset`. Both go
through the same `items_from_rows` mapping.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import os
from typing import Any, Callable, Iterable, Iterator

from pipeline import storage
from pipeline.errors import UserError
from pipeline.storage import Location


@dataclasses.dataclass(frozen=True)
class BenchmarkItem:
    benchmark: str
    item_id: str
    parts: tuple[str, ...]


@dataclasses.dataclass(frozen=True)
class BenchmarkSpec:
    """How to load one benchmark.

    `fields` are dotted paths into a row (`choices.text`); a list value gives one part per element.
    `local` are glob patterns under a benchmarks directory, each with the fields of that layout.
    `group_field` names what a benchmark of several subjects or tasks numbers its items within (see
    `items_from_rows`): a field of the Hub rows, else the Hub config, or a local file's name.
    """

    name: str
    fields: tuple[str, ...]
    id_field: str | None = None
    hub_id: str | None = None
    hub_configs: tuple[str | None, ...] = (None,)
    hub_split: str = "test"
    local: str | None = None
    local_fields: tuple[str, ...] | None = None
    path: str | None = None
    group_field: str | None = None


def _spec(name, fields, hub_id, split="test", configs=(None,), id_field=None, local=None, local_fields=None,
          group_field=None):
    return BenchmarkSpec(
        name=name,
        fields=tuple(fields),
        id_field=id_field,
        hub_id=hub_id,
        hub_configs=tuple(configs),
        hub_split=split,
        local=local,
        local_fields=tuple(local_fields) if local_fields else None,
        group_field=group_field,
    )


_BBH_TASKS = (
    "boolean_expressions causal_judgement date_understanding disambiguation_qa dyck_languages formal_fallacies "
    "geometric_shapes hyperbaton logical_deduction_five_objects logical_deduction_seven_objects "
    "logical_deduction_three_objects movie_recommendation multistep_arithmetic_two navigate object_counting "
    "penguins_in_a_table reasoning_about_colored_objects ruin_names salient_translation_error_detection snarks "
    "sports_understanding temporal_sequences tracking_shuffled_objects_five_objects "
    "tracking_shuffled_objects_seven_objects tracking_shuffled_objects_three_objects web_of_lies word_sorting"
).split()

_MATH_SUBJECTS = (
    "algebra counting_and_probability geometry intermediate_algebra number_theory prealgebra precalculus"
).split()

REGISTRY: dict[str, BenchmarkSpec] = {
    s.name: s
    for s in (
        _spec("humaneval", ["prompt", "canonical_solution"], "openai/openai_humaneval", id_field="task_id",
              local="humaneval/HumanEval.jsonl*"),
        _spec("mbpp", ["text", "code"], "google-research-datasets/mbpp", configs=["full"], id_field="task_id",
              local="mbpp/*.jsonl*"),
        _spec("gsm8k", ["question", "answer"], "openai/gsm8k", configs=["main"], local="gsm8k/test.jsonl*"),
        _spec("math", ["problem", "solution"], "EleutherAI/hendrycks_math", configs=_MATH_SUBJECTS,
              local="math/test/*.jsonl*", group_field="subject"),
        _spec("mmlu", ["question", "choices"], "cais/mmlu", configs=["all"], local="mmlu/test/*.csv",
              local_fields=["question", "choice0", "choice1", "choice2", "choice3"], group_field="subject"),
        _spec("arc", ["question", "choices.text"], "allenai/ai2_arc", configs=["ARC-Challenge", "ARC-Easy"],
              id_field="id", local="arc/*.jsonl*"),
        _spec("hellaswag", ["ctx", "endings"], "Rowan/hellaswag", split="validation", id_field="ind",
              local="hellaswag/*.jsonl*"),
        _spec("truthfulqa", ["question", "best_answer", "correct_answers", "incorrect_answers"],
              "truthfulqa/truthful_qa", split="validation", configs=["generation"], local="truthfulqa/*.jsonl*"),
        _spec("bbh", ["input", "target"], "lukaemon/bbh", configs=_BBH_TASKS, local="bbh/*.jsonl*", group_field="task"),
        _spec("ifeval", ["prompt"], "google/IFEval", split="train", id_field="key", local="ifeval/*.jsonl*"),
    )
}


BACKGROUND = "background corpus"


class BenchmarkNotFound(LookupError):
    """A benchmark that is neither registered nor a readable file, or whose data cannot be reached."""


def custom(path: str | os.PathLike, fields: Iterable[str], name: str | None = None,
           id_field: str | None = None) -> BenchmarkSpec:
    """A benchmark from any file, folder or glob: the fields to check are the user's to name."""
    path = os.fspath(path)
    fields = tuple(fields)
    if not fields:
        raise BenchmarkNotFound(f"custom benchmark {path}: name the fields to check (e.g. question, answer)")
    return BenchmarkSpec(name=name or _stem(path), fields=fields, id_field=id_field, path=path)


def load_items(spec: BenchmarkSpec, benchmarks_dir: str | os.PathLike | None = None) -> list[BenchmarkItem]:
    """Every item of a benchmark: from its own file, else the local layout, else the Hub."""
    if spec.path:
        files = _data_files(spec.path)
        if not files:
            raise BenchmarkNotFound(f"benchmark '{spec.name}': no file at {spec.path}")
        return items_from_rows(spec, read_rows(files), spec.fields)
    files = local_files(spec, benchmarks_dir)
    if files:
        return items_from_rows(spec, read_rows(files, spec.group_field, spec.hub_split), spec.local_fields or spec.fields)
    if not spec.hub_id:
        raise BenchmarkNotFound(f"benchmark '{spec.name}': no local copy and no Hub id")
    return items_from_rows(spec, _hub_rows(spec), spec.fields)


def local_files(spec: BenchmarkSpec, benchmarks_dir: str | os.PathLike | None) -> list[Location]:
    """The files of a registered benchmark's own copy in the built-in layout, if there is one."""
    return _matches(_in_layout(spec, benchmarks_dir), "benchmarks_dir") if benchmarks_dir and spec.local else []


def _in_layout(spec: BenchmarkSpec, benchmarks_dir: str | os.PathLike) -> str:
    return f"{os.fspath(benchmarks_dir).rstrip('/')}/{spec.local}"


def unreachable(spec: BenchmarkSpec, benchmarks_dir: str | os.PathLike | None,
                hub_problem: Callable[[str], str | None], how: str) -> str | None:
    """Why a registered benchmark cannot load, found without loading it: it has no own copy (or the
    store that should hold it cannot be asked), and the Hub cannot serve it (`hub_problem(hub_id)` says
    why, or None when it can). `how` names the setting that points at own copies."""
    try:
        if spec.path or local_files(spec, benchmarks_dir) or not spec.hub_id:
            return None  # a custom file was found by `resolve`; without a Hub id, `load_items` says so
    except BenchmarkNotFound as e:
        return str(e)
    why = hub_problem(spec.hub_id)
    if why is None:
        return None
    found = f"nothing matches {_in_layout(spec, benchmarks_dir)}" if benchmarks_dir else f"{how} is not set"
    return (f"benchmark '{spec.name}': no local copy ({found}) and {why}; to use a local copy, put the files "
            f"of {spec.hub_id} as {spec.local} in a folder and name it with {how}")


def items_from_rows(spec: BenchmarkSpec, rows: Iterable[dict], fields: tuple[str, ...]) -> list[BenchmarkItem]:
    """Map raw rows to items, with the id a user looks an item up by: the id field; else, in a benchmark of
    subjects or tasks, the group and the row's position in it (`high_school_biology/17`: row 17, from 0, of
    that subject's test split, on the Hub and in the subject's own file alike); else the row's position."""
    items = []
    seen: dict[str, int] = {}
    first_row = None
    for i, row in enumerate(rows):
        first_row = row if first_row is None else first_row
        group = _get(row, spec.group_field) if spec.group_field else None
        position = i if group is None else seen.get(str(group), 0)
        if group is not None:
            seen[str(group)] = position + 1
        parts = tuple(p for f in fields for p in _values(_get(row, f)) if p.strip())
        if not parts:
            continue
        if spec.id_field and _get(row, spec.id_field) is not None:
            item_id = str(_get(row, spec.id_field))
        else:
            item_id = str(position) if group is None else f"{group}/{position}"
        items.append(BenchmarkItem(spec.name, item_id, parts))
    if not items:  # a misnamed field would otherwise check nothing and report a clean data set
        raise BenchmarkNotFound(
            f"benchmark '{spec.name}': no rows" if first_row is None else
            f"benchmark '{spec.name}': no row has text in {', '.join(fields)} (its first row has: {', '.join(first_row)})"
        )
    return items


def _get(row: dict, dotted: str) -> Any:
    value: Any = row
    for key in dotted.split("."):
        if not isinstance(value, dict) or key not in value:
            return None
        value = value[key]
    return value


def _values(value: Any) -> Iterator[str]:
    if value is None:
        return
    if isinstance(value, (list, tuple)):
        for v in value:
            yield from _values(v)
    elif isinstance(value, str):
        yield value
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        yield str(value)


def _hub_rows(spec: BenchmarkSpec) -> Iterator[dict]:
    try:
        import datasets

        for config in spec.hub_configs:
            rows = datasets.load_dataset(spec.hub_id, config, split=spec.hub_split)
            yield from (_in_group(row, spec.group_field, config) for row in rows)
    except Exception as e:  # offline, gated, renamed: all are "cannot reach it" to the user
        raise BenchmarkNotFound(
            f"benchmark '{spec.name}': no local copy (set benchmarks_dir) and the Hub dataset "
            f"{spec.hub_id} could not be loaded ({type(e).__name__}: {str(e).splitlines()[0][:200]})"
        ) from e


def _stem(path: str) -> str:
    name = _name(path)
    for suffix in (".gz", ".jsonl", ".json", ".csv", ".parquet"):
        name = name.removesuffix(suffix)
    return name or _name(path)


def _name(path: str) -> str:
    return path.rstrip("/").rsplit("/", 1)[-1]


def _matches(pattern: str, what: str = "benchmark") -> list[Location]:
    """The files a path, folder or glob names on any storage, or none; a store that cannot be asked is
    a BenchmarkNotFound that names it and why."""
    try:
        return storage.matches(pattern, what)
    except UserError as e:
        raise BenchmarkNotFound(str(e)) from None


def _data_files(pattern: str) -> list[Location]:
    """A file's or a glob's matches; a folder's files in a benchmark format."""
    found = _matches(pattern)
    return [f for f in found if _format(f.name)] if _is_folder(pattern, found) else found


def _is_folder(pattern: str, found: list[Location]) -> bool:
    return not _is_glob(pattern) and found != [storage.locate(pattern)]


def _is_glob(pattern: str) -> bool:
    return any(c in pattern for c in storage.GLOB_CHARS)


def _format(name: str) -> str | None:
    name = name.removesuffix(".gz")
    return next((fmt for fmt in ("jsonl", "json", "csv", "parquet") if name.endswith("." + fmt)), None)


def _in_group(row: dict, group_field: str | None, group: str | None) -> dict:
    """The row with its group (a Hub config, a file's subject) where it does not say it itself."""
    if not group_field or group is None or _get(row, group_field) is not None:
        return row
    return {**row, group_field: group}


def _group_of(name: str, split: str) -> str:
    """The subject or task a local file holds, by its name: `high_school_biology_test.csv` -> high_school_biology."""
    return _stem(name).removesuffix(f"_{split}")


def read_rows(files: list[Location], group_field: str | None = None, split: str = "test") -> Iterator[dict]:
    """Every row of the files; with `group_field`, each row in the group its file's name gives."""
    for f in files:
        group = _group_of(f.name, split)
        yield from (_in_group(row, group_field, group) for row in _rows_of(f))


def _rows_of(f: Location) -> Iterator[dict]:
    fmt = _format(f.name)
    if fmt is None:
        raise BenchmarkNotFound(f"{f}: unknown benchmark file format (use .jsonl, .json, .csv or .parquet, optionally .gz)")
    if fmt == "parquet":
        import pyarrow.parquet as pq

        yield from pq.read_table(f.path, filesystem=f.fs).to_pylist()
        return
    with storage.open_text(f, newline="") as stream:  # gunzipped by name
        text = stream.read()
    if fmt == "csv":
        yield from csv.DictReader(io.StringIO(text))
    elif fmt == "json" and text.lstrip().startswith("["):
        yield from json.loads(text)
    else:
        yield from (json.loads(line) for line in text.splitlines() if line.strip())


def resolve(names_or_paths: Iterable[str | dict], fields: Iterable[str] = ()) -> list[BenchmarkSpec]:
    """Registered names and custom files (a path, or {path, fields, name, id_field}) to specs."""
    specs = []
    for entry in names_or_paths:
        if isinstance(entry, dict):
            specs.append(custom(entry["path"], entry.get("fields", ()), entry.get("name"), entry.get("id_field")))
        elif entry.lower() in REGISTRY:
            specs.append(REGISTRY[entry.lower()])
        elif names_a_file(entry):
            if not _data_files(entry):
                raise BenchmarkNotFound(f"benchmark file not found: {entry}")
            specs.append(custom(entry, fields))
        else:
            known = ", ".join(REGISTRY)
            raise BenchmarkNotFound(f"unknown benchmark '{entry}' (known: {known}; or give a .jsonl/.csv/.parquet file)")
    names = [s.name for s in specs]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise BenchmarkNotFound(f"two benchmarks are named {dup[0]}: give custom files distinct names")
    return specs


def names_a_file(entry: str) -> bool:
    """Whether a `benchmarks` entry that is not a registered name stands for a file, a folder or a glob;
    otherwise it is an unknown name. Only a bare word is looked for on local disk."""
    return bool(_format(entry) or "://" in entry or _is_glob(entry) or storage.locate(entry).exists())


def background_problem(path: str) -> str | None:
    """Why a background corpus (a file, folder or glob) names nothing to read, or None."""
    try:
        return None if _matches(path, BACKGROUND) else f"{BACKGROUND} not found: {path}"
    except BenchmarkNotFound as e:
        return str(e)


def read_texts(path: str | os.PathLike, field: str = "text") -> Iterator[str]:
    """Plain text from a file, folder or glob: `.txt` whole, JSONL/JSON/CSV/Parquet through `field`; a
    folder's files in those formats, else its `.txt` files."""
    path = os.fspath(path)
    files = _matches(path, BACKGROUND)
    if _is_folder(path, files):
        files = [f for f in files if _format(f.name)] or [f for f in files if _is_text(f.name)]
    if not files:
        raise BenchmarkNotFound(f"{BACKGROUND} not found: {path}")
    for f in files:
        if _is_text(f.name):
            with storage.open_text(f, errors="replace") as stream:
                yield stream.read()
        else:
            yield from (r[field] for r in read_rows([f]) if isinstance(r.get(field), str))


def _is_text(name: str) -> bool:
    return name.removesuffix(".gz").endswith(".txt")
