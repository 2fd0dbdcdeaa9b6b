"""Dedup: drop exact or near-duplicate texts, keeping one row per cluster.

Rounds of Ray tasks over the materialised input's blocks (pipeline/blocks.py). What reaches the
driver is proportional to the number of duplicates (candidate edges, cluster verdicts), never to
the corpus:

0. (optional) boilerplate: count line hashes by document (hash-partitioned), strip the lines
   found in more than `max_docs` documents;
1. keys: every live row gets a node key (hash of its id) and its bucket keys: the hash of its
   normalised text (`exact`) or its LSH band keys (`minhash`, filters/dedup); the same task
   writes its slice of this run's index (bucket keys and signatures, for later `against:`);
2. candidates: one row per (bucket, node), hash-partitioned by bucket; each partition emits a
   star of edges per bucket holding several nodes (plus rows of earlier runs' indexes given in
   `against`);
3. components of the candidate graph on the driver (scipy), broadcast as (node, component);
4. resolve: the member rows, with their shingle sets when verifying, hash-partitioned by
   component; pairs are verified by exact Jaccard, clusters are connected components of the
   verified pairs, and the survivor rule picks one row per cluster;
5. mark: every row gets `dup_cluster` (its survivor's id), `dup_cluster_size` and `dup_of`;
   non-survivors are dropped with reason `near_duplicate` / `exact_duplicate`.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, replace
from typing import Any, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import BaseModel, ConfigDict, Field, model_validator

from filters.dedup import boilerplate
from filters.dedup.clusters import key_components, survivor_order, survivors, verified_clusters
from filters.dedup.lsh import band_keys, optimal_params, s_curve, star_edges
from filters.dedup.minhash import Permutations, estimated_jaccard, pairwise_jaccard
from filters.dedup.shingles import normalize, normalized_shingles
from pipeline import blocks, storage
from pipeline.errors import UserError
from pipeline.records import drop_rows, live_mask, set_column, text_column
from pipeline.registry import register
from pipeline.stage import GlobalStage, Problem, StageConfig
from pipeline.storage import Location

NEAR = "near_duplicate"
EXACT = "exact_duplicate"
BOILERPLATE = "boilerplate"
OLD_BIT = np.uint64(1 << 63)  # node keys of rows from an earlier run's index
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
    verify: bool = Field(default=True, description="keep only candidate pairs whose exact shingle Jaccard >= threshold")
    hash: Literal["xxh3", "sha1"] = Field(default="xxh3", description="shingle hash; sha1 = datasketch's default, slower")
    scheme: Literal["affine32", "legacy"] = Field(default="affine32", description="datasketch permutation scheme")
    seed: int = Field(default=1, description="seed of the MinHash permutations (datasketch's default is 1)")
    survivor: list[Literal["quality", "longest", "shortest", "smallest_id"]] = Field(
        default_factory=lambda: ["quality", "longest", "smallest_id"],
        description="rules, in order, that pick the row a cluster keeps; the id breaks remaining ties",
    )
    quality_column: str = Field(default="quality", description="score column used by the `quality` rule, if present")
    index: bool = Field(default=True, description="write this run's index for later `against:`")
    index_dir: str | None = Field(default=None, description="where the index goes, a path or a URI (default OUTPUT/dedup_index/STAGE_ID)")
    against: list[str] = Field(default_factory=list, description="indexes of earlier runs (paths or URIs); rows matching them are dropped")
    boilerplate: BoilerplateConfig | None = Field(default=None, description="remove repeated lines before deduplicating")
    partitions: int | None = Field(default=None, ge=1, description="hash partitions of the shuffles (default: 2 per CPU)")
    batch_size: int = Field(default=1024, ge=1, description="rows per batch of the signature pass")

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

    def key_params(self) -> dict[str, Any]:
        return {k: getattr(self if k in ("bands", "rows") else self.options, k) for k in _KEY_FIELDS}

    def texts(self, batch: pa.Table) -> list[str]:
        if self.options.field == "instruction+response":
            ins, res = text_column(batch, "instruction"), text_column(batch, "response")
            return [f"{a}\n\n{b}" for a, b in zip(ins, res)]
        return text_column(batch, self.options.field)

    def shingles(self, normalized: pa.Array):
        o = self.options
        return normalized_shingles(normalized, o.ngram, o.shingle, o.hash)

    def signatures(self, normalized: pa.Array) -> np.ndarray:
        return Permutations(self.bands * self.rows, self.options.seed, self.options.scheme).signatures(self.shingles(normalized))


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
        import ray

        if "id" not in dataset.schema().names:
            raise UserError("dedup needs an `id` column to tell rows apart")
        cpus = int(ray.cluster_resources().get("CPU", 1))
        if not self.plan.partitions:
            self.plan = replace(self.plan, partitions=2 * cpus)
        parts = self.plan.partitions
        dataset = dataset.materialize()
        rows = blocks.slices(dataset, pieces=cpus)
        earlier = self._earlier_rows()  # read before this run's index replaces one of them
        index_dir = self._start_index() if self.config.index else None
        if not rows:  # a dataset without blocks: nothing to mark, an empty index
            return dataset
        if self.config.boilerplate is not None:
            rows = self._strip_boilerplate(rows)
        candidates = blocks.map_partitioned(_candidate_rows, rows, parts, self.plan, index_dir)
        candidates += blocks.map_partitioned(_earlier_candidate_rows, earlier, parts, self.plan)
        edges = blocks.gather(blocks.reduce_partitions(_partition_edges, candidates))
        verdicts = (
            self._resolve(rows, earlier, *_columns(edges, ("a", "b"))) if any(e.num_rows for e in edges)
            else _empty_verdicts()
        )
        return blocks.dataset(blocks.map_slices(_mark_batch, rows, self.plan, ray.put(verdicts)))

    def _earlier_rows(self) -> list[blocks.Slice]:
        """The rows of the indexes in `against`: id, bucket keys and, to verify, signature."""
        if not self.config.against:
            return []
        import ray.data

        columns = ["id", "buckets"] + (["signature"] if self.plan.verify else [])
        indexes = [storage.locate(path) for path in self.config.against]  # each on its own filesystem
        old = [ray.data.read_parquet(i.path, filesystem=i.fs, columns=columns, file_extensions=["parquet"]) for i in indexes]
        return blocks.slices((old[0].union(*old[1:]) if len(old) > 1 else old[0]).materialize(), pieces=1)

    def _strip_boilerplate(self, rows: list[blocks.Slice]) -> list[blocks.Slice]:
        import ray

        bp = self.config.boilerplate
        counts = blocks.map_partitioned(_unit_hash_rows, rows, self.plan.partitions, bp, self.plan.partitions)
        found = blocks.gather(blocks.reduce_partitions(_repeated_units, counts, bp.max_docs))
        repeated = np.sort(_columns(found, ("h",))[0])
        self.repeated_units = int(len(repeated))
        return blocks.whole(blocks.map_slices(_strip_batch, rows, bp, ray.put(repeated)))

    def _resolve(self, rows: list[blocks.Slice], earlier: list[blocks.Slice], a: np.ndarray, b: np.ndarray) -> pa.Table:
        """Cluster verdicts of every row that has a candidate: (node, cluster, size, dup_of)."""
        import ray

        members = ray.put(key_components(a, b))
        parts = self.plan.partitions
        member_rows = blocks.map_partitioned(_member_rows, rows, parts, self.plan, members)
        member_rows += blocks.map_partitioned(_earlier_member_rows, earlier, parts, self.plan, members)
        tables = [t for t in blocks.gather(blocks.reduce_partitions(_resolve_partition, member_rows, self.plan)) if t.num_rows]
        return pa.concat_tables(tables).sort_by("node") if tables else _empty_verdicts()

    def _start_index(self) -> Location:
        """A fresh index folder with its parameters; the key pass writes one part per slice."""
        index_dir = self.index_dir
        index_dir.remove()
        (index_dir / INDEX_PARAMS).write_text(json.dumps(self.plan.key_params(), indent=1))
        return index_dir

    def summarize(self, output) -> dict[str, Any]:
        rows_by_size: dict[int, int] = defaultdict(int)
        counts = output.select_columns(["dup_cluster_size"]).map_batches(_size_counts, batch_format="pyarrow")
        for t in counts.iter_batches(batch_format="pyarrow", batch_size=None):
            for size, n in zip(t.column("size").to_pylist(), t.column("rows").to_pylist()):
                rows_by_size[size] += n
        hist = sorted((size, n // size) for size, n in rows_by_size.items())
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


# ---- per-batch functions of the passes (run on Ray workers) ----

def _size_counts(batch: pa.Table) -> pa.Table:
    sizes = batch.column("dup_cluster_size").drop_null().to_numpy()
    values, counts = np.unique(sizes, return_counts=True)
    return pa.table({"size": values.astype(np.int64), "rows": counts.astype(np.int64)})


def node_keys(ids: list[str], old: bool = False) -> np.ndarray:
    """A 63-bit key per id; rows of an earlier run get the top bit, so they never collide with ours."""
    import xxhash

    keys = np.fromiter((xxhash.xxh3_64_intdigest(str(i).encode("utf-8")) for i in ids), dtype=np.uint64, count=len(ids))
    keys &= ~OLD_BIT
    return keys | OLD_BIT if old else keys


def _fixed_list(values: np.ndarray, width: int, type_: pa.DataType) -> pa.Array:
    return pa.FixedSizeListArray.from_arrays(pa.array(values.reshape(-1), type=type_), width)


def _keys_batch(batch: pa.Table, plan: _Plan, with_signature: bool) -> pa.Table:
    """Bucket keys (and signature) of every live row with some text."""
    import xxhash

    live = batch.filter(live_mask(batch))
    normalized = normalize(plan.texts(live))
    nonempty = pc.greater(pc.utf8_length(normalized), 0)
    live, normalized = live.filter(nonempty), normalized.filter(nonempty)
    sig = None
    if plan.options.method == "exact":
        texts = normalized.to_pylist()
        hashes = (xxhash.xxh3_64_intdigest(t.encode("utf-8")) for t in texts)
        buckets = np.fromiter(hashes, dtype=np.uint64, count=len(texts))[:, None]
    else:
        sig = plan.signatures(normalized)
        buckets = band_keys(sig, plan.bands, plan.rows)
    cols = {"id": live.column("id").cast(pa.string()), "buckets": _fixed_list(buckets, buckets.shape[1], pa.uint64())}
    if with_signature and sig is not None:
        cols["signature"] = _fixed_list(sig, sig.shape[1], pa.uint32())
    return pa.table(cols)


def _bucket_rows(batch: pa.Table, partitions: int, old: bool) -> pa.Table:
    buckets = batch.column("buckets").combine_chunks()
    width = buckets.type.list_size
    flat = buckets.flatten().to_numpy()
    nodes = np.repeat(node_keys(batch.column("id").to_pylist(), old), width)
    return pa.table({"bucket": flat, "node": nodes, "part": (flat % np.uint64(partitions)).astype(np.int32)})


def _candidate_rows(batch: pa.Table, number: int, plan: _Plan, index_dir: Location | None) -> pa.Table:
    """A slice's (bucket, node) rows, partitioned by bucket; its part of the index on the way."""
    import pyarrow.parquet as pq

    with_signature = index_dir is not None
    keys = pa.concat_tables([_keys_batch(part, plan, with_signature) for part in _batches(batch, plan.options.batch_size)])
    if index_dir is not None:
        with (index_dir / f"part-{number:05d}.parquet").open_write() as f:
            pq.write_table(keys.select(_index_columns(plan)), f)
    return _bucket_rows(keys, plan.partitions, old=False)


