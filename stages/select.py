"""`select`: keep the best and most diverse rows, as Deita does (filters/select.py has the rules).

1. embed: the shared embedding pass (stages/embedding_pass.py), on the stage's resources;
2. gather: each live row's id, score columns and vector come to the driver (a selection is one
   greedy walk over all rows: 100,000 rows of 384 floats are 150 MB);
3. select: `filters.select.select` decides every row;
4. mark: every live row gets `select_score`, `select_rank`, `select_nearest` and
   `select_nearest_cosine` (the chosen row nearest to it when it was decided), and a row not
   chosen its reason: `select_too_similar` or `select_over_budget`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import Field, model_validator

from filters.embeddings import Device, model_problem
from filters.select import CHOSEN, REASONS, Method, budget_of, combined_score, select
from pipeline import storage
from pipeline.errors import UserError
from pipeline.records import View, drop_rows, field_numbers, live_mask, set_column
from pipeline.registry import register
from pipeline.stage import GlobalStage, Problem, StageConfig
from stages.embedding_pass import VECTOR, Embed, vectors

VERDICTS = pa.schema([("id", pa.string()), ("select_score", pa.float64()), ("select_rank", pa.int64()),
                      ("select_nearest", pa.string()), ("select_nearest_cosine", pa.float32()), ("reason", pa.string())])


class SelectConfig(StageConfig):
    model: str = Field(description="sentence-transformers model: a local folder or a Hugging Face Hub id",
                       json_schema_extra=storage.READ_ON_EVERY_NODE)
    keep: int | None = Field(default=None, ge=1, description="rows to keep")
    keep_share: float | None = Field(default=None, gt=0, le=1, description="share of the live rows to keep (instead of keep)")
    score_columns: list[str] = Field(
        default_factory=list, description="columns (or input fields kept in meta) whose product ranks the rows (Deita: complexity x quality); none: all equal")
    method: Method = Field(default="score_first", description="score_first (Deita) or k_center (weighted farthest-first)")
    max_cosine: float = Field(default=0.9, gt=0, le=1, description="score_first: a row this close to a chosen one is skipped")
    view: View = Field(default="text", description="what is embedded: a document's text, or a view of an instruction's messages")
    device: Device = Field(default="auto", description="auto: cuda when the worker has a GPU (resources: {num_gpus: 1}), else cpu")
    batch_size: int = Field(default=64, ge=1, description="texts per forward pass of the model")
    max_seq_length: int | None = Field(default=None, ge=1, description="truncate texts to this many tokens (default: the model's)")

    @model_validator(mode="after")
    def _one_budget(self):
        if self.keep is not None and self.keep_share is not None:
            raise ValueError("give keep or keep_share, not both")
        return self


@register
class Select(GlobalStage):
    """Keep the best-scored rows that are not near copies of better ones (Deita), or the most spread-out (k-center)."""

    name = "select"
    Config = SelectConfig
    adds = ("select_score", "select_rank", "select_nearest", "select_nearest_cosine")

    def check(self) -> list[Problem]:
        why = model_problem(self.config.model)
        return [Problem(why, ("model",))] if why else []

    def apply(self, dataset):
        c, blocks = self.config, self.blocks
        names = dataset.schema().names
        if "id" not in names:
            raise UserError(f"stage {self.ctx.stage_id}: select needs an `id` column to tell rows apart")
        if "meta" not in names and (missing := [s for s in c.score_columns if s not in names]):
            raise UserError(f"stage {self.ctx.stage_id}: score column(s) {', '.join(missing)} not in the data "
                            f"(columns: {', '.join(n for n in names if not n.startswith('_'))})")
        embedded = self.run_substage(Embed(c, self.ctx), dataset).materialize()
        rows = blocks.slices(embedded, pieces=blocks.cpus())
        if not rows:
            return embedded
        live = [t for t in blocks.gather(blocks.map_slices(_candidates, rows, c.score_columns)) if t.num_rows]
        table = pa.concat_tables(live) if live else None
        if table is not None and (unscored := [s for s in c.score_columns if table.column(s).null_count == table.num_rows]):
            raise UserError(f"stage {self.ctx.stage_id}: no live row has a score in {', '.join(unscored)} "
                            "(a column, or a field of the input kept in `meta`)")
        verdicts = _decide(table, c) if table is not None else VERDICTS.empty_table()
        return blocks.dataset(blocks.map_slices(_mark, rows, blocks.share(verdicts)))

    def summarize(self, output) -> dict[str, Any]:
        cosines, reasons = [], {}
        for t in output.select_columns(["select_nearest_cosine", "_drop_reason"]).iter_batches(batch_format="pyarrow", batch_size=None):
            cosines += pc.drop_null(t.column("select_nearest_cosine")).to_pylist()
            for r in t.column("_drop_reason").to_pylist():
                if r in REASONS.values():
                    reasons[r] = reasons.get(r, 0) + 1
        counts, edges = np.histogram(np.clip(cosines, -1, 1) if cosines else [0.0], bins=10, range=(-1, 1))
        return {
            "method": self.config.method, "model": self.config.model, "not_selected": reasons,
            "plots": [{"kind": "bar", "title": "Cosine of each row to the nearest chosen row, when it was decided",
                       "x": [round(float(x), 2) for x in edges[:-1]], "y": counts.tolist(),
                       "xlabel": "cosine (bin start)", "ylabel": "rows"}],
        }


def _decide(table: pa.Table, c: SelectConfig) -> pa.Table:
    ids = table.column("id").to_pylist()
    score = combined_score([table.column(s).to_numpy(zero_copy_only=False) for s in c.score_columns], table.num_rows)
    s = select(vectors(table), ids, score, budget_of(table.num_rows, c.keep, c.keep_share), c.method, c.max_cosine)
    nearest = pa.array([ids[j] if j >= 0 else None for j in s.nearest.tolist()], pa.string())
    return pa.table({
        "id": pa.array(ids, pa.string()), "select_score": pa.array(score, pa.float64(), from_pandas=True),
        "select_rank": s.rank, "select_nearest": nearest,
        "select_nearest_cosine": pa.array(s.nearest_cosine, pa.float32(), from_pandas=True),
        "reason": pa.array([None if o == CHOSEN else REASONS[o] for o in s.outcome.tolist()], pa.string()),
    }, schema=VERDICTS).sort_by("id")


def _candidates(batch: pa.Table, number: int, score_columns: list[str]) -> pa.Table:
    """The live rows' ids, scores and vectors. A score is a column (a stage's, e.g. `quality`), or else a
    field of the input that the reader kept in `meta` (a reward a user's file carries)."""
    live = batch.filter(live_mask(batch))
    scores = {s: pa.array(field_numbers(live, s), pa.float64(), from_pandas=True) for s in score_columns}
    return pa.table({"id": live.column("id").cast(pa.string()), **scores, VECTOR: live.column(VECTOR)})


def _mark(batch: pa.Table, number: int, verdicts: pa.Table) -> pa.Table:
    dead = pc.invert(live_mask(batch))
    pos = pc.index_in(batch.column("id").cast(pa.string()), value_set=verdicts.column("id"))
    batch = batch.drop_columns([VECTOR])
    for name in VERDICTS.names[1:-1]:
        values = pc.take(verdicts.column(name), pos)
        batch = set_column(batch, name, pc.if_else(dead, pa.scalar(None, values.type), values))
    reasons = pc.if_else(dead, pa.scalar(None, pa.string()), pc.take(verdicts.column("reason"), pos))
    return drop_rows(batch, reasons.to_pylist())
