"""Dedup: drop exact or near-duplicate texts, keeping one row per cluster.

Rounds of Ray tasks over the materialised input's blocks (pipeline/blocks.py). What reaches the
driver is proportional to the number of duplicates (candidate edges, cluster verdicts), never to
the corpus. The algorithm of each round is in filters/dedup; this module runs the rounds and
applies the engine's row conventions (live rows, text views, drop reasons):

0. (optional) boilerplate: count line hashes by document (hash-partitioned), strip the lines
   found in more than `max_docs` documents (filters/dedup/boilerplate.py);
1. keys: every live row gets a node key (hash of its id) and its bucket keys: the hash of its
   normalised text (`exact`) or its LSH band keys (`minhash`) (filters/dedup/candidates.py); the
   same task writes its slice of this run's index (bucket keys and signatures, for later `against:`);
2. candidates: one row per (bucket, node), hash-partitioned by bucket; each partition emits a
   star of edges per bucket holding several nodes (plus rows of earlier runs' indexes given in
   `against`);
3. components of the candidate graph on the driver (scipy, filters/dedup/clusters.py), broadcast
   as (node, component);
4. resolve: the member rows, with their shingle sets when verifying (else their signatures),
   hash-partitioned by component (filters/dedup/members.py); walking each component in survivor
   order, a row whose exact (verified) or estimated Jaccard with a representative reaches the
   threshold is removed for the best-ranked such one, any other row becomes a representative
   (filters/dedup/clusters.py `star_clusters`, filters/dedup/verdicts.py);
5. mark: every row gets `dup_cluster` (its survivor's id), `dup_cluster_size` and `dup_of`;
   non-survivors are dropped with reason `near_duplicate` / `exact_duplicate`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import BaseModel, ConfigDict, Field, model_validator

from filters.dedup import boilerplate
from filters.dedup.candidates import batches, bucket_rows, key_table, partition_edges
from filters.dedup.clusters import key_components
from filters.dedup.lsh import optimal_params, s_curve
from filters.dedup.members import earlier_member_rows, member_rows
from filters.dedup.minhash import scheme_version
from filters.dedup.sketch import Sketch
from filters.dedup.verdicts import empty_verdicts, resolve_partition, row_verdicts, rows_by_size
from pipeline import storage
from pipeline.errors import UserError
from pipeline.records import drop_rows, live_mask, set_column, text_array, text_column
from pipeline.registry import register
from pipeline.stage import GlobalStage, Problem, StageConfig
from pipeline.storage import Location

if TYPE_CHECKING:
    from pipeline.blocks import Slice

NEAR = "near_duplicate"
EXACT = "exact_duplicate"
BOILERPLATE = "boilerplate"
INDEX_PARAMS = "params.json"
_KEY_FIELDS = ("method", "field", "shingle", "ngram", "hash", "scheme", "seed", "bands", "rows")


class BoilerplateConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    unit: Literal["line", "paragraph"] = Field(default="line", description="what is counted and removed")
    max_docs: int = Field(default=100, ge=1, description="a unit found in more documents than this is boilerplate")
    min_chars: int = Field(default=10, ge=1, description="shorter units (blank lines, bullets) are never counted")


class DedupConfig(StageConfig):
    method: Literal["exact", "minhash"] = Field(default="minhash", description="exact: same normalised text; minhash: LSH")
    field: Literal["text", "instruction", "instruction+response"] = Field(
        default="text", description="text compared: documents' text, or the user turn (+ the answer) of instructions"
    )
    shingle: Literal["word", "char"] = Field(default="word", description="shingles are word or character n-grams")
    ngram: int = Field(default=5, ge=1, description="shingle size (FineWeb: 5 words)")
    bands: int | None = Field(default=14, ge=1, description="LSH bands (FineWeb: 14); null with rows null: from threshold")
    rows: int | None = Field(default=8, ge=1, description="rows per band (FineWeb: 8)")
    num_perm: int = Field(default=112, ge=1, description="permutations when bands/rows are chosen from the threshold")
    threshold: float = Field(default=0.8, gt=0, le=1, description="Jaccard similarity at which two texts are duplicates")
    verify: bool = Field(default=True, description="judge candidate pairs by their exact shingle Jaccard (false: by the MinHash estimate)")
    hash: Literal["xxh3", "sha1"] = Field(default="xxh3", description="shingle hash; sha1 = datasketch's default, slower")
    scheme: Literal["rensa", "affine32", "legacy"] = Field(
        default="rensa", description="MinHash permutations: rensa's Rust kernel, or datasketch's schemes (its signatures exactly)")
    seed: int = Field(default=1, description="seed of the MinHash permutations (datasketch's default is 1)")
    survivor: list[Literal["quality", "longest", "shortest", "smallest_id"]] = Field(
        default_factory=lambda: ["quality", "longest", "smallest_id"],
        description="rules, in order, that pick the row a cluster keeps; the id breaks remaining ties",
    )
    quality_column: str = Field(default="quality", description="score column (or field of the input) used by the `quality` rule, if present")
    index: bool = Field(default=True, description="write this run's index for later `against:`")
    index_dir: str | None = Field(default=None, description="where the index goes, a path or a URI (default OUTPUT/dedup_index/STAGE_ID)",
                                  json_schema_extra=storage.WRITTEN_ON_EVERY_NODE)
    against: list[str] = Field(default_factory=list, description="indexes of earlier runs (paths or URIs); rows matching them are dropped",
                               json_schema_extra=storage.READ_ON_EVERY_NODE)
    boilerplate: BoilerplateConfig | None = Field(default=None, description="remove repeated lines before deduplicating")
    partitions: int | None = Field(default=None, ge=1, description="hash partitions of the shuffles (default: 2 per CPU)")
    batch_size: int = Field(default=4096, ge=1, description="rows per batch of the signature pass (their distinct words are normalised once)")

    @model_validator(mode="after")
    def _shape(self):
        if (self.bands is None) != (self.rows is None):
            raise ValueError("set both bands and rows, or neither (then they are chosen from threshold and num_perm)")
        if self.boilerplate is not None and self.field != "text":
            raise ValueError("boilerplate removal works on documents' text, not on instruction fields")
        return self

    def lsh_shape(self) -> tuple[int, int]:
        if self.bands is not None and self.rows is not None:
            return self.bands, self.rows
        return optimal_params(self.threshold, self.num_perm)


@dataclass(frozen=True)
class _Plan:
    """What the workers of every pass need, small and picklable: the options, and what is resolved from
    them (the LSH shape, from the threshold when not given; the partitions, from the cluster's CPUs)."""

    options: DedupConfig
    bands: int
    rows: int
    partitions: int

    @property
    def verify(self) -> bool:
        return self.options.verify and self.options.method == "minhash"

    @property
    def compare(self) -> str:
        """What makes two rows of a component duplicates (verdicts.resolve_partition)."""
        if self.options.method == "exact":
            return "equal"
        return "jaccard" if self.verify else "estimate"

    def key_params(self) -> dict[str, Any]:
        params = {k: getattr(self if k in ("bands", "rows") else self.options, k) for k in _KEY_FIELDS}
        return {**params, "scheme": scheme_version(self.options.scheme)}

    @property
    def sketch(self) -> Sketch | None:
        """What a text's near-duplicates are found by; None for exact dedup (the whole normalised text)."""
        o = self.options
        if o.method == "exact":
            return None
        return Sketch(ngram=o.ngram, shingle=o.shingle, hash=o.hash, seed=o.seed, scheme=o.scheme, bands=self.bands, rows=self.rows)

    def texts(self, batch: pa.Table) -> pa.Array:
        if self.options.field == "instruction+response":
            ins, res = text_column(batch, "instruction"), text_column(batch, "response")
            return pa.array([f"{a}\n\n{b}" for a, b in zip(ins, res)], pa.string())
        return text_array(batch, self.options.field)


@register
class Dedup(GlobalStage):
    """Drop exact and near-duplicate rows (MinHash LSH), keeping the best of each cluster; index them for later runs."""

    name = "dedup"
    Config = DedupConfig

    def __init__(self, config: DedupConfig, ctx):
        super().__init__(config, ctx)
        bands, rows = (1, 1) if config.method == "exact" else config.lsh_shape()
        self.plan = _Plan(config, bands, rows, config.partitions or 0)
        self.repeated_units: int | None = None
        self.cluster_rows: dict[int, int] = {}  # live rows per cluster size, known once `apply` has resolved

    @property
    def index_dir(self) -> Location:
        if self.config.index_dir:
            return storage.locate(self.config.index_dir)
        return storage.locate(self.ctx.output_dir) / "dedup_index" / self.ctx.stage_id

    def outputs(self) -> list[Location]:
        return [self.index_dir] if self.config.index else []

    def check(self) -> list[Problem]:
        """Each `against:` index exists and was built with this stage's parameters (its small params
        file says so), and `index_dir` is free or an index: no index is read."""
        problems = []
        for i, path in enumerate(self.config.against):
            try:
                theirs = json.loads((storage.locate(path) / INDEX_PARAMS).read_text())
            except FileNotFoundError:
                problems.append(Problem(f"dedup against: {path} is not a dedup index (no {INDEX_PARAMS})", ("against", i)))
                continue
            except OSError as e:
                problems.append(Problem(f"dedup against: {path}: {storage.first_line(e)}", ("against", i)))
                continue
            ours = self.plan.key_params()
            diff = sorted(k for k in ours if k != "field" and theirs.get(k) != ours[k])
            if diff:
                problems.append(Problem(f"dedup against: {path} was built with other parameters ({', '.join(diff)}); "
                                        "rebuild it", ("against", i)))
        index_dir = self.index_dir
        if self.config.index and index_dir.children() and not (index_dir / INDEX_PARAMS).exists():
            problems.append(Problem(f"dedup index_dir {index_dir} exists and is not a dedup index; choose another",
                                    ("index_dir",)))
        return problems

    def apply(self, dataset):
        blocks = self.blocks
        dataset = dataset.materialize()  # before its schema, which a lazy dataset reads part of its input for
        if "id" not in dataset.schema().names:
            raise UserError("dedup needs an `id` column to tell rows apart")
        cpus = blocks.cpus()
        if not self.plan.partitions:
            self.plan = replace(self.plan, partitions=2 * cpus)
        parts = self.plan.partitions
        rows = blocks.slices(dataset, pieces=cpus)
        earlier = self._earlier_rows()  # read before this run's index replaces one of them
        index_dir = self._start_index() if self.config.index else None
        if not rows:  # a dataset without blocks: nothing to mark, an empty index
            return dataset
        if self.config.boilerplate is not None:
            rows = self._strip_boilerplate(rows)
        live_rows = blocks.map_slices(_live_rows, rows)  # counted beside the keys pass, for the summary
        candidates = blocks.map_partitioned(_candidate_rows, rows, parts, self.plan, index_dir)
        candidates += blocks.map_partitioned(_earlier_candidate_rows, earlier, parts, self.plan)
        edges = blocks.gather(blocks.reduce_partitions(partition_edges, candidates))
        verdicts = (
            self._resolve(rows, earlier, *_columns(edges, ("a", "b"))) if any(e.num_rows for e in edges)
            else empty_verdicts()
        )
        self.cluster_rows = rows_by_size(verdicts, sum(blocks.gather(live_rows)))
        return blocks.dataset(blocks.map_slices(_mark_batch, rows, self.plan, blocks.share(verdicts)))

    def _earlier_rows(self) -> list[Slice]:
        """The rows of the indexes in `against`: id, bucket keys and, to verify, signature."""
        if not self.config.against:
            return []
        import ray.data

        columns = ["id", "buckets"] + (["signature"] if self.plan.compare != "equal" else [])
        indexes = [storage.locate(path) for path in self.config.against]  # each on its own filesystem
        old = [ray.data.read_parquet(i.path, filesystem=i.fs, columns=columns, file_extensions=["parquet"]) for i in indexes]
        return self.blocks.slices((old[0].union(*old[1:]) if len(old) > 1 else old[0]).materialize(), pieces=1)

    def _strip_boilerplate(self, rows: list[Slice]) -> list[Slice]:
        blocks, bp = self.blocks, self.config.boilerplate
        counts = blocks.map_partitioned(_unit_hash_rows, rows, self.plan.partitions, bp, self.plan.partitions)
        found = blocks.gather(blocks.reduce_partitions(_repeated_units, counts, bp.max_docs))
        repeated = np.sort(_columns(found, ("h",))[0])
        self.repeated_units = int(len(repeated))
        return blocks.whole(blocks.map_slices(_strip_batch, rows, bp, blocks.share(repeated)))

    def _resolve(self, rows: list[Slice], earlier: list[Slice], a: np.ndarray, b: np.ndarray) -> pa.Table:
        """Cluster verdicts of every row that has a candidate: (node, cluster, size, dup_of)."""
        blocks, plan = self.blocks, self.plan
        components = blocks.share(key_components(a, b))
        members = blocks.map_partitioned(_member_rows, rows, plan.partitions, plan, components)
        members += blocks.map_partitioned(_earlier_member_rows, earlier, plan.partitions, plan, components)
        resolved = blocks.reduce_partitions(resolve_partition, members, plan.options.survivor, plan.compare,
                                            plan.options.threshold, plan.bands * plan.rows)
        tables = [t for t in blocks.gather(resolved) if t.num_rows]
        return pa.concat_tables(tables).sort_by("node") if tables else empty_verdicts()

    def _start_index(self) -> Location:
        """A fresh index folder with its parameters; the key pass writes one part per slice."""
        index_dir = self.index_dir
        index_dir.remove()
        (index_dir / INDEX_PARAMS).write_text(json.dumps(self.plan.key_params(), indent=1))
        return index_dir

    def summarize(self, output) -> dict[str, Any]:
        hist = sorted((size, n // size) for size, n in self.cluster_rows.items())
        summary: dict[str, Any] = {
            "method": self.config.method,
            "clusters_with_duplicates": sum(c for s, c in hist if s > 1),
            "cluster_sizes": {str(s): c for s, c in hist},
            "plots": [
                {"kind": "bar", "title": "Duplicate cluster sizes", "x": [s for s, _ in hist], "y": [c for _, c in hist],
                 "xlabel": "rows in cluster", "ylabel": "clusters"},
            ],
        }
        if self.config.method == "minhash":
            x, y = s_curve(self.plan.bands, self.plan.rows)
            summary.update(bands=self.plan.bands, rows=self.plan.rows, threshold=self.config.threshold, verify=self.plan.verify)
            summary["plots"].insert(0, {
                "kind": "line", "title": f"Candidate probability, {self.plan.bands} bands x {self.plan.rows} rows",
                "x": x, "y": y, "xlabel": "Jaccard similarity", "ylabel": "P(candidate pair)",
            })
        if self.repeated_units is not None:
            summary["boilerplate_units"] = self.repeated_units
        return summary


# ---- per-batch functions of the passes (run on Ray workers): the engine's rows <-> filters/dedup ----

def _candidate_rows(batch: pa.Table, number: int, plan: _Plan, index_dir: Location | None) -> pa.Table:
    """A slice's (bucket, node) rows, partitioned by bucket; its part of the index on the way."""
    import pyarrow.parquet as pq

    with_signature = index_dir is not None
    keys = pa.concat_tables([_keys_batch(part, plan, with_signature) for part in batches(batch, plan.options.batch_size)])
    if index_dir is not None:
        with (index_dir / f"part-{number:05d}.parquet").open_write() as f:
            pq.write_table(keys, f)
    return bucket_rows(keys, plan.partitions, old=False)


def _keys_batch(batch: pa.Table, plan: _Plan, with_signature: bool) -> pa.Table:
    """Bucket keys (and signature) of every live row with some text."""
    live = batch.filter(live_mask(batch))
    return key_table(live.column("id"), plan.texts(live), plan.sketch, with_signature)


def _earlier_candidate_rows(batch: pa.Table, number: int, plan: _Plan) -> pa.Table:
    return bucket_rows(batch, plan.partitions, old=True)


def _columns(tables: list[pa.Table], columns: tuple[str, ...]) -> tuple[np.ndarray, ...]:
    """Small gathered results (edges, repeated units) as one numpy array per column."""
    return tuple(
        np.concatenate([t.column(c).to_numpy() for t in tables]) if tables else np.zeros(0, np.uint64) for c in columns
    )


def _member_rows(batch: pa.Table, number: int, plan: _Plan, components) -> pa.Table:
    """The live rows of a slice that have a candidate; signatures when the estimate compares them
    (unverified, or against earlier runs)."""
    quality_column = plan.options.quality_column if "quality" in plan.options.survivor else None
    signatures = plan.compare == "estimate" or (plan.compare == "jaccard" and bool(plan.options.against))
    return member_rows(batch.filter(live_mask(batch)), components, plan.texts, quality_column, plan.sketch,
                       plan.compare == "jaccard", signatures, plan.partitions)


def _earlier_member_rows(batch: pa.Table, number: int, plan: _Plan, components) -> pa.Table:
    return earlier_member_rows(batch, components, plan.compare != "equal", plan.partitions)


def _live_rows(batch: pa.Table, number: int) -> int:
    return pc.sum(live_mask(batch)).as_py() or 0


def _mark_batch(batch: pa.Table, number: int, plan: _Plan, verdicts: pa.Table) -> pa.Table:
    """Cluster columns on every row and the drop reason on every non-survivor."""
    cluster, size, dup_of = row_verdicts(batch.column("id").cast(pa.string()).to_pylist(), verdicts)
    dead = pc.invert(live_mask(batch))
    batch = set_column(batch, "dup_cluster", pc.if_else(dead, pa.scalar(None, pa.string()), cluster))
    batch = set_column(batch, "dup_cluster_size", pc.if_else(dead, pa.scalar(None, pa.int64()), size))
    batch = set_column(batch, "dup_of", pc.if_else(dead, pa.scalar(None, pa.string()), dup_of))
    reason = EXACT if plan.options.method == "exact" else NEAR
    is_dup = pc.is_valid(batch.column("dup_of")).to_numpy(zero_copy_only=False)
    return drop_rows(batch, [reason if d else None for d in is_dup])


def _unit_hash_rows(batch: pa.Table, number: int, bp: BoilerplateConfig, partitions: int) -> pa.Table:
    texts = [t if k else "" for t, k in zip(text_column(batch, "text"), live_mask(batch).to_numpy(zero_copy_only=False))]
    h = boilerplate.unit_hashes(texts, bp.unit, bp.min_chars)
    return pa.table({"h": h, "part": (h % np.uint64(partitions)).astype(np.int32)})


def _repeated_units(group: pa.Table, max_docs: int) -> pa.Table:
    return pa.table({"h": boilerplate.repeated_hashes(group.column("h").to_numpy(), max_docs)})


def _strip_batch(batch: pa.Table, number: int, bp: BoilerplateConfig, repeated: np.ndarray) -> pa.Table:
    live = live_mask(batch).to_numpy(zero_copy_only=False)
    texts = text_column(batch, "text")
    cleaned, removed = boilerplate.remove_units(texts, bp.unit, bp.min_chars, repeated)
    cleaned = [c if k else t for c, t, k in zip(cleaned, texts, live)]
    batch = set_column(batch, "text", pa.array(cleaned, pa.string()))
    batch = set_column(batch, "boilerplate_removed", pa.array(np.where(live, removed, 0), pa.int64()))
    return drop_rows(batch, [BOILERPLATE if k and r and not c.strip() else None for c, r, k in zip(cleaned, removed, live)])
