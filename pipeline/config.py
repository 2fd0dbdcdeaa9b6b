"""The run config: schema, validation with errors that point at the line, and `--set` overrides.

Validation happens in two steps because stage configs are open-ended: the top level is checked
against `RunConfig`, then each entry of `stages:` against the `Config` of the stage it names.
Every error becomes one line: `file:line: key.path: what was expected` plus the nearest valid
name when a key or stage name is unknown. All of a config's errors are reported at once, in the
order of its lines, so a user fixes them in one go rather than one run at a time.
"""

from __future__ import annotations

import difflib
import os
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from pipeline import registry, storage, yaml_source
from pipeline.errors import UserError
from pipeline.stage import Stage, StageContext, names_in
from pipeline.train.config import FinetuneConfig


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


# The names of the files each format reads, with or without a compression's suffix: what an input
# without `format` is read as, and what `readers.format_of` votes by.
FORMAT_SUFFIXES = {"parquet": (".parquet",), "jsonl": (".jsonl", ".json"), "warc": (".warc", ".arc"), "html": (".html", ".htm")}
COMPRESSED_SUFFIXES = (".gz", ".zst", ".zstd")


def uncompressed_name(name: str) -> str:
    return next((name.removesuffix(s) for s in COMPRESSED_SUFFIXES if name.endswith(s)), name)


def format_by_name(path: str) -> str | None:
    name = uncompressed_name(path.rstrip("/"))
    return next((fmt for fmt, suffixes in FORMAT_SUFFIXES.items() if name.endswith(suffixes)), None)


class InputConfig(_Strict):
    format: Literal["jsonl", "parquet", "warc", "html", "hf"] | None = Field(
        default=None, description="how to read the input (jsonl also reads a JSON array file); default: by the "
        "paths' names (.jsonl/.json, .parquet, .warc/.arc, .html/.htm; plain, .gz or .zst), or hf with `dataset`")
    paths: list[str] = Field(default_factory=list, description="files, directories or glob patterns")
    name: str | None = Field(default=None, description="source name stored in the `source` column")
    kind: Literal["auto", "document", "instruction", "preference"] = Field(
        default="auto", description="record kind; auto decides from the fields of the first records"
    )
    fields: dict[str, str] = Field(default_factory=dict, description="our field -> field in the input, e.g. {text: body}")
    limit: int | None = Field(default=None, ge=1, description="read at most this many records (for trials)")
    record_types: list[str] = Field(default_factory=lambda: ["response"], description="WARC record types to read")
    mime_types: list[str] = Field(
        default_factory=lambda: ["text/html", "application/xhtml+xml"],
        description="WARC payload types to read; [] reads every type",
    )
    dataset: str | None = Field(default=None, description="hf: dataset name on the Hub or a local path")
    subset: str | None = Field(default=None, description="hf: configuration name")
    split: str = Field(default="train", description="hf: split")
    data_files: list[str] | None = Field(default=None, description="hf: data files")
    revision: str | None = Field(default=None, description="hf: revision")

    @model_validator(mode="after")
    def _needs_source(self):
        if self.format is None:
            named = {format_by_name(p) for p in self.paths} if self.paths else {"hf" if self.dataset else None}
            if None in named:
                raise ValueError("give its format (jsonl, parquet, warc, html or hf): the paths' names do not tell")
            if len(named) > 1:
                raise ValueError(f"the paths are of several formats ({', '.join(sorted(named))}): give each its own "
                                 "input (input: [{paths: [...]}, {paths: [...]}])")
            self.format = named.pop()
        if self.format == "hf" and not self.dataset:
            raise ValueError("format 'hf' needs 'dataset' (a Hub name or a local path)")
        if self.format != "hf" and not self.paths:
            raise ValueError(f"format '{self.format}' needs 'paths'")
        return self


class OutputConfig(_Strict):
    path: str = Field(description="output directory")
    formats: list[Literal["parquet", "jsonl"]] = Field(default_factory=lambda: ["parquet"])
    shard_rows: int | None = Field(default=100_000, ge=1, description="target rows per output shard")
    shard_bytes: int | None = Field(default=None, ge=1, description="target bytes per shard (overrides shard_rows)")
    rejects: bool = Field(default=True, description="write dropped rows with their reason to rejects/")
    checkpoint: bool = Field(default=True, description="checkpoint each stage's output so a re-run resumes")


