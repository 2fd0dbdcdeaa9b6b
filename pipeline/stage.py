"""The stage contract: what a stage declares and the two shapes the engine can run.

A *map stage* transforms one Arrow batch at a time and is run by the engine through
`Dataset.map_batches` with the resources it declares; `setup()` runs once per worker process, so
models load once and not per batch, and `teardown()` once when the worker lets the stage go
(`execute.set_up`, `execute.StageWorker`). A *global
stage* needs to see the whole dataset (dedup, reweighting, Self-Instruct's pool) and gets the
`ray.data.Dataset` itself.

Either shape drops a row by giving it a reason (`records.drop_rows`), never by removing it:
the engine routes dropped rows to rejects and checks `rows in = kept + dropped` for every stage.
Stages whose job is to create rows (generation, up-sampling) set `produces_rows = True`.

Before any work, `check()` names what would stop a stage (a missing model file, a benchmark that
cannot be reached) cheaply and on the driver, so `pipeline validate` and `pipeline run` can list
every stage's problems at once before Ray starts; `prepare()` then does the heavy preparation.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any, Callable, ClassVar, Sequence

import numpy as np
import pyarrow as pa
from pydantic import BaseModel, ConfigDict, Field

from pipeline.errors import UserError

if TYPE_CHECKING:
    import ray.data

    from pipeline.storage import Location


class Resources(BaseModel):
    """What one worker of a map stage needs. `concurrency` None lets Ray size the pool."""

    model_config = ConfigDict(extra="forbid")

    num_cpus: float = 1.0
    num_gpus: float = 0.0
    concurrency: int | None = None
    batch_size: int = 256


class StageConfig(BaseModel):
    """Base of every stage's config: unknown keys are refused, so typos never pass silently."""

    model_config = ConfigDict(extra="forbid")

    resources: Resources | None = Field(default=None, description="override the stage's declared resources")


@dataclasses.dataclass(frozen=True)
class Problem:
    """What stops a stage from running, and the option that causes it, so the error names its line."""

    message: str
    option: tuple = ()  # a key path in the stage's options, e.g. ("benchmarks", 2)


@dataclasses.dataclass(frozen=True)
class StageContext:
    """What the engine tells a stage about the run. Picklable: it travels to workers with the stage."""

    stage_id: str
    output_dir: str  # the run's output folder as the user wrote it, a path or a URI (`pipeline.storage.locate`)
    work_dir: str
    seed: int = 0
    llms: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)
    tokenizer: str | None = None

    def llm(self, name: str) -> dict[str, Any]:
        """The resolved config of the LLM a stage refers to by name under `llms:`."""
        if name not in self.llms:
            known = ", ".join(sorted(self.llms)) or "none defined"
            raise UserError(f"stage {self.stage_id}: llm '{name}' is not defined under 'llms:' ({known})")
        return self.llms[name]


class Stage:
    """Common part of both shapes."""

    name: ClassVar[str]
    Config: ClassVar[type[StageConfig]] = StageConfig
    produces_rows: ClassVar[bool] = False
    # Columns the stage adds to every row. With `needs()`, what a config is checked against when it
    # loads (`registry.missing_columns`): a stage that needs a column no earlier stage adds is one
    # line then, not an error after the passes before it have run.
    adds: ClassVar[tuple[str, ...]] = ()

    def __init__(self, config: StageConfig, ctx: StageContext):
        self.config = config
        self.ctx = ctx

    def needs(self) -> tuple[str, ...]:
        """Columns the stage reads that a stage adds (`adds`), not the reader: they must be added before it."""
        return ()

    def check(self) -> list[Problem]:
        """Problems found without running anything: no Ray, no server started, no large file read, at most
        one quick request (an LLM server's model list). Run for every stage before Ray starts, so a
        missing model file is reported in a second, with all the others."""
        return []

    def prepare(self) -> None:
        """Driver-side preparation before any data moves (building an index, reading a model's labels).

        Raises `check()`'s problems first, for callers that did not run the checks before; a stage
        that overrides this calls `super().prepare()` first.
        """
        problems = self.check()
        if problems:
            raise UserError("\n".join(f"stage {self.ctx.stage_id}: {p.message}" for p in problems))

    def llm_names(self) -> set[str]:
        """The names under `llms:` that this stage's options (defaults included) refer to."""
        return names_in(self.config.model_dump(mode="json"), self.ctx.llms)

    def outputs(self) -> list["Location"]:
        """Files or folders the stage writes beside the shards (an index for later runs). The engine
        removes them when a later config no longer makes them, so an output holds only what its
        config explains."""
        return []

    def summarize(self, output: "ray.data.Dataset") -> dict[str, Any]:
        """Stage-specific metrics for stats.json and the report, computed from the stage's output.

        A metric named `plots` may hold plot specs ({"kind": "line"|"bar"|"hist", "title", "x", "y",
        "xlabel", "ylabel"}) that the report draws.
        """
        return {}


