"""The run config: schema, validation with errors that point at the line, and `--set` overrides.

Validation happens in two steps because stage configs are open-ended: the top level is checked
against `RunConfig`, then each entry of `stages:` against the `Config` of the stage it names.
Every error becomes one line: `file:line: key.path: what was expected` plus the nearest valid
name when a key or stage name is unknown.
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from pipeline import registry, yaml_source
from pipeline.errors import UserError
from pipeline.stage import Stage, StageContext


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class InputConfig(_Strict):
    format: Literal["jsonl", "parquet", "warc", "html", "hf"] = Field(description="how to read the input")
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


class RunConfig(_Strict):
    name: str = "run"
    input: list[InputConfig] = Field(description="one source, or a list of sources")
    output: OutputConfig
    ray: RayConfig = Field(default_factory=RayConfig)
    stages: list[dict[str, Any]] = Field(default_factory=list)
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

    @field_validator("output", mode="before")
    @classmethod
    def _path_shorthand(cls, v):
        return {"path": v} if isinstance(v, str) else v


class ValidatedRun:
    """A validated config: the top level plus the stage instances it names, in order."""

    def __init__(self, config: RunConfig, stages: list[Stage], source: str, raw: dict):
        self.config = config
        self.stages = stages
        self.source = source
        self.raw = raw

    @property
    def output_dir(self) -> Path:
        return Path(self.config.output.path)


def load_run(path: str | Path, overrides: list[str] = ()) -> ValidatedRun:
    located = yaml_source.load(path)
    if isinstance(located.data.get("output"), str):
        located.data["output"] = {"path": located.data["output"]}
    for item in overrides:
        apply_override(located, item)
    return validate(located)


def validate(located: yaml_source.Located) -> ValidatedRun:
    raw = located.data
    try:
        config = RunConfig.model_validate(raw)
    except ValidationError as e:
        raise UserError(_describe(e, located, (), RunConfig)) from None
    _validate_llms(config, located)
    _validate_finetune(config, located)
    stage_entries = raw.get("stages") or []
    stages = []
    for i, entry in enumerate(stage_entries):
        if not isinstance(entry, dict) or len(entry) != 1:
            raise UserError(
                f"{located.where(('stages', i))}: stages[{i}]: expected one `stage_name: {{config}}` entry, "
                f"got {entry!r}"
            )
        (name, options), = entry.items()
        try:
            stages.append(build_stage(name, options, index=i + 1, output_dir=Path(config.output.path),
                                      seed=config.seed, llms=config.llms, tokenizer=config.tokenizer))
        except _StageConfigError as e:
            raise UserError(_describe(e.error, located, ("stages", i, name), e.model)) from None
        except UserError as e:
            raise UserError(f"{located.where(('stages', i))}: {e}") from None
    return ValidatedRun(config, stages, located.source, raw)


def _validate_llms(config: RunConfig, located: yaml_source.Located) -> None:
    """Each `llms:` entry against the backends' schema now, not when a stage first calls the model."""
    from generators.llm_config import LLMConfig

    for name, entry in config.llms.items():
        try:
            LLMConfig.model_validate(entry)
        except ValidationError as e:
            raise UserError(_describe(e, located, ("llms", name), LLMConfig)) from None


def _validate_finetune(config: RunConfig, located: yaml_source.Located) -> None:
    from pipeline.train.config import FinetuneConfig

    if config.finetune is not None:
        try:  # the base model may also be given later, to `pipeline finetune --model`
            FinetuneConfig.model_validate({"model": "(--model)", **config.finetune})
        except ValidationError as e:
            raise UserError(_describe(e, located, ("finetune",), FinetuneConfig)) from None


class _StageConfigError(Exception):
    def __init__(self, error: ValidationError, model: type[BaseModel]):
        self.error, self.model = error, model


def build_stage(name: str, options: dict | None, *, index: int, output_dir: Path, **ctx_fields) -> Stage:
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
    ctx = StageContext(
        stage_id=stage_id,
        output_dir=Path(output_dir),
        work_dir=Path(output_dir) / ".pipeline" / "work" / stage_id,
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
        raise UserError(f"--set {item}: stage '{part}' appears {len(named)} times; use its index")
    raise UserError(f"--set {item}: no stage named '{part}'")


def _describe(error: ValidationError, located: yaml_source.Located, prefix: tuple, model: type[BaseModel]) -> str:
    errors = error.errors()
    first = errors[0]
    loc = prefix + tuple(first["loc"])
    dotted = _dotted(loc)
    where = located.where(loc)
    kind = first["type"]
    if kind == "extra_forbidden":
        valid = _fields_at(model, tuple(first["loc"])[:-1])
        msg = f"unknown key '{loc[-1]}'{_nearest(str(loc[-1]), valid)}"
        if valid:
            msg += f" (valid keys: {', '.join(valid)})"
    elif kind == "missing":
        msg = "required key is missing"
    elif kind in ("literal_error", "enum"):
        expected = first.get("ctx", {}).get("expected", "")
        msg = f"got {first['input']!r}, expected one of {expected}"
        options = [o.strip(" '") for o in expected.replace(" or ", ",").split(",") if o.strip()]
        msg += _nearest(str(first["input"]), options)
    else:
        msg = first["msg"]
        if "input" in first and not isinstance(first["input"], (dict, list)):
            msg += f" (got {first['input']!r})"
    more = f" [and {len(errors) - 1} more error(s)]" if len(errors) > 1 else ""
    return f"{where}: {dotted}: {msg}{more}"


def _dotted(loc: tuple) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


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