def _batches(table: pa.Table, size: int) -> list[pa.Table]:
    """A slice in batches: signatures of a few thousand texts at a time stay in the CPU cache."""
    return [table.slice(lo, size) for lo in range(0, max(table.num_rows, 1), size)]


def _earlier_candidate_rows(batch: pa.Table, number: int, plan: _Plan) -> pa.Table:
    return _bucket_rows(batch, plan.partitions, old=True)


def _partition_edges(group: pa.Table) -> pa.Table:
    a, b = star_edges(group.column("bucket").to_numpy(), group.column("node").to_numpy())
    ours = a < OLD_BIT  # a bucket whose smallest node is old holds only rows of earlier runs
    return pa.table({"a": a[ours], "b": b[ours]})


def _columns(tables: list[pa.Table], columns: tuple[str, ...]) -> tuple[np.ndarray, ...]:
    """Small gathered results (edges, repeated units) as one numpy array per column."""
    return tuple(
        np.concatenate([t.column(c).to_numpy() for t in tables]) if tables else np.zeros(0, np.uint64) for c in columns
    )


def _lookup(sorted_keys: np.ndarray, keys: np.ndarray) -> np.ndarray:
    """Index of each key in `sorted_keys`, or -1."""
    if not len(sorted_keys):
        return np.full(len(keys), -1, dtype=np.int64)
    pos = np.minimum(np.searchsorted(sorted_keys, keys), len(sorted_keys) - 1)
    return np.where(sorted_keys[pos] == keys, pos, -1)


