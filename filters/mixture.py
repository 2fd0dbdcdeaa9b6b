"""The arithmetic of a data mixture: from token counts per group to a sampling factor per group.

A *group* is a domain label or a source. Everything is measured in tokens, because a row of
a long-document domain weighs more in training than a tweet. The plan is made in three steps:

1. target shares, given one of three ways: proportions (`weights`, any positive numbers,
   normalised: 4:1 means 80%/20%), multipliers on the natural shares, or a temperature T
   (share proportional to n^(1/T): T=1 is the natural mix, large T tends to uniform);
2. a token budget for the output: the input's total (`natural`), the largest total reachable
   without repeating any row (`no_repeats`), or a number of tokens;
3. a factor per group, the expected number of copies of each row (below 1: down-sampling,
   above 1: up-sampling), capped at `max_copies`. The cap wins over the target: a capped
   group's left-over budget goes to the other groups in proportion to their targets
   (water-filling), so the total stays on budget and the capped groups are reported.

Each row then gets floor(f) copies plus one more with probability frac(f), decided by a
seeded hash of its id, so the same seed and input give the same output on any cluster.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import xxhash

BUDGETS = ("natural", "no_repeats")


class MixtureError(ValueError):
    """Weights that cannot describe a mixture (negative, all zero...)."""


@dataclass(frozen=True)
class MixturePlan:
    """What the driver decides from the token counts: a few numbers per group."""

    natural_tokens: dict[str, int]
    natural_rows: dict[str, int]
    target_share: dict[str, float]
    factor: dict[str, float]
    budget_tokens: float
    max_copies: int
    capped: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)

    def natural_share(self) -> dict[str, float]:
        return shares(self.natural_tokens)

    def expected_tokens(self) -> dict[str, float]:
        return {g: self.natural_tokens[g] * self.factor[g] for g in self.natural_tokens}


def shares(amounts: dict[str, float]) -> dict[str, float]:
    total = sum(amounts.values())
    return {g: (a / total if total else 0.0) for g, a in amounts.items()}


def target_shares(
    natural_tokens: dict[str, int],
    *,
    weights: dict[str, float] | None = None,
    multipliers: dict[str, float] | None = None,
    temperature: float | None = None,
    default_weight: float | None = None,
) -> dict[str, float]:
    """Target token share of every group present in the data (summing to 1).

    Groups missing from `weights`/`multipliers` get `default_weight`, which defaults to 0 for
    proportions (unlisted groups are dropped) and 1 for multipliers (left at their natural share).
    """
    given = [x is not None for x in (weights, multipliers, temperature)]
    if sum(given) != 1:
        raise MixtureError("give exactly one of weights, multipliers or temperature")
    for mapping in (weights, multipliers):
        bad = {g: w for g, w in (mapping or {}).items() if not (w >= 0 and math.isfinite(w))}
        if bad:
            raise MixtureError(f"weights must be finite and >= 0: {bad}")
    if temperature is not None:
        if temperature <= 0:
            raise MixtureError(f"temperature must be > 0, got {temperature}")
        raw = {g: (n ** (1.0 / temperature) if n > 0 else 0.0) for g, n in natural_tokens.items()}
    elif weights is not None:
        default = 0.0 if default_weight is None else default_weight
        raw = {g: float(weights.get(g, default)) for g in natural_tokens}
    else:
        default = 1.0 if default_weight is None else default_weight
        raw = {g: float(multipliers.get(g, default)) * n for g, n in natural_tokens.items()}
    if sum(raw.values()) <= 0:
        raise MixtureError(f"the weights give every group present ({', '.join(sorted(natural_tokens))}) a zero share")
    return shares(raw)


def budget_tokens(natural_tokens: dict[str, int], target: dict[str, float], budget: str | int) -> float:
    total = sum(natural_tokens.values())
    if budget == "natural":
        return float(total)
    if budget == "no_repeats":
        return min((natural_tokens[g] / s for g, s in target.items() if s > 0 and natural_tokens[g] > 0), default=float(total))
    if isinstance(budget, (int, float)) and budget > 0:
        return float(budget)
    raise MixtureError(f"budget must be one of {', '.join(BUDGETS)} or a positive number of tokens, got {budget!r}")


def plan_mixture(
    natural_tokens: dict[str, int],
    natural_rows: dict[str, int],
    target: dict[str, float],
    *,
    budget: str | int = "natural",
    max_copies: int = 4,
    listed: set[str] | None = None,
) -> MixturePlan:
    """Factors per group that reach `target` on `budget` tokens, with no row copied more than `max_copies` times."""
    if max_copies < 1:
        raise MixtureError(f"max_copies must be >= 1, got {max_copies}")
    total = budget_tokens(natural_tokens, target, budget)
    factor = {g: 0.0 if target[g] == 0 else 1.0 for g in natural_tokens}
    open_groups = {g for g in natural_tokens if target[g] > 0 and natural_tokens[g] > 0}
    capped: list[str] = []
    while open_groups:
        left = total - sum(natural_tokens[g] * factor[g] for g in natural_tokens if g not in open_groups)
        open_share = sum(target[g] for g in open_groups)
        wanted = {g: max(left, 0.0) * target[g] / open_share / natural_tokens[g] for g in open_groups}
        over = sorted(g for g, f in wanted.items() if f > max_copies)
        if not over:
            factor.update(wanted)
            break
        for g in over:
            factor[g] = float(max_copies)
            open_groups.discard(g)
        capped.extend(over)
    missing = sorted((listed or set()) - set(natural_tokens))
    return MixturePlan(
        natural_tokens=dict(natural_tokens),
        natural_rows=dict(natural_rows),
        target_share=dict(target),
        factor=factor,
        budget_tokens=total,
        max_copies=max_copies,
        capped=sorted(capped),
        missing=missing,
    )


def unit_hash(keys: list[str], seed: int) -> np.ndarray:
    """A uniform number in [0, 1) per key, fixed by the key and the seed."""
    seed &= 2**64 - 1
    top53 = (xxhash.xxh64_intdigest(k.encode("utf-8", "surrogatepass"), seed=seed) >> 11 for k in keys)
    return np.fromiter(top53, dtype=np.float64, count=len(keys)) / 2.0**53


def copies(factors: np.ndarray, keys: list[str], seed: int) -> np.ndarray:
    """How many times each row appears in the output: floor(f), plus one with probability frac(f)."""
    whole = np.floor(factors)
    return (whole + (unit_hash(keys, seed) < factors - whole)).astype(np.int64)