class RayConfig(_Strict):
    address: str | None = Field(default=None, description="Ray cluster address; null starts a local Ray (or RAY_ADDRESS)")
    num_cpus: int | None = Field(default=None, ge=1, description="CPUs of the embedded local Ray")
    object_store_memory: int | None = Field(default=None, description="bytes for the embedded Ray's object store")


class StorageConfig(_Strict):
    s3_endpoint_url: str | None = Field(
        default=None, description="S3 endpoint of an on-premise store (MinIO, Ceph, SeaweedFS), e.g. http://minio:9000; "
        "default: AWS_ENDPOINT_URL, else AWS. Credentials come from the environment or ~/.aws, never from here")

    @field_validator("s3_endpoint_url")
    @classmethod
    def _a_url(cls, v):
        if v is not None and not v.startswith(("http://", "https://")):
            raise ValueError(f"'{v}' is not an http:// or https:// URL")
        return v


class RunConfig(_Strict):
    name: str = "run"
    input: list[InputConfig] = Field(description="one source, or a list of sources")
    output: OutputConfig
    ray: RayConfig = Field(default_factory=RayConfig)
    storage: StorageConfig = Field(default_factory=StorageConfig, description="where s3:// paths live")
    stages: list[Any] = Field(default_factory=list, description="`stage_name: {options}` entries, each checked "
                                                                 "against its stage's Config by `validate`")
    llms: dict[str, dict[str, Any]] = Field(default_factory=dict, description="named LLMs that stages refer to")
    seed: int = 0
    tokenizer: str | None = Field(default=None, description="tokenizer for token counts; null counts whitespace words")
    fuse: bool = Field(default=True, description="run consecutive CPU map stages in one Ray pass with one checkpoint; "
                                                "false gives every stage a pass and a checkpoint of its own")
    finetune: dict[str, Any] | None = None

    @field_validator("input", mode="before")
    @classmethod
    def _one_or_many(cls, v):
        return v if isinstance(v, list) else [v]


class ValidatedRun:
    """A validated config: the top level plus the stage instances it names, in order."""

    def __init__(self, config: RunConfig, stages: list[Stage], source: str, raw: dict,
                 located: yaml_source.Located | None = None):
        self.config = config
        self.stages = stages
        self.source = source
        self.raw = raw
        self.located = located or yaml_source.Located(raw, {}, source)

    @property
    def output_dir(self) -> storage.Location:
        return storage.locate(self.config.output.path)

    def worker_env(self) -> dict[str, str]:
        """The storage settings, applied to this process; the same environment goes to Ray's workers."""
        return storage.configure(self.config.storage.s3_endpoint_url)


def load_run(path: str | Path, overrides: list[str] = ()) -> ValidatedRun:
    located = yaml_source.load(path)
    if isinstance(located.data.get("output"), str):  # `output: DIR` is `output: {path: DIR}`, before `--set output.x=`
        located.data["output"] = {"path": located.data["output"]}
        if ("output",) in located.unset:
            located.unset[("output", "path")] = located.unset.pop(("output",))
    for item in overrides:
        apply_override(located, item)
    return validate(located)