_MEMBER_SCHEMA = pa.schema([
    ("node", pa.uint64()), ("id", pa.string()), ("comp", pa.int64()), ("part", pa.int32()),
    ("quality", pa.float64()), ("length", pa.int64()), ("pinned", pa.bool_()),
    ("shingles", pa.list_(pa.uint32())), ("signature", pa.list_(pa.uint32())),
])


def _member_table(nodes, ids, comp, partitions, quality, length, pinned, shingle_sets, sigs) -> pa.Table:
    return pa.table({
        "node": nodes, "id": ids, "comp": comp, "part": (comp % partitions).astype(np.int32),
        "quality": quality, "length": length, "pinned": pinned, "shingles": shingle_sets, "signature": sigs,
    }, schema=_MEMBER_SCHEMA)


def _list_column(values: np.ndarray, offsets: np.ndarray) -> pa.Array:
    """A list<uint32> column straight from CSR arrays, without a Python object per row."""
    return pa.ListArray.from_arrays(pa.array(offsets.astype(np.int32)), pa.array(values, type=pa.uint32()))


def _empty_lists(n: int) -> pa.Array:
    return _list_column(np.zeros(0, np.uint32), np.zeros(n + 1, np.int64))


def _signature_lists(signatures: np.ndarray) -> pa.Array:
    n, width = signatures.shape
    return _list_column(signatures.reshape(-1), np.arange(n + 1, dtype=np.int64) * width)


