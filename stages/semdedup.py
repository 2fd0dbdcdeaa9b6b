"""`semdedup`: drop texts that say the same thing in other words (SemDeDup, as NeMo Curator does it).

The algorithm is Ray-free (filters/semdedup.py, filters/embeddings.py); this module runs it:

1. embed: the embedding pass shared with `select` (stages/embedding_pass.py), on the stage's
   resources (a CPU per worker by default; `resources: {num_gpus: 1}` a pool of GPU workers), the
   model loaded once per worker, adds each row's unit vector as a column;
2. fit: a seeded hash of the id picks at most 100,000 rows, whose vectors come to the driver; k-means
   (scikit-learn) gives the centroids, shared with every task;
3. cluster: plain Ray tasks over the materialised blocks (pipeline/blocks.py, as dedup) assign each
   row to its nearest centroid and send (id, vector, survivor keys) to a hash partition of the cluster;
4. resolve: one task per partition walks each of its clusters in survivor order and removes the rows
   whose cosine to a kept, better-ranked row reaches `threshold` (star assignment, no chains); only
   these verdicts, one small row per duplicate, come to the driver;
5. mark: every row gets `semdup_cluster`, and a duplicate `semdup_of` (the id of the row kept in its
   place), `semdup_cosine` and the reason `semantic_duplicate`. The vector column is dropped.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from typing import Any, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import Field

from filters.embeddings import Device, model_problem
from filters.semdedup import KMEANS_SAMPLE, ROWS_PER_CLUSTER, VERDICTS, assign, fit_centroids, in_sample, resolve
from pipeline import storage
from pipeline.errors import UserError
from pipeline.records import View, drop_rows, field_numbers, live_mask, set_column, text_column
from stages.embedding_pass import VECTOR, Embed, vectors
from pipeline.registry import register
from pipeline.stage import GlobalStage, Problem, StageConfig

DUPLICATE = "semantic_duplicate"


class SemDedupConfig(StageConfig):
    model: str = Field(description="sentence-transformers model: a local folder or a Hugging Face Hub id",
                       json_schema_extra=storage.READ_ON_EVERY_NODE)
    threshold: float = Field(default=0.9, gt=0, le=1, description="cosine at which two texts are duplicates")
    clusters: int | None = Field(default=None, ge=1, description="k-means clusters (default: one per 1,000 rows); pairs are compared only inside a cluster")
    view: View = Field(default="text", description="what is embedded: a document's text, or a view of an instruction's messages")
    device: Device = Field(default="auto", description="auto: cuda when the worker has a GPU (resources: {num_gpus: 1}), else cpu")
    batch_size: int = Field(default=64, ge=1, description="texts per forward pass of the model")
    max_seq_length: int | None = Field(default=None, ge=1, description="truncate texts to this many tokens (default: the model's)")
    survivor: list[Literal["quality", "longest", "shortest", "smallest_id"]] = Field(
        default_factory=lambda: ["quality", "longest", "smallest_id"],
        description="rules, in order, that pick the row kept among duplicates (as dedup's); the id breaks remaining ties",
    )
    quality_column: str = Field(default="quality", description="score column (or field of the input) used by the `quality` rule, if present")
    partitions: int | None = Field(default=None, ge=1, description="hash partitions of the clusters (default: 2 per CPU)")


@register
class SemDedup(GlobalStage):
    """Drop rows whose embedding is within a cosine threshold of a better-ranked row of their k-means cluster."""

    name = "semdedup"
    Config = SemDedupConfig
    adds = ("semdup_cluster", "semdup_of", "semdup_cosine")

    clusters_used: int | None = None  # found by apply(), reported by summarize()
    seconds: dict[str, float] = {}  # wall time of each round (apply), so a report shows where the time went

    def check(self) -> list[Problem]:
        why = model_problem(self.config.model)
        return [Problem(why, ("model",))] if why else []

    def apply(self, dataset):
        if "id" not in dataset.schema().names:
            raise UserError("semdedup needs an `id` column to tell rows apart")
        blocks, c = self.blocks, self.config
        start = time.perf_counter()
        embedded = self.run_substage(Embed(c, self.ctx), dataset).materialize()
        self.seconds = {"embed": time.perf_counter() - start}
        rows = blocks.slices(embedded, pieces=blocks.cpus())
        if not rows:
            return embedded
        total = sum(t.column("n")[0].as_py() for t in blocks.gather(blocks.map_slices(_live_count, rows)))
        fraction = min(1.0, KMEANS_SAMPLE / max(total, 1))
        sample = [t for t in blocks.gather(blocks.map_slices(_sample, rows, fraction, self.ctx.seed)) if t.num_rows]
        if not sample:  # no live row: nothing to compare
            return blocks.dataset(blocks.map_slices(_mark, rows, c, None, blocks.share(VERDICTS.empty_table())))
        sampled = np.concatenate([vectors(t) for t in sample])
        centroids = fit_centroids(sampled, c.clusters or math.ceil(total / ROWS_PER_CLUSTER), self.ctx.seed)
        self.clusters_used = len(centroids)
        self.seconds["kmeans"] = time.perf_counter() - start - self.seconds["embed"]
        shared = blocks.share(centroids)
        parts = c.partitions or 2 * blocks.cpus()
        members = blocks.map_partitioned(_members, rows, parts, c, shared, parts)
        found = [t for t in blocks.gather(blocks.reduce_partitions(_resolve, members, c)) if t.num_rows]
        verdicts = pa.concat_tables(found).sort_by("id") if found else VERDICTS.empty_table()
        self.seconds["pairs"] = time.perf_counter() - start - self.seconds["embed"] - self.seconds["kmeans"]
        return blocks.dataset(blocks.map_slices(_mark, rows, c, shared, blocks.share(verdicts)))

    def summarize(self, output) -> dict[str, Any]:
        cosines: list[float] = []
        sizes: Counter[int] = Counter()
        for t in output.select_columns(["semdup_cluster", "semdup_cosine"]).iter_batches(batch_format="pyarrow", batch_size=None):
            cosines += pc.drop_null(t.column("semdup_cosine")).to_pylist()
            sizes.update(pc.drop_null(t.column("semdup_cluster")).to_pylist())
        edges = np.linspace(self.config.threshold, 1.0, 11)
        counts, _ = np.histogram(np.clip(cosines, edges[0], 1.0), bins=edges)
        rows_per_cluster = sorted(sizes.values())
        size_counts, size_edges = np.histogram(rows_per_cluster or [0], bins=10)
        return {
            "model": self.config.model,
            "threshold": self.config.threshold,
            "clusters": self.clusters_used,
            "duplicates": len(cosines),
            "largest_cluster": rows_per_cluster[-1] if rows_per_cluster else 0,
            **{f"{step}_s": round(t, 3) for step, t in self.seconds.items()},
            "plots": [
                {"kind": "bar", "title": "Cosine of removed rows to the row kept in their place",
                 "x": [round(float(x), 3) for x in edges[:-1]], "y": counts.tolist(), "xlabel": "cosine (bin start)", "ylabel": "rows"},
                {"kind": "bar", "title": "Rows per k-means cluster", "x": [int(x) for x in size_edges[:-1]],
                 "y": size_counts.tolist(), "xlabel": "rows in cluster (bin start)", "ylabel": "clusters"},
            ],
        }


# ---- per-slice functions of the rounds (run in Ray tasks): the engine's rows <-> filters/semdedup ----

def _live(batch: pa.Table) -> pa.Table:
    return batch.filter(live_mask(batch))


def _live_count(batch: pa.Table, number: int) -> pa.Table:
    return pa.table({"n": [_live(batch).num_rows]})


def _sample(batch: pa.Table, number: int, fraction: float, seed: int) -> pa.Table:
    live = _live(batch)
    return live.select([VECTOR]).filter(pa.array(in_sample(live.column("id").to_pylist(), fraction, seed)))


def _members(batch: pa.Table, number: int, c: SemDedupConfig, centroids: np.ndarray, parts: int) -> pa.Table:
    """Each live row's id, vector, cluster and survivor keys, with its cluster's partition."""
    live = _live(batch)
    cluster = assign(vectors(live), centroids)
    quality = field_numbers(live, c.quality_column) if "quality" in c.survivor else np.full(live.num_rows, np.nan)
    length = np.fromiter((len(t) for t in text_column(live, c.view)), dtype=np.int64, count=live.num_rows)
    return pa.table({"id": live.column("id").cast(pa.string()), VECTOR: live.column(VECTOR), "cluster": cluster,
                     "quality": quality, "length": length, "part": (cluster % parts).astype(np.int32)})


def _resolve(group: pa.Table, c: SemDedupConfig) -> pa.Table:
    if not group.num_rows:
        return VERDICTS.empty_table()
    return resolve(group.column("id").to_pylist(), vectors(group), group.column("cluster").to_numpy(),
                   group.column("quality").to_numpy(zero_copy_only=False), group.column("length").to_numpy(),
                   c.survivor, c.threshold)


def _mark(batch: pa.Table, number: int, c: SemDedupConfig, centroids: np.ndarray | None, verdicts: pa.Table) -> pa.Table:
    """Cluster, duplicate-of and cosine on every live row; the reason on duplicates; no vectors."""
    live = live_mask(batch)
    cluster = np.full(batch.num_rows, -1, dtype=np.int32)
    if centroids is not None and VECTOR in batch.column_names:
        alive = np.asarray(live.to_numpy(zero_copy_only=False), dtype=bool)
        cluster[alive] = assign(vectors(batch.filter(live)), centroids)
    ids = batch.column("id").cast(pa.string())
    pos = pc.index_in(ids, value_set=verdicts.column("id"))
    dup_of = pc.take(verdicts.column("semdup_of"), pos)
    cosine = pc.take(verdicts.column("semdup_cosine"), pos)
    dead = pc.invert(live)
    batch = batch.drop_columns([VECTOR]) if VECTOR in batch.column_names else batch
    batch = set_column(batch, "semdup_cluster", pc.if_else(dead, pa.scalar(None, pa.int32()), pa.array(cluster, pa.int32())))
    batch = set_column(batch, "semdup_of", pc.if_else(dead, pa.scalar(None, pa.string()), dup_of))
    batch = set_column(batch, "semdup_cosine", pc.if_else(dead, pa.scalar(None, pa.float32()), cosine))
    is_dup = pc.is_valid(batch.column("semdup_of")).to_numpy(zero_copy_only=False)
    return drop_rows(batch, [DUPLICATE if d else None for d in is_dup])
