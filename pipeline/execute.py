"""Running one stage on a Ray dataset, with the accounting every stage gets for free.

Rows already dropped before a stage (quarantined by a reader) pass through it untouched, every
row a stage drops is stamped with the stage's id, and a map stage that loses or invents rows
fails the run at once instead of corrupting the statistics.
"""

from __future__ import annotations

import json
import warnings
from collections import OrderedDict

import pyarrow as pa
import pyarrow.compute as pc
import ray
import ray.data
from ray.data.expressions import col

from pipeline.errors import InvariantViolation
from pipeline.records import DROP_REASON, DROP_STAGE, INTERNAL_COLUMNS, set_column, split_live
from pipeline.stage import GlobalStage, MapStage, Resources, Stage
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
    """Map stages' state in one Ray worker process: each stage's `setup()` once, not once per batch,
    and its `teardown()` when the worker lets it go.

    Ray Data gives a callable class no call when its work is done. What it does is release the
    instance when the actor exits gracefully (Ray Data's `_MapWorker.__ray_shutdown__`, which Ray Core
    runs once the pass has finished or failed, or the pool shrinks), so `__del__` runs then, inside
    the actor, while the actor's own threads (an LLM client's event loop) still run; a task's worker
    process releases it when `set_up` makes room for newer stages. A process that crashes or is killed
    runs nothing, but then the process, with what it held, is gone too. Only the stages whose
    `setup()` finished are torn down, in reverse order.
    """

    def __init__(self, stages: list[MapStage]):
        self.stages: list[MapStage] = []
        for stage in stages:
            stage.setup()
            self.stages.append(stage)

    def __del__(self):
        for stage in reversed(self.stages):
            stage.teardown()


_SET_UP: OrderedDict[str, StageWorker] = OrderedDict()  # this worker process's set-up stages, newest last
KEEP_SET_UP = 4  # passes whose stages a worker process keeps set up (one run has one at a time; a test session many)


def set_up(stages: list[MapStage]) -> list[MapStage]:
    """The stages, set up once per Ray worker process: Ray runs a job's tasks in reused processes, so
    a model loads once per process, as on an actor, while the work stays plain tasks (see `run_stage`)."""
    key = json.dumps([[type(s).__qualname__, repr(s.ctx), s.config.model_dump(mode="json")] for s in stages],
                     sort_keys=True, default=str)
    worker = _SET_UP.pop(key, None) or StageWorker(stages)
    _SET_UP[key] = worker
    while len(_SET_UP) > KEEP_SET_UP:
        _SET_UP.popitem(last=False)  # its stages are torn down as it goes
    return worker.stages


class _MapWorker(StageWorker):
    def __init__(self, stage: MapStage):
        super().__init__([stage])

    def __call__(self, batch: pa.Table) -> pa.Table:
        return _map(batch, self.stages[0])


def _finish_global(batch: pa.Table, stage_id: str, tokenizer: str | None) -> pa.Table:
    return measure(stamp_drops(batch, stage_id), tokenizer)


def run_stage(stage: Stage, dataset):
    """The lazy dataset of a stage's output: kept rows plus dropped rows carrying their reason, all measured.

    A map stage runs as plain Ray tasks, its per-worker state set up once per worker process
    (`set_up`). Tasks, not an actor pool: a task lost with its node is retried elsewhere and its
    output rebuilt from lineage, while Ray Data's actor pools, sized to the cluster's CPUs, can hold
    every CPU that the retried reads ahead of them need (the run hung when a node was lost; ray-project/ray
    issue 44687 is the same deadlock without a fault). A stage that must hold a fixed number of
    workers (an LLM client sized to its server) or GPUs keeps an actor pool (`actor_pool`).
    """
    if isinstance(stage, MapStage):
        res = stage.effective_resources()
        common = dict(batch_format="pyarrow", batch_size=res.batch_size, num_cpus=res.num_cpus,
                      num_gpus=res.num_gpus or None)
        if holds_a_pool(stage, res):
            with warnings.catch_warnings():  # max_restarts has no named parameter yet (Ray 2.60)
                warnings.filterwarnings("ignore", message="`ray_remote_args` is deprecated")
                return dataset.map_batches(_MapWorker, fn_constructor_args=(stage,), **actor_pool(res), **common)
        return dataset.map_batches(_map_task, fn_args=(stage,), **common,
                                   compute=ray.data.TaskPoolStrategy(size=res.concurrency) if res.concurrency else None)
    if isinstance(stage, GlobalStage):
        out = stage.apply(dataset)
        return out.map_batches(_finish_global, fn_args=(stage.ctx.stage_id, stage.ctx.tokenizer),
                               batch_format="pyarrow", batch_size=None)
    raise TypeError(f"{type(stage).__name__} is neither a MapStage nor a GlobalStage")


def holds_a_pool(stage: MapStage, res: Resources) -> bool:
    """A stage whose set-up workers must stay (a pool of actors, all of them up at once) rather than tasks:
    one that sets up state and asks for a number of workers or for GPUs."""
    return type(stage).setup is not MapStage.setup and bool(res.concurrency or res.num_gpus)


def kept(dataset):
    """The rows no stage dropped, without the engine's accounting columns: what the next pass reads."""
    return dataset.filter(expr=col(DROP_REASON).is_null()).drop_columns(list(INTERNAL_COLUMNS))


def _map_task(batch: pa.Table, stage: MapStage) -> pa.Table:
    (stage,) = set_up([stage])
    return _map(batch, stage)


def _map(batch: pa.Table, stage: MapStage) -> pa.Table:
    return measure(apply_map_stage(stage, batch), stage.ctx.tokenizer)


def actor_pool(res) -> dict:
    """`map_batches` arguments for a stage's actor pool: fixed if the stage asks for a size, else autoscaling
    from 1 up to what the cluster's CPUs hold.

    Its actors are never restarted. Ray Data's default restarts an actor lost with its node and holds
    the batch it was running until the restart finds a CPU, which a cluster that lost a node may never
    have (the pool's other actors hold them): the pass hung. Without restarts the batch fails, the pass
    with it, and the runner redoes the pass (`runner.run_pass_surviving_node_loss`).
    """
    if res.concurrency:
        compute = ray.data.ActorPoolStrategy(size=res.concurrency)
    else:
        cpus = ray.cluster_resources().get("CPU", 1)
        per_actor = res.num_cpus if res.num_cpus > 0 else 1
        compute = ray.data.ActorPoolStrategy(min_size=1, max_size=max(1, int(cpus // per_actor)))
    return {"compute": compute, "max_restarts": 0}