def _member_rows(batch: pa.Table, number: int, plan: _Plan, members) -> pa.Table:
    """Rows of this run that have a candidate, with what resolving their component needs: the
    shingle sets when verifying, and the signatures too when rows of earlier runs take part."""
    nodes_sorted, comp = members
    batch = batch.filter(live_mask(batch))
    nodes = node_keys(batch.column("id").to_pylist())
    pos = _lookup(nodes_sorted, nodes)
    hit = pos >= 0
    batch, nodes, pos = batch.filter(pa.array(hit)), nodes[hit], pos[hit]
    texts = plan.texts(batch)
    n = len(texts)
    quality = (
        pc.cast(batch.column(plan.options.quality_column), pa.float64()).to_numpy(zero_copy_only=False)
        if plan.options.quality_column in batch.column_names and "quality" in plan.options.survivor
        else np.full(n, np.nan)
    )
    shingle_sets = sigs = _empty_lists(n)
    if plan.verify:
        normalized = normalize(texts)
        sets = plan.shingles(normalized).unique()
        shingle_sets = _list_column(sets.hashes, sets.offsets)
        if plan.options.against:
            sigs = _signature_lists(plan.signatures(normalized))
    length = np.fromiter((len(t) for t in texts), dtype=np.int64, count=n)
    return _member_table(nodes, batch.column("id").cast(pa.string()), comp[pos], plan.partitions, quality, length,
                         np.zeros(n, bool), shingle_sets, sigs)


def _earlier_member_rows(batch: pa.Table, number: int, plan: _Plan, members) -> pa.Table:
    """Rows of an earlier run's index that have a candidate among ours."""
    nodes_sorted, comp = members
    nodes = node_keys(batch.column("id").to_pylist(), old=True)
    pos = _lookup(nodes_sorted, nodes)
    hit = pos >= 0
    batch, nodes, pos = batch.filter(pa.array(hit)), nodes[hit], pos[hit]
    n = batch.num_rows
    sigs = _empty_lists(n)
    if plan.verify:
        flat = batch.column("signature").combine_chunks().flatten().to_numpy()
        sigs = _signature_lists(flat.reshape(n, -1) if n else np.zeros((0, 0), np.uint32))
    return _member_table(nodes, batch.column("id").cast(pa.string()), comp[pos], plan.partitions, np.full(n, np.nan),
                         np.zeros(n, np.int64), np.ones(n, bool), _empty_lists(n), sigs)


