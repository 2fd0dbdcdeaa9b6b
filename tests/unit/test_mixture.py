"""The share arithmetic of reweighting: each way of giving a target, the budget, the cap, the hash."""

import numpy as np
import pytest

from filters.mixture import MixtureError, budget_tokens, copies, plan_mixture, shares, target_shares, unit_hash

NATURAL = {"news": 6000, "code": 3000, "forum": 1000}
ROWS = {"news": 60, "code": 30, "forum": 10}


def test_proportions_are_normalised_and_unlisted_groups_get_zero():
    t = target_shares(NATURAL, weights={"news": 4, "code": 1})
    assert t == pytest.approx({"news": 0.8, "code": 0.2, "forum": 0.0})


def test_default_weight_gives_unlisted_groups_a_share():
    t = target_shares(NATURAL, weights={"news": 2, "code": 1}, default_weight=1)
    assert t == pytest.approx({"news": 0.5, "code": 0.25, "forum": 0.25})


def test_multipliers_scale_the_natural_shares():
    t = target_shares(NATURAL, multipliers={"forum": 4.0})
    # forum: 1000*4 = 4000 of 13000
    assert t == pytest.approx({"news": 6000 / 13000, "code": 3000 / 13000, "forum": 4000 / 13000})


@pytest.mark.parametrize("temperature", [0.5, 1.0, 2.0, 10.0])
def test_temperature_share_follows_n_to_the_one_over_t(temperature):
    t = target_shares(NATURAL, temperature=temperature)
    raw = {g: n ** (1 / temperature) for g, n in NATURAL.items()}
    assert t == pytest.approx(shares(raw))
    if temperature == 1.0:
        assert t == pytest.approx(shares(NATURAL))
    spread = max(t.values()) - min(t.values())
    natural_spread = max(shares(NATURAL).values()) - min(shares(NATURAL).values())
    assert (spread < natural_spread) == (temperature > 1)


@pytest.mark.parametrize(
    "kwargs",
    [{}, {"weights": {"a": 1}, "temperature": 2.0}, {"weights": {"news": -1}}, {"weights": {"x": 1}}, {"temperature": 0}],
)
def test_bad_targets_are_refused(kwargs):
    with pytest.raises(MixtureError):
        target_shares(NATURAL, **kwargs)


def test_plan_reaches_target_on_the_natural_budget():
    target = target_shares(NATURAL, weights={"news": 1, "code": 1, "forum": 1})
    plan = plan_mixture(NATURAL, ROWS, target, max_copies=10)
    expected = plan.expected_tokens()
    assert sum(expected.values()) == pytest.approx(sum(NATURAL.values()))
    assert shares(expected) == pytest.approx(target)
    assert plan.factor["news"] < 1 < plan.factor["forum"]
    assert plan.capped == []


def test_cap_wins_over_target_and_the_rest_of_the_budget_goes_to_the_others():
    target = target_shares(NATURAL, weights={"news": 1, "code": 1, "forum": 2})
    plan = plan_mixture(NATURAL, ROWS, target, max_copies=2)
    assert plan.capped == ["forum"]
    assert plan.factor["forum"] == 2.0
    expected = plan.expected_tokens()
    assert sum(expected.values()) == pytest.approx(sum(NATURAL.values()))
    assert shares(expected)["forum"] < target["forum"]
    # news and code keep their 1:1 ratio with the budget the cap left over
    assert expected["news"] == pytest.approx(expected["code"])


def test_cap_can_cascade_to_a_second_group():
    natural = {"big": 10000, "mid": 1000, "small": 100}
    target = target_shares(natural, weights={"big": 1, "mid": 1, "small": 1})
    plan = plan_mixture(natural, {g: 1 for g in natural}, target, max_copies=3)
    assert plan.capped == ["mid", "small"]
    assert plan.factor["big"] == pytest.approx((11100 - 3000 - 300) / 10000)


def test_no_repeats_budget_only_downsamples_and_meets_the_target_exactly():
    target = target_shares(NATURAL, weights={"news": 1, "code": 1, "forum": 1})
    plan = plan_mixture(NATURAL, ROWS, target, budget="no_repeats", max_copies=1)
    assert max(plan.factor.values()) == pytest.approx(1.0)
    assert plan.capped == []
    assert shares(plan.expected_tokens()) == pytest.approx(target)
    assert plan.budget_tokens == pytest.approx(3000)


def test_numeric_budget_and_missing_groups_are_reported():
    target = target_shares(NATURAL, weights={"news": 1, "code": 1, "forum": 1, "absent": 5})
    plan = plan_mixture(NATURAL, ROWS, target, budget=5000, listed={"news", "code", "forum", "absent"})
    assert sum(plan.expected_tokens().values()) == pytest.approx(5000)
    assert plan.missing == ["absent"]
    with pytest.raises(MixtureError):
        budget_tokens(NATURAL, target, "everything")


def test_copies_are_floor_plus_a_seeded_coin_and_average_to_the_factor():
    keys = [f"row-{i}" for i in range(20000)]
    for f in (0.3, 1.0, 2.7):
        n = copies(np.full(len(keys), f), keys, seed=7)
        assert set(np.unique(n)) <= {int(np.floor(f)), int(np.floor(f)) + 1}
        assert n.mean() == pytest.approx(f, abs=0.02)
    a = copies(np.full(len(keys), 0.5), keys, seed=1)
    assert np.array_equal(a, copies(np.full(len(keys), 0.5), keys, seed=1))
    assert not np.array_equal(a, copies(np.full(len(keys), 0.5), keys, seed=2))


def test_unit_hash_is_uniform_in_the_unit_interval():
    u = unit_hash([str(i) for i in range(10000)], seed=0)
    assert 0 <= u.min() and u.max() < 1
    assert np.histogram(u, bins=10, range=(0, 1))[0].min() > 850