def validate(located: yaml_source.Located) -> ValidatedRun:
    """The run, or one UserError listing every mistake of the config, a line each, in file order."""
    raw = located.data
    problems: list[tuple[tuple, str]] = []  # (key path, message)
    config = None
    try:
        config = RunConfig.model_validate(raw)
    except ValidationError as e:
        problems += _problems(e, located, (), RunConfig)
    llms = raw.get("llms") if isinstance(raw.get("llms"), dict) else {}
    problems += _llm_problems(llms, located)
    problems += _finetune_problems(raw.get("finetune"), located)
    stage_entries = raw.get("stages") if isinstance(raw.get("stages"), list) else []
    ctx = {"output_dir": config.output.path if config else ".", "seed": config.seed if config else 0,
           "llms": llms, "tokenizer": config.tokenizer if config else None}
    stages = []
    used_llms: set[str] = set()
    for i, entry in enumerate(stage_entries):
        if not isinstance(entry, dict) or len(entry) != 1:
            problems.append((("stages", i), f"{located.where(('stages', i))}: stages[{i}]: expected one "
                                            f"`stage_name: {{config}}` entry, got {entry!r}"))
            continue
        (name, options), = entry.items()
        try:
            stage = build_stage(name, options, index=i + 1, **ctx)
        except _StageConfigError as e:
            problems += _problems(e.error, located, ("stages", i, name), e.model)
            used_llms |= names_in(options, llms)  # what the stage would use, as far as its options tell
            continue
        except UserError as e:
            problems.append((("stages", i), f"{located.where(('stages', i))}: stages[{i}].{name}: {e}"))
            continue
        earlier = [n for e in stage_entries[:i] if isinstance(e, dict) for n in e]
        problems += [(("stages", i), f"{located.where(('stages', i))}: stages[{i}].{name}: {why}")
                     for why in registry.missing_columns(stage, earlier)]
        stages.append(stage)
        used_llms |= stage.llm_names()
    problems = [(path, msg) for path, msg in problems if not _about_unset(path, located)]
    problems += [(path, located.unset_problem(path)) for path in located.unset
                 if not (path[0] == "llms" and len(path) > 2 and path[1] not in used_llms)]  # a value in an unused LLM
    if problems:
        raise UserError(in_file_order(problems, located))
    return ValidatedRun(config, stages, located.source, raw, located)


def _problems(error: ValidationError, located: yaml_source.Located, prefix: tuple,
              model: type[BaseModel]) -> list[tuple[tuple, str]]:
    errors = [_at_discriminator(e) for e in error.errors()]
    errors = _without_misspelt_missing(_without_union_noise(errors, _at(located.data, prefix)))
    return [(prefix + tuple(e["loc"]), _describe_one(e, located, prefix, model)) for e in errors]


_SCALAR_TAGS = {"str", "int", "float", "bool", "none"}


def _without_union_noise(errors: list[dict], data: Any) -> list[dict]:
    """Pydantic reports a value that fits no member of a union (`str | CustomBenchmark`) once per
    member, with the member's name in the key path. A user reads the key path of their file: drop
    the member names, and drop "not a string" where they wrote a mapping or a list."""
    out = []
    for e in errors:
        loc, node, scalar_tag = [], data, False
        for j, part in enumerate(e["loc"]):
            last = j == len(e["loc"]) - 1
            if isinstance(part, str) and isinstance(node, (dict, list)) and not _has(node, part) \
                    and not (last and e["type"] == "missing"):
                scalar_tag = scalar_tag or part in _SCALAR_TAGS  # a union member's name, not a key
                continue
            loc.append(part)
            if not (isinstance(part, int) and isinstance(node, dict)):  # a single input stands for a list of one
                node = node[part] if isinstance(node, (dict, list)) and _has(node, part) else None
        if not scalar_tag:
            out.append({**e, "loc": tuple(loc)})
    return out or errors


def _at_discriminator(error: dict) -> dict:
    """A discriminated union's tag that is missing or none of its members' (`backend: tgi`) is an error
    about the key that holds it, worded as for any other key."""
    if error["type"] not in ("union_tag_invalid", "union_tag_not_found"):
        return error
    key = error["ctx"]["discriminator"].strip("'")
    if error["type"] == "union_tag_not_found":
        return {"type": "missing", "loc": (*error["loc"], key), "msg": "Field required", "input": error["input"]}
    return {"type": "literal_error", "loc": (*error["loc"], key), "msg": error["msg"], "input": error["ctx"]["tag"],
            "ctx": {"expected": error["ctx"]["expected_tags"]}}


def _without_misspelt_missing(errors: list[dict]) -> list[dict]:
    """`inputs:` for `input:` is one mistake: its unknown-key error suggests 'input', so the missing
    'input' goes without saying."""
    suggested = {(e["loc"][:-1], m) for e in errors if e["type"] == "extra_forbidden"
                 for m in difflib.get_close_matches(str(e["loc"][-1]), [str(x["loc"][-1]) for x in errors
                                                                        if x["type"] == "missing"], n=1, cutoff=0.6)}
    return [e for e in errors if not (e["type"] == "missing" and (e["loc"][:-1], str(e["loc"][-1])) in suggested)]