class MapStage(Stage):
    """A stage that maps Arrow batches. Subclasses implement `process_batch` and maybe `setup`."""

    resources: ClassVar[Resources] = Resources()

    def effective_resources(self) -> Resources:
        return self.config.resources or self.resources

    def setup(self) -> None:
        """Load models and other per-worker state once, on the worker."""

    def teardown(self) -> None:
        """Release what `setup()` opened (an LLM client's HTTP session, a helper process), once, on the
        worker, when the engine retires it (`execute.StageWorker`)."""

    def process_batch(self, batch: pa.Table) -> pa.Table:
        raise NotImplementedError


class GlobalStage(Stage):
    """A stage that needs the whole dataset, free to run several Ray Data passes.

    What such a stage needs of the engine it gets here, so that this class is its only surface:
    another stage's work run as the engine runs any stage (`run_substage`), counts summed over
    every row (`summed_counts`), rounds of plain Ray tasks over the dataset's blocks (`blocks`),
    and rows measured as the run statistics measure them (`measure`, a function of this module,
    for use inside those tasks).
    """

    def apply(self, dataset: "ray.data.Dataset") -> "ray.data.Dataset":
        raise NotImplementedError

    def run_substage(self, stage: Stage, dataset: "ray.data.Dataset") -> "ray.data.Dataset":
        """`stage`'s output on `dataset`, with the accounting and measures of any stage's output."""
        from pipeline.execute import run_stage

        return run_stage(stage, dataset)

    def summed_counts(self, dataset: "ray.data.Dataset", counts_of: Callable[[pa.Table], Sequence[int]]) -> np.ndarray:
        """The sum over `dataset`'s batches of a fixed-length count vector (a histogram of scores): how
        a stage that cuts at a share of the rows (quality's top_fraction, perplexity's keep_share) sees
        every score without bringing the scores to the driver. Empty when the dataset has no batch."""
        counts = [np.asarray(row["counts"], dtype=np.int64) for row in dataset.map_batches(
            lambda batch: pa.table({"counts": [list(counts_of(batch))]}), batch_format="pyarrow", batch_size=4096).iter_rows()]
        return np.sum(counts, axis=0) if counts else np.zeros(0, dtype=np.int64)

    @property
    def blocks(self):
        """Map, hash-partitioned reduce and gather over a materialised dataset's blocks (`pipeline.blocks`),
        for a stage whose algorithm is rounds of map -> shuffle -> reduce (dedup)."""
        from pipeline import blocks

        return blocks

    def map_stage(self) -> MapStage | None:
        """The map stage that does this stage's work when its config needs only one pass over rows
        (a quality cut at a fixed score, not at a fraction), so the engine can fuse it with neighbours."""
        return None


def measure(batch: pa.Table, tokenizer: str | None) -> pa.Table:
    """The batch with each row's tokens and characters, counted exactly as the run statistics count them."""
    from pipeline.stats import measure as engine_measure

    return engine_measure(batch, tokenizer)


def names_in(value: Any, names) -> set[str]:
    """The strings in a nested config value that are among `names` (how stages refer to `llms:` entries)."""
    if isinstance(value, str):
        return {value} if value in names else set()
    if isinstance(value, dict):
        value = list(value.values())
    if isinstance(value, list):
        return set().union(*(names_in(v, names) for v in value))
    return set()
