"""Reweight: reach a target mixture of domains (or of input sources), measured in tokens.

Two Ray Data passes over the input, and a few numbers in between (the engine hands a stage
its input materialised or checkpointed, so the second pass re-reads rows, it does not re-run
upstream stages):

1. count tokens per group (`by` column) as the run statistics count them (whitespace words,
   or the run's `tokenizer`), reduced per batch on the workers;
2. on the driver, turn natural token counts and the target into one factor per group
   (filters/mixture.py: the expected number of copies of each row, capped at `max_copies`);
3. apply the factors in one `map_batches`: a seeded hash of each row's id decides whether a
   row is down-sampled (dropped, reason `downsampled`) or how many copies it gets. Copy k of a
   row gets the id `<id>~<stage id>~<k>` (naming the stage keeps ids distinct when a second
   reweight stage copies copies); every row carries `origin_id` and `copy_index` (0 for the
   original, which keeps its id), so lineage survives the repetition.

`by: source` mixes several inputs of one run, e.g. `weights: {human: 4, synthetic: 1}`.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import Field, NonNegativeFloat, PositiveInt, model_validator

from filters.mixture import MixtureError, MixturePlan, copies, plan_mixture, shares, target_shares
from pipeline.errors import UserError
from pipeline.records import DROP_REASON, TOKENS, field_values, live_mask, set_column, split_live, stable_id, text_column, whitespace_tokens
from pipeline.registry import register
from pipeline.stage import GlobalStage, StageConfig, measure

DOWNSAMPLED = "downsampled"
TOTALS = ("tokens", "rows", "copies_added", "downsampled")
COPY_SEPARATOR = "~"
UNLABELLED = "unlabelled"


class ReweightConfig(StageConfig):
    by: str = Field(
        default="domain_label",
        description="column (or field of the input) holding the group of a row: domain_label (set by the domain stage), source (to mix inputs), ...",
    )
    weights: dict[str, NonNegativeFloat] | None = Field(
        default=None, description="target token proportions per group; any non-negative numbers, normalised (4:1 = 80%/20%)"
    )
    multipliers: dict[str, NonNegativeFloat] | None = Field(
        default=None, description="target = natural token share times this multiplier, renormalised"
    )
    temperature: float | None = Field(
        default=None, gt=0, description="target share proportional to natural tokens^(1/T): 1 = natural, large = uniform"
    )
    default_weight: float | None = Field(
        default=None, ge=0, description="weight of groups not listed: default 0 for weights (dropped), 1 for multipliers"
    )
    budget: Literal["natural", "no_repeats"] | PositiveInt = Field(
        default="natural",
        description="output size in tokens: natural (= input), no_repeats (largest with no copies), or a number",
    )
    max_copies: int = Field(default=4, ge=1, description="a row appears at most this many times; the cap wins over the target")

    @model_validator(mode="after")
    def _one_target(self):
        given = [k for k in ("weights", "multipliers", "temperature") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(f"give exactly one of weights, multipliers or temperature (got {', '.join(given) or 'none'})")
        listed = self.weights if self.weights is not None else self.multipliers
        others = self.default_weight if self.default_weight is not None else float(self.multipliers is not None)
        if listed is not None and not any(listed.values()) and not others:
            raise ValueError(f"every {given[0][:-1]} is 0: nothing would be kept")
        return self


@register
class Reweight(GlobalStage):
    """Down-sample and up-sample groups of rows until their token shares match a target."""

    name = "reweight"
    Config = ReweightConfig
    produces_rows = True

    plan: MixturePlan | None = None

    def needs(self) -> tuple[str, ...]:
        return (self.config.by,)

    def apply(self, dataset):
        cfg = self.config
        columns = dataset.schema().names
        totals = self._group_totals(dataset)
        if cfg.by not in columns and set(totals) == {UNLABELLED}:  # an input's own field is found missing only here
            raise UserError(f"stage {self.ctx.stage_id}: no row has '{cfg.by}', as a column or a field of the input "
                            f"(columns: {', '.join(columns)})")
        natural_tokens = {g: int(t["tokens"]) for g, t in totals.items()}
        natural_rows = {g: int(t["rows"]) for g, t in totals.items()}
        if not natural_tokens:
            self.plan = None
            return dataset
        try:
            target = target_shares(
                natural_tokens,
                weights=cfg.weights,
                multipliers=cfg.multipliers,
                temperature=cfg.temperature,
                default_weight=cfg.default_weight,
            )
            self.plan = plan_mixture(
                natural_tokens,
                natural_rows,
                target,
                budget=cfg.budget,
                max_copies=cfg.max_copies,
                listed=set(cfg.weights or cfg.multipliers or {}),
            )
        except MixtureError as err:
            raise UserError(f"stage {self.ctx.stage_id}: {err}") from None
        return dataset.map_batches(
            apply_factors,
            fn_kwargs={"by": cfg.by, "factors": self.plan.factor, "seed": self.ctx.seed, "stage_id": self.ctx.stage_id},
            batch_format="pyarrow",
        )

    def _group_totals(self, dataset) -> dict[str, dict[str, int]]:
        """Per group: live tokens and rows, copies added and rows down-sampled.

        Each batch is reduced to one row per group on the workers; the driver adds up those
        few rows as they stream in (a shuffle-based groupby costs more than it saves here).
        """
        partial = dataset.map_batches(
            group_totals, fn_kwargs={"by": self.config.by, "tokenizer": self.ctx.tokenizer}, batch_format="pyarrow"
        )
        totals: dict[str, dict[str, int]] = {}
        for batch in partial.iter_batches(batch_format="pyarrow", batch_size=None):
            for row in batch.to_pylist():
                acc = totals.setdefault(row.pop("group"), dict.fromkeys(TOTALS, 0))
                for f in TOTALS:
                    acc[f] += row[f]
        return totals

    def summarize(self, output) -> dict[str, Any]:
        plan = self.plan
        if plan is None:
            return {"by": self.config.by, "groups": {}}
        realised = self._group_totals(output)
        realised_share = shares({g: realised.get(g, {}).get("tokens", 0) for g in plan.natural_tokens})
        natural_share = plan.natural_share()
        planned_share = shares(plan.expected_tokens())
        groups = {
            g: {
                "natural_share": natural_share[g],
                "target_share": plan.target_share[g],
                "planned_share": planned_share[g],
                "realised_share": realised_share[g],
                "factor": plan.factor[g],
                "capped": g in plan.capped,
                "tokens_in": plan.natural_tokens[g],
                "tokens_out": realised.get(g, {}).get("tokens", 0),
                "rows_in": plan.natural_rows[g],
                "rows_out": realised.get(g, {}).get("rows", 0),
                "copies_added": realised.get(g, {}).get("copies_added", 0),
                "downsampled": realised.get(g, {}).get("downsampled", 0),
            }
            for g in sorted(plan.natural_tokens)
        }
        summary: dict[str, Any] = {
            "by": self.config.by,
            "budget_tokens": plan.budget_tokens,
            "max_copies": plan.max_copies,
            "tokens_in": sum(plan.natural_tokens.values()),
            "tokens_out": sum(v["tokens_out"] for v in groups.values()),
            "groups": groups,
            "capped": plan.capped,
            "missing": plan.missing,
            "plots": _plots(groups),
        }
        if plan.capped:
            summary["note"] = (
                f"max_copies={plan.max_copies} wins over the target for {', '.join(plan.capped)}: "
                "their realised share is below target and the other groups share the rest of the budget"
            )
        return summary


def _plots(groups: dict[str, dict]) -> list[dict]:
    """Grouped bars: natural, target and realised token share; then copies added and rows down-sampled."""
    names = list(groups)

    def grouped(title: str, fields: dict[str, str], ylabel: str) -> dict:
        series = [{"x": names, "y": [groups[g][f] for g in names], "label": label} for f, label in fields.items()]
        return {"kind": "bar", "title": title, "series": series, "xlabel": "group", "ylabel": ylabel}

    return [
        grouped("Token share per group", {"natural_share": "natural", "target_share": "target", "realised_share": "realised"},
                "share of tokens"),
        grouped("Rows repeated and down-sampled", {"copies_added": "copies added", "downsampled": "down-sampled"}, "rows"),
    ]


def group_values(batch: pa.Table, by: str) -> pa.Array:
    """The group of each row as a string (a column's, or a field of the input's); a missing value is the
    group `unlabelled`."""
    if by in batch.column_names:
        return pc.fill_null(pc.cast(batch.column(by), pa.string()), UNLABELLED).combine_chunks()
    return pa.array([UNLABELLED if v is None else str(v) for v in field_values(batch, by)], pa.string())


def count_tokens(batch: pa.Table, tokenizer: str | None) -> pa.Array:
    """Tokens per row, counted exactly as the run statistics count them."""
    if TOKENS in batch.column_names:
        tokens = batch.column(TOKENS)
    elif tokenizer is None and "text" in batch.column_names and "messages" not in batch.column_names:
        tokens = whitespace_tokens(batch.column("text"))  # what `measure` computes, without a detour through Python
    else:
        tokens = measure(batch, tokenizer).column(TOKENS)
    return pc.cast(pc.fill_null(tokens, 0), pa.int64())


def group_totals(batch: pa.Table, by: str, tokenizer: str | None) -> pa.Table:
    """Partial sums of one batch, one row per group: the driver only adds up a handful of rows."""
    live = live_mask(batch)
    zero = pa.scalar(0, pa.int64())
    copy_index = batch.column("copy_index") if "copy_index" in batch.column_names else pa.nulls(batch.num_rows, pa.int64())
    reason = batch.column(DROP_REASON) if DROP_REASON in batch.column_names else pa.nulls(batch.num_rows, pa.string())
    parts = pa.table({
        "group": group_values(batch, by),
        "tokens": pc.if_else(live, count_tokens(batch, tokenizer), zero),
        "rows": pc.cast(live, pa.int64()),
        "copies_added": pc.cast(pc.and_(live, pc.greater(pc.fill_null(copy_index, 0), 0)), pa.int64()),
        "downsampled": pc.cast(pc.fill_null(pc.equal(reason, DOWNSAMPLED), False), pa.int64()),
    })
    sums = parts.group_by("group").aggregate([(f, "sum") for f in TOTALS])
    return sums.rename_columns([c.removesuffix("_sum") for c in sums.column_names])


def apply_factors(batch: pa.Table, by: str, factors: dict[str, float], seed: int, stage_id: str) -> pa.Table:
    """Down-sample or repeat each live row by its group's factor; rows dropped earlier pass through."""
    live, dead = split_live(batch)
    ids = _ids(live)
    origin = pc.coalesce(live.column("origin_id"), ids) if "origin_id" in live.column_names else ids
    groups = pc.dictionary_encode(group_values(live, by))
    factor = np.array([factors.get(g, 1.0) for g in groups.dictionary.to_pylist()], dtype=np.float64)
    n = copies(factor[groups.indices.to_numpy(zero_copy_only=False)], ids.to_pylist(), seed)

    take = pa.array(np.repeat(np.arange(live.num_rows), n), pa.int64())
    copy_index = pa.array(np.arange(len(take)) - np.repeat(np.cumsum(n) - n, n), pa.int64())
    kept_ids = ids.take(take)
    copy_id = pc.binary_join_element_wise(kept_ids, pa.scalar(stage_id), pc.cast(copy_index, pa.string()), COPY_SEPARATOR)
    kept = live.take(take)
    kept = set_column(kept, "id", pc.if_else(pc.equal(copy_index, 0), kept_ids, copy_id))
    kept = set_column(kept, "origin_id", origin.take(take))
    kept = set_column(kept, "copy_index", copy_index)

    gone_mask = pa.array(n == 0)
    gone = live.filter(gone_mask)
    gone = set_column(gone, "id", ids.filter(gone_mask))
    gone = set_column(gone, "origin_id", origin.filter(gone_mask))
    gone = set_column(gone, "copy_index", pa.array(np.zeros(gone.num_rows, np.int64)))
    gone = set_column(gone, DROP_REASON, pa.array([DOWNSAMPLED] * gone.num_rows, pa.string()))
    if "id" in dead.column_names and not pa.types.is_string(dead.schema.field("id").type):
        dead = set_column(dead, "id", pc.cast(dead.column("id"), pa.string()))
    return pa.concat_tables([kept, gone, dead], promote_options="permissive")


def _ids(batch: pa.Table) -> pa.Array:
    """Row ids as strings; a row without one gets a content id, so its sampling decision is still reproducible."""
    if "id" not in batch.column_names:
        return pa.array([stable_id(t) for t in text_column(batch)], pa.string())
    ids = pc.cast(batch.column("id"), pa.string()).combine_chunks()
    if ids.null_count == 0:
        return ids
    texts = text_column(batch)
    return pa.array([i if i is not None else stable_id(t) for i, t in zip(ids.to_pylist(), texts)], pa.string())