def _has(node, part) -> bool:
    return part in node if isinstance(node, dict) else isinstance(part, int) and -len(node) <= part < len(node)


def _at(data: Any, path: tuple) -> Any:
    for part in path:
        data = data[part] if isinstance(data, (dict, list)) and _has(data, part) else None
    return data


def _about_unset(path: tuple, located: yaml_source.Located) -> bool:
    """An error about a value that is an unset `${VAR}`: the variable's own error says it better."""
    return any(path[:len(p)] == p for p in located.unset)


def in_file_order(problems: list[tuple[tuple, str]], located: yaml_source.Located) -> str:
    """Messages (each with the key path it is about) as one text, a line each, in the order of the file's lines."""
    def line(item) -> tuple:
        where = located.where(item[0])
        number = where.rsplit(":", 1)[-1] if where.startswith(located.source + ":") else ""
        return (0, int(number)) if number.isdigit() else (1, 0)

    return "\n".join(dict.fromkeys(msg for _, msg in sorted(problems, key=line)))


def _llm_problems(llms: dict, located: yaml_source.Located) -> list[tuple[tuple, str]]:
    """Each `llms:` entry against its backend's schema now, not when a stage first calls the model."""
    from generators.llm_config import BACKENDS, LLMConfig, parse_llm_config

    problems = []
    for name, entry in llms.items():
        if not isinstance(entry, dict):
            continue  # the top level says it is not a mapping
        try:
            parse_llm_config(entry)
        except ValidationError as e:
            problems += _problems(e, located, ("llms", name), BACKENDS.get(entry.get("backend"), LLMConfig))
    return problems


class _FinetuneSection(FinetuneConfig):
    """A run config's `finetune:` section: the base model may also be given later, to `pipeline finetune --model`."""

    model: str | None = Field(default=None, description=FinetuneConfig.model_fields["model"].description)


def _finetune_problems(section: Any, located: yaml_source.Located) -> list[tuple[tuple, str]]:
    if not isinstance(section, dict):
        return []  # absent, or not a mapping, which the top level reports
    try:
        _FinetuneSection.model_validate(section)
    except ValidationError as e:
        return _problems(e, located, ("finetune",), _FinetuneSection)
    return []


class _StageConfigError(Exception):
    def __init__(self, error: ValidationError, model: type[BaseModel]):
        self.error, self.model = error, model


def build_stage(name: str, options: dict | None, *, index: int, output_dir: str | os.PathLike, **ctx_fields) -> Stage:
    """Validate one stage's options and build the stage with its context."""
    cls = registry.get(name)
    if cls is None:
        known = list(registry.all_stages())
        hint = _nearest(name, known)
        raise UserError(f"unknown stage '{name}'{hint}; run `pipeline stages` to list them")
    if options is not None and not isinstance(options, dict):
        raise UserError(f"stage '{name}': expected a mapping of options, got {options!r}")
    try:
        config = cls.Config.model_validate(options or {})
    except ValidationError as e:
        raise _StageConfigError(e, cls.Config) from None
    stage_id = f"{index:02d}-{name}"
    out = os.fspath(output_dir).rstrip("/") or "/"
    ctx = StageContext(
        stage_id=stage_id,
        output_dir=out,
        work_dir=f"{out}/.pipeline/work/{stage_id}",
        **ctx_fields,
    )
    return cls(config, ctx)