def _resolve_partition(group: pa.Table, plan: _Plan) -> pa.Table:
    """Verify, cluster and pick survivors for every component of one partition, all at once."""
    group = group.sort_by([("comp", "ascending"), ("node", "ascending")])
    order = survivor_order(
        group.column("id").to_pylist(), group.column("quality").to_numpy(zero_copy_only=False),
        group.column("length").to_numpy(), plan.options.survivor, group.column("pinned").to_numpy(zero_copy_only=False),
        groups=group.column("comp").to_numpy(),
    )
    group = group.take(order)  # by component, each in survivor order
    comp = group.column("comp").to_numpy()
    pinned = group.column("pinned").to_numpy(zero_copy_only=False)
    if plan.verify:
        similar = _similarity(plan, pinned, _csr(group.column("shingles")), _csr(group.column("signature")))
        labels = verified_clusters(comp, similar)
    else:
        labels = np.unique(comp, return_inverse=True)[1]
    best = survivors(labels)
    ours = ~pinned
    size = np.bincount(labels, weights=ours)[labels].astype(np.int64)
    ids = group.column("id").combine_chunks()
    cluster = ids.take(pa.array(best))
    dup_of = pc.if_else(pa.array(best == np.arange(len(best))), pa.scalar(None, pa.string()), cluster)
    keep = pa.array(ours)
    return pa.table({
        "node": group.column("node").combine_chunks().filter(keep), "cluster": cluster.filter(keep),
        "size": pa.array(size[ours], type=pa.int64()), "dup_of": dup_of.filter(keep),
    })


def _csr(column) -> tuple[np.ndarray, np.ndarray]:
    """A list column as (values, offsets), so a row's list is a numpy slice and not Python ints."""
    col = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    values = col.values.to_numpy(zero_copy_only=False)
    offsets = col.offsets.to_numpy().astype(np.int64)
    return values, offsets


def _similarity(plan: _Plan, pinned: np.ndarray, set_csr, sig_csr):
    """similar(i, j) over arrays of row pairs: exact Jaccard on shingle sets between rows of this
    run, the MinHash estimate against an earlier run's row (only its signature is kept)."""
    def similar(i: np.ndarray, j: np.ndarray) -> np.ndarray:
        out = np.zeros(len(i), dtype=bool)
        ours = ~pinned[i] & ~pinned[j]
        out[ours] = pairwise_jaccard(*set_csr, i[ours], j[ours]) >= plan.options.threshold
        mixed = pinned[i] != pinned[j]
        if mixed.any():
            values, offsets = sig_csr
            slots = np.arange(plan.bands * plan.rows)
            sig_i, sig_j = values[offsets[i[mixed], None] + slots], values[offsets[j[mixed], None] + slots]
            out[mixed] = estimated_jaccard(sig_i, sig_j) >= plan.options.threshold
        return out

    return similar


def _empty_verdicts() -> pa.Table:
    return pa.table({"node": pa.array([], pa.uint64()), "cluster": pa.array([], pa.string()),
                     "size": pa.array([], pa.int64()), "dup_of": pa.array([], pa.string())})


def _mark_batch(batch: pa.Table, number: int, plan: _Plan, verdicts: pa.Table) -> pa.Table:
    """Cluster columns on every row and the drop reason on every non-survivor."""
    ids = batch.column("id").cast(pa.string()).to_pylist()
    live = live_mask(batch)
    pos = _lookup(verdicts.column("node").to_numpy(), node_keys(ids))
    found = pa.array(pos >= 0)
    take = pa.array(np.maximum(pos, 0))

    def verdict(name: str, default):
        if not verdicts.num_rows:
            return default if isinstance(default, pa.Array) else pa.array([default.as_py()] * len(ids), default.type)
        return pc.if_else(found, verdicts.column(name).take(take), default)

    cluster = verdict("cluster", pa.array(ids, pa.string()))
    size = verdict("size", pa.scalar(1, pa.int64()))
    dup_of = verdict("dup_of", pa.scalar(None, pa.string()))
    dead = pc.invert(live)
    batch = set_column(batch, "dup_cluster", pc.if_else(dead, pa.scalar(None, pa.string()), cluster))
    batch = set_column(batch, "dup_cluster_size", pc.if_else(dead, pa.scalar(None, pa.int64()), size))
    batch = set_column(batch, "dup_of", pc.if_else(dead, pa.scalar(None, pa.string()), dup_of))
    reason = EXACT if plan.options.method == "exact" else NEAR
    is_dup = pc.is_valid(batch.column("dup_of")).to_numpy(zero_copy_only=False)
    return drop_rows(batch, [reason if d else None for d in is_dup])


def _index_columns(plan: _Plan) -> list[str]:
    return ["id", "buckets"] + (["signature"] if plan.options.method == "minhash" else [])


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
