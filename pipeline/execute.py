"""Running one stage on a Ray dataset, with the accounting every stage gets for free.

Rows already dropped before a stage (quarantined by a reader) pass through it untouched, every
row a stage drops is stamped with the stage's id, and a map stage that loses or invents rows
fails the run at once instead of corrupting the statistics.
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc
import ray
import ray.data
from ray.data.expressions import col

from pipeline.errors import InvariantViolation
from pipeline.records import DROP_REASON, DROP_STAGE, INTERNAL_COLUMNS, set_column, split_live
from pipeline.stage import GlobalStage, MapStage, Stage
from pipeline.stats import measure


def stamp_drops(batch: pa.Table, stage_id: str) -> pa.Table:
    """Make sure both accounting columns exist and every new drop names the stage that made it."""
    n = batch.num_rows
    if DROP_REASON not in batch.column_names:
        batch = set_column(batch, DROP_REASON, pa.nulls(n, pa.string()))
    if DROP_STAGE not in batch.column_names:
        batch = set_column(batch, DROP_STAGE, pa.nulls(n, pa.string()))
    reason = batch.column(DROP_REASON)
    stage = batch.column(DROP_STAGE)
    new_drop = pc.and_(pc.is_valid(reason), pc.is_null(stage))
    return set_column(batch, DROP_STAGE, pc.if_else(new_drop, pa.scalar(stage_id), stage))


def apply_map_stage(stage: MapStage, batch: pa.Table) -> pa.Table:
    live, dead = split_live(batch)
    out = stage.process_batch(live) if live.num_rows else live
    if not stage.produces_rows and out.num_rows != live.num_rows:
        raise InvariantViolation(
            f"stage {stage.ctx.stage_id} returned {out.num_rows} rows for {live.num_rows}: "
            "a stage must mark dropped rows with a reason, not remove them"
        )
    out = stamp_drops(out, stage.ctx.stage_id)
    if dead.num_rows:
        out = pa.concat_tables([out, stamp_drops(dead, stage.ctx.stage_id)], promote_options="permissive")
    return out


class StageWorker:
    """Map stages' state on one Ray Data actor: each stage's `setup()` when the actor starts, not once
    per batch, and its `teardown()` when the actor stops.

    Ray Data gives a callable class no call when its work is done. What it does is release the
    instance when the actor exits gracefully (Ray Data's `_MapWorker.__ray_shutdown__`, which Ray Core
    runs once the pass has finished or failed, or the pool shrinks), so `__del__` runs then, inside
    the actor, while the actor's own threads (an LLM client's event loop) still run. An actor that
    crashes or is killed runs nothing, but then its process, with what it held, is gone too. Only the
    stages whose `setup()` finished are torn down, in reverse order.
    """

    def __init__(self, stages: list[MapStage]):
        self.stages: list[MapStage] = []
        for stage in stages:
            stage.setup()
            self.stages.append(stage)

    def __del__(self):
        for stage in reversed(self.stages):
            stage.teardown()


class _MapWorker(StageWorker):
    def __init__(self, stage: MapStage):
        super().__init__([stage])

    def __call__(self, batch: pa.Table) -> pa.Table:
        return _map_task(batch, self.stages[0])


def _finish_global(batch: pa.Table, stage_id: str, tokenizer: str | None) -> pa.Table:
    return measure(stamp_drops(batch, stage_id), tokenizer)


def run_stage(stage: Stage, dataset):
    """The lazy dataset of a stage's output: kept rows plus dropped rows carrying their reason, all measured.

    A map stage with per-worker state (it overrides `setup`) runs on an actor pool so the state
    loads once per worker; a stateless one runs as plain tasks, which Ray fuses with its neighbours.
    """
    if isinstance(stage, MapStage):
        res = stage.effective_resources()
        common = dict(batch_format="pyarrow", batch_size=res.batch_size, num_cpus=res.num_cpus,
                      num_gpus=res.num_gpus or None)
        if type(stage).setup is MapStage.setup:
            return dataset.map_batches(_map_task, fn_args=(stage,), **common,
                                       compute=ray.data.TaskPoolStrategy(size=res.concurrency) if res.concurrency else None)
        return dataset.map_batches(_MapWorker, fn_constructor_args=(stage,), compute=actor_pool(res), **common)
    if isinstance(stage, GlobalStage):
        out = stage.apply(dataset)
        return out.map_batches(_finish_global, fn_args=(stage.ctx.stage_id, stage.ctx.tokenizer),
                               batch_format="pyarrow", batch_size=None)
    raise TypeError(f"{type(stage).__name__} is neither a MapStage nor a GlobalStage")


def kept(dataset):
    """The rows no stage dropped, without the engine's accounting columns: what the next pass reads."""
    return dataset.filter(expr=col(DROP_REASON).is_null()).drop_columns(list(INTERNAL_COLUMNS))


def _map_task(batch: pa.Table, stage: MapStage) -> pa.Table:
    return measure(apply_map_stage(stage, batch), stage.ctx.tokenizer)


def actor_pool(res):
    """A fixed pool if the stage asks for one, else autoscaling from 1 up to what the cluster's CPUs hold."""
    if res.concurrency:
        return ray.data.ActorPoolStrategy(size=res.concurrency)
    cpus = ray.cluster_resources().get("CPU", 1)
    per_actor = res.num_cpus if res.num_cpus > 0 else 1
    return ray.data.ActorPoolStrategy(min_size=1, max_size=max(1, int(cpus // per_actor)))