def apply_override(located: yaml_source.Located, item: str) -> None:
    """`a.b=c`: set a key path in the raw config. In `stages`, a stage name may stand for its index."""
    if "=" not in item:
        raise UserError(f"--set {item}: expected KEY.PATH=VALUE")
    key, value = item.split("=", 1)
    parts = [p for p in key.strip().split(".") if p]
    if not parts:
        raise UserError(f"--set {item}: empty key path")
    node = located.data
    path: list = []
    for j, part in enumerate(parts):
        last = j == len(parts) - 1
        if isinstance(node, list):
            idx = _list_index(node, part, item)
            path.append(idx)
            if last:
                node[idx] = yaml_source.scalar(value)
                break
            node = node[idx]
            if not part.lstrip("-").isdigit():  # `stages.dedup.x`: the stage's name stood for its index
                path.append(part)
                if node.get(part) is None:
                    node[part] = {}
                node = node[part]
            continue
        if not isinstance(node, dict):
            raise UserError(f"--set {item}: '{'.'.join(map(str, path))}' is a value, not a mapping")
        path.append(part)
        if last:
            node[part] = yaml_source.scalar(value)
        else:
            if node.get(part) is None:
                node[part] = {}
            node = node[part]
    located.lines[tuple(path)] = f"--set {item}"
    located.forget(tuple(path))


def _list_index(node: list, part: str, item: str) -> int:
    if part.lstrip("-").isdigit():
        idx = int(part)
        if -len(node) <= idx < len(node):
            return idx
        raise UserError(f"--set {item}: index {idx} is out of range (the list has {len(node)} items)")
    named = [i for i, e in enumerate(node) if isinstance(e, dict) and part in e]
    if len(named) == 1:
        return named[0]
    if len(named) > 1:
        key, value = item.split("=", 1)
        example = key.replace(f".{part}", f".{named[0]}.{part}", 1)
        raise UserError(f"--set {item}: stage '{part}' appears {len(named)} times (at {', '.join(map(str, named))}); "
                        f"put the index before its name: --set {example}={value}")
    raise UserError(f"--set {item}: no stage named '{part}'")


def _describe(error: ValidationError, located: yaml_source.Located, prefix: tuple, model: type[BaseModel]) -> str:
    """Every error of a validation, a line each: `file:line: key.path: what was expected`."""
    return "\n".join(_describe_one(e, located, prefix, model) for e in error.errors())


def _describe_one(error: dict, located: yaml_source.Located, prefix: tuple, model: type[BaseModel]) -> str:
    loc = prefix + tuple(error["loc"])
    kind = error["type"]
    if kind == "extra_forbidden":
        valid = _fields_at(model, tuple(error["loc"])[:-1])
        msg = f"unknown key '{loc[-1]}'{_nearest(str(loc[-1]), valid)}"
        if valid:
            msg += f" (valid keys: {', '.join(valid)})"
    elif kind == "missing":
        msg = "required key is missing"
    elif kind in ("literal_error", "enum"):
        expected = error.get("ctx", {}).get("expected", "")
        msg = f"got {error['input']!r}, expected one of {expected}"
        options = [o.strip(" '") for o in expected.replace(" or ", ",").split(",") if o.strip()]
        msg += _nearest(str(error["input"]), options)
    elif kind == "unknown_name":  # a validator's name that is none of its `choices`: the nearest is suggested
        ctx = error["ctx"]
        msg = f"unknown {ctx['what']} '{error['input']}'{_nearest(str(error['input']), ctx['choices'])} ({ctx['hint']})"
    elif kind == "value_error":  # our own validators' words, without pydantic's "Value error, " in front
        msg = str(error.get("ctx", {}).get("error") or error["msg"])
    else:
        msg = error["msg"]
        if "input" in error and not isinstance(error["input"], (dict, list)):
            msg += f" (got {error['input']!r})"
    return f"{located.where(loc)}: {yaml_source.dotted(loc)}: {msg}"


def _fields_at(model: type[BaseModel], loc: tuple) -> list[str]:
    """The valid keys of the (sub)model at `loc`, for suggestions."""
    current: Any = model
    for part in loc:
        if isinstance(part, int) or current is None:
            continue
        field = current.model_fields.get(part) if isinstance(current, type) and issubclass(current, BaseModel) else None
        current = _model_of(field.annotation) if field else None
    if isinstance(current, type) and issubclass(current, BaseModel):
        return list(current.model_fields)
    return []


def _model_of(annotation: Any):
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()):
        found = _model_of(arg)
        if found:
            return found
    return None


def _nearest(name: str, options: list[str]) -> str:
    match = difflib.get_close_matches(name, options, n=1, cutoff=0.6)
    return f"; did you mean '{match[0]}'?" if match else ""
