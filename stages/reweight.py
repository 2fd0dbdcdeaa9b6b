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
   row gets the id `stable_id(origin_id, "copy", k)`; every row carries `origin_id` and
   `copy_index` (0 for the original), so lineage survives the repetition.

`by: source` mixes several inputs of one run, e.g. `weights: {human: 4, synthetic: 1}`.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import Field, model_validator

from filters.mixture import MixtureError, MixturePlan, copies, plan_mixture, shares, target_shares
from pipeline.errors import UserError
from pipeline.records import DROP_REASON, TOKENS, set_column, stable_id, text_column
from pipeline.stats import measure
from pipeline.registry import register
from pipeline.stage import GlobalStage, StageConfig

DOWNSAMPLED = "downsampled"
TOTALS = ("tokens", "rows", "copies_added", "downsampled")
UNLABELLED = "unlabelled"


class ReweightConfig(StageConfig):
    by: str = Field(
        default="domain_label",
        description="column holding the group of a row: domain_label (set by the domain stage), source (to mix inputs), ...",
    )
    weights: dict[str, float] | None = Field(
        default=None, description="target token proportions per group; any non-negative numbers, normalised (4:1 = 80%/20%)"
    )
    multipliers: dict[str, float] | None = Field(
        default=None, description="target = natural token share times this multiplier, renormalised"
    )
    temperature: float | None = Field(
        default=None, gt=0, description="target share proportional to natural tokens^(1/T): 1 = natural, large = uniform"
    )
    default_weight: float | None = Field(
        default=None, ge=0, description="weight of groups not listed: default 0 for weights (dropped), 1 for multipliers"
    )
    budget: Literal["natural", "no_repeats"] | int = Field(
        default="natural",
        description="output size in tokens: natural (= input), no_repeats (largest with no copies), or a number",
    )
    max_copies: int = Field(default=4, ge=1, description="a row appears at most this many times; the cap wins over the target")

    @model_validator(mode="after")
    def _one_target(self):
        given = [k for k in ("weights", "multipliers", "temperature") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(f"give exactly one of weights, multipliers or temperature (got {', '.join(given) or 'none'})")
        return self


@register
class Reweight(GlobalStage):
    """Down-sample and up-sample groups of rows until their token shares match a target."""

    name = "reweight"
    Config = ReweightConfig
    produces_rows = True

    plan: MixturePlan | None = None

    def apply(self, dataset):
        cfg = self.config
        columns = dataset.schema().names
        if cfg.by not in columns:
            hint = " (run the domain stage first)" if cfg.by == "domain_label" else ""
            raise UserError(f"stage {self.ctx.stage_id}: column '{cfg.by}' not found{hint}; columns: {', '.join(columns)}")
        totals = self._group_totals(dataset)
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
            fn_kwargs={"by": cfg.by, "factors": self.plan.factor, "seed": self.ctx.seed},
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
        groups = {
            g: {
                "natural_share": natural_share[g],
                "target_share": plan.target_share[g],
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
    names = list(groups)
    return [
        {
            "kind": "bar",
            "title": "Token share per group: natural, target, realised",
            "x": names,
            "y": {k: [groups[g][f"{k}_share"] for g in names] for k in ("natural", "target", "realised")},
            "xlabel": "group",
            "ylabel": "share of tokens",
        },
        {
            "kind": "bar",
            "title": "Rows repeated and down-sampled per group",
            "x": names,
            "y": {k: [groups[g][k] for g in names] for k in ("copies_added", "downsampled")},
            "xlabel": "group",
            "ylabel": "rows",
        },
    ]


def group_values(batch: pa.Table, by: str) -> list[str]:
    return [UNLABELLED if v is None else str(v) for v in batch.column(by).to_pylist()]


def count_tokens(batch: pa.Table, tokenizer: str | None) -> np.ndarray:
    """Tokens per row, counted as the run statistics count them (the engine's `_tokens` if measured)."""
    if TOKENS not in batch.column_names:
        batch = measure(batch, tokenizer)
    return pc.fill_null(batch.column(TOKENS), 0).to_numpy(zero_copy_only=False)


def group_totals(batch: pa.Table, by: str, tokenizer: str | None) -> pa.Table:
    """Partial sums of one batch, one row per group, so the groupby shuffles a handful of rows."""
    live = _live_mask(batch)
    groups = group_values(batch, by)
    tokens = count_tokens(batch, tokenizer)
    copy_index = batch.column("copy_index").to_numpy(zero_copy_only=False) if "copy_index" in batch.column_names else None
    reasons = batch.column(DROP_REASON).to_pylist() if DROP_REASON in batch.column_names else [None] * batch.num_rows
    sums: dict[str, list[int]] = {}
    for i, g in enumerate(groups):
        s = sums.setdefault(g, [0, 0, 0, 0])
        if live[i]:
            s[0] += int(tokens[i])
            s[1] += 1
            s[2] += int(copy_index is not None and (copy_index[i] or 0) > 0)
        elif reasons[i] == DOWNSAMPLED:
            s[3] += 1
    names = list(sums)
    cols = list(zip(*sums.values())) if sums else [()] * len(TOTALS)
    return pa.table({"group": pa.array(names, pa.string())} | {f: pa.array(c, pa.int64()) for f, c in zip(TOTALS, cols)})


def apply_factors(batch: pa.Table, by: str, factors: dict[str, float], seed: int) -> pa.Table:
    """Down-sample or repeat each live row by its group's factor; rows dropped earlier pass through."""
    live_mask = _live_mask(batch)
    live, dead = batch.filter(pa.array(live_mask)), batch.filter(pa.array(~live_mask))
    ids = _ids(live)
    origin = (
        [o or i for o, i in zip(live.column("origin_id").to_pylist(), ids)] if "origin_id" in live.column_names else ids
    )
    factor = np.array([factors.get(g, 1.0) for g in group_values(live, by)], dtype=np.float64)
    n = copies(factor, origin, seed)

    take = np.repeat(np.arange(live.num_rows), n)
    copy_index = np.arange(len(take)) - np.repeat(np.cumsum(n) - n, n)
    kept = live.take(pa.array(take, pa.int64()))
    kept_origin = [origin[i] for i in take]
    kept_ids = [ids[i] if k == 0 else stable_id(o, "copy", int(k)) for i, o, k in zip(take, kept_origin, copy_index)]
    kept = set_column(kept, "id", pa.array(kept_ids, pa.string()))
    kept = set_column(kept, "origin_id", pa.array(kept_origin, pa.string()))
    kept = set_column(kept, "copy_index", pa.array(copy_index, pa.int64()))

    gone_mask = n == 0
    gone = set_column(live.filter(pa.array(gone_mask)), "id", pa.array([i for i, z in zip(ids, gone_mask) if z], pa.string()))
    gone = set_column(gone, "origin_id", pa.array([o for o, z in zip(origin, gone_mask) if z], pa.string()))
    gone = set_column(gone, "copy_index", pa.array(np.zeros(gone.num_rows, np.int64)))
    gone = set_column(gone, DROP_REASON, pa.array([DOWNSAMPLED] * gone.num_rows, pa.string()))
    if "id" in dead.column_names and not pa.types.is_string(dead.schema.field("id").type):
        dead = set_column(dead, "id", pc.cast(dead.column("id"), pa.string()))
    return pa.concat_tables([kept, gone, dead], promote_options="permissive")


def _live_mask(batch: pa.Table) -> np.ndarray:
    if DROP_REASON not in batch.column_names:
        return np.ones(batch.num_rows, dtype=bool)
    return pc.is_null(batch.column(DROP_REASON)).to_numpy(zero_copy_only=False)


def _ids(batch: pa.Table) -> list[str]:
    """Row ids; a row without one gets a content id, so its sampling decision is still reproducible."""
    given = batch.column("id").to_pylist() if "id" in batch.column_names else [None] * batch.num_rows
    if all(i is not None for i in given):
        return [str(i) for i in given]
    texts = text_column(batch)
    return [str(i) if i is not None else stable_id(t) for i, t in zip(given, texts)]
