"""Passes: consecutive CPU map stages run as one Ray pass, with each stage's accounting kept apart.

A stage in a pass of its own pays Ray's fixed costs once per stage: scheduling, a pool of
workers that load their models, a checkpoint written and read back. On a web chain of cheap
filters (extract -> language -> heuristics -> quality) those costs are most of the run. A fused
pass applies its stages one after another to each batch, inside one worker, and writes one
checkpoint.

Nothing a stage reports is lost by fusing. Rows dropped inside the pass keep the id of the stage
that dropped them, and every row carries, per stage, its size as it left that stage and its
share of the time the stage spent on its batch (`stats.MeasureColumns`). From those, each
stage's statistics are exactly what a pass of its own would have reported (`stats.pass_summaries`).
"""

from __future__ import annotations

import dataclasses
import time

import numpy as np
import pyarrow as pa

from pipeline.execute import apply_map_stage, run_stage, set_up
from pipeline.records import CHARS, TOKENS, set_column
from pipeline.stage import GlobalStage, MapStage, Resources, Stage
from pipeline.stats import MeasureColumns, measure, undo_drops


@dataclasses.dataclass(frozen=True)
class Pass:
    stages: tuple[Stage, ...]

    @property
    def id(self) -> str:
        return "+".join(self.stage_ids)

    @property
    def stage_ids(self) -> list[str]:
        return [s.ctx.stage_id for s in self.stages]

    @property
    def fused(self) -> bool:
        return len(self.stages) > 1

    def measure_columns(self) -> list[str]:
        if not self.fused:
            return []
        return [c for sid in self.stage_ids for c in MeasureColumns.of(sid).names()]


def map_form(stage: Stage) -> MapStage | None:
    """The map stage doing a stage's work, if with its config the work is one pass over rows."""
    if isinstance(stage, MapStage):
        return stage
    return stage.map_stage() if isinstance(stage, GlobalStage) else None


def fusible(stage: Stage) -> bool:
    """CPU map stages that keep their rows. Stages that create rows, need GPUs or hold a fixed
    number of workers (LLM clients sized to a server) keep a pass of their own."""
    mapped = map_form(stage)
    if mapped is None or mapped.produces_rows:
        return False
    res = mapped.effective_resources()
    return res.num_gpus == 0 and res.concurrency is None


def plan(stages: list[Stage], fuse: bool = True) -> list[Pass]:
    passes: list[list[Stage]] = []
    for stage in stages:
        if fuse and passes and fusible(stage) and fusible(passes[-1][-1]):
            passes[-1].append(stage)
        else:
            passes.append([stage])
    return [Pass(tuple(p)) for p in passes]


def run_pass(p: Pass, dataset):
    """The lazy dataset of a pass's output: every row, kept or dropped with its stage and reason, measured."""
    if not p.fused:
        return run_stage(p.stages[0], dataset)
    stages = [map_form(s) for s in p.stages]
    declared = [s.effective_resources() for s in stages]
    res = Resources(num_cpus=max(r.num_cpus for r in declared), batch_size=min(r.batch_size for r in declared))
    return dataset.map_batches(_pass_task, fn_args=(stages,), batch_format="pyarrow", batch_size=res.batch_size,
                               num_cpus=res.num_cpus)


def without_measures(output, p: Pass):
    """A pass's output without the per-stage measure columns, once the statistics are taken."""
    names = p.measure_columns()
    return output.map_batches(_drop, fn_args=(names,), batch_format="pyarrow", batch_size=None) if names else output


def as_left_by(output, p: Pass, index: int):
    """A pass's output as stage `index` of it left it: rows that later stages of the pass dropped are still kept.

    Stage metrics (`Stage.summarize`) are defined on the stage's own output; this gives it that.
    """
    later = p.stage_ids[index + 1:]
    if not later:
        return output
    return output.map_batches(undo_drops, fn_args=(later,), batch_format="pyarrow", batch_size=None)


def _pass_task(batch: pa.Table, stages: list[MapStage]) -> pa.Table:
    """The pass's stages, set up once per worker process (`execute.set_up`), one after another on a batch."""
    stages = set_up(stages)
    rows = max(batch.num_rows, 1)
    tokenizer = stages[-1].ctx.tokenizer
    for stage in stages:
        started = time.perf_counter()
        batch = measure(apply_map_stage(stage, batch), tokenizer)
        columns = MeasureColumns.of(stage.ctx.stage_id)
        batch = set_column(batch, columns.tokens, batch.column(TOKENS))
        batch = set_column(batch, columns.chars, batch.column(CHARS))
        share = (time.perf_counter() - started) / rows
        batch = set_column(batch, columns.seconds, pa.array(np.full(batch.num_rows, share)))
    return batch


def _drop(batch: pa.Table, names: list[str]) -> pa.Table:
    return batch.drop_columns([n for n in names if n in batch.column_names])
