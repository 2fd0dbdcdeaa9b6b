"""The judge win rate through the preference stage's pairwise judge, and AlpacaEval 2.0's length control,
on scripted verdicts whose length bias is known: a judge that prefers longer answers makes a wordier model
win, and the length-controlled rate takes that back to the quality difference built in."""

from __future__ import annotations

import hashlib
import math
import re

import numpy as np
import pytest

from generators.client import Choice, Response
from pipeline.evaluate.winrate import fit_logistic, judge, win_rates

_ANSWER = re.compile(r"<(\d+)\|(\w+)\|(x*)>")


class LengthBiasedJudge:
    """Verdicts from a known model: the tuned answer wins a pair with probability
    sigmoid(quality + bias * tanh(length difference / scale)), the same in both orders (no position bias).
    A test double of the judge LLM, pinning the regression's input exactly."""

    def __init__(self, quality: float, bias: float, scale: float):
        self.quality, self.bias, self.scale = quality, bias, scale
        self.requests = 0

    def generate(self, requests):
        out = []
        for r in requests:
            self.requests += 1
            (pid, first, a), (_, second, b) = _ANSWER.findall(r.messages[0]["content"])
            tuned_len, base_len = (len(a), len(b)) if first == "tuned" else (len(b), len(a))
            p = 1 / (1 + math.exp(-(self.quality + self.bias * math.tanh((tuned_len - base_len) / self.scale))))
            u = int(hashlib.sha256(pid.encode()).hexdigest()[:8], 16) / 16**8  # one draw per prompt, both orders
            tuned_wins = u < p
            winner = "A" if tuned_wins == (first == "tuned") else "B"
            out.append(Response([Choice(f"Fine.\nWinner: {winner}", "stop")], "judge"))
        return out

    def close(self):
        pass


def _answers(n: int, mean_extra: float, seed: int = 0):
    rng = np.random.default_rng(seed)
    base_len = rng.integers(40, 160, n)
    tuned_len = np.maximum(1, base_len + rng.normal(mean_extra, 60, n).astype(int))
    prompts = [[{"role": "user", "content": f"question {i}"}] for i in range(n)]
    base = [f"<{i}|base|{'x' * k}>" for i, k in enumerate(base_len)]
    tuned = [f"<{i}|tuned|{'x' * k}>" for i, k in enumerate(tuned_len)]
    return prompts, base, tuned


def _rates(quality: float, bias: float, mean_extra: float, n: int = 1500):
    prompts, base, tuned = _answers(n, mean_extra)
    diffs = np.array([len(t) - len(b) for b, t in zip(base, tuned)])
    scripted = LengthBiasedJudge(quality, bias, float(diffs.std()))
    shares = judge(scripted, prompts, base, tuned)
    assert scripted.requests == 2 * n  # every pair judged in both orders
    return win_rates(shares, [len(a) for a in base], [len(a) for a in tuned])


def test_a_wordier_model_of_equal_quality_wins_raw_but_not_length_controlled():
    rates = _rates(quality=0.0, bias=2.5, mean_extra=60)
    assert rates.mean_length_tuned > rates.mean_length_base + 40
    assert rates.win_rate > 0.7  # the judge's length preference alone
    assert rates.length_controlled == pytest.approx(0.5, abs=0.06)
    assert rates.length_slope > 1.5
    assert rates.judged == rates.prompts == 1500 and rates.failed == 0


def test_a_better_model_keeps_its_advantage_under_length_control():
    rates = _rates(quality=1.0, bias=2.5, mean_extra=60)
    assert rates.length_controlled == pytest.approx(1 / (1 + math.exp(-1.0)), abs=0.06)
    assert rates.win_rate > rates.length_controlled


def test_a_better_but_terser_model_is_credited_by_length_control():
    rates = _rates(quality=1.0, bias=2.5, mean_extra=-60)
    assert rates.win_rate < 0.6
    assert rates.length_controlled == pytest.approx(0.731, abs=0.06)


def test_a_judge_that_always_picks_the_first_answer_gives_ties():
    class First:
        def generate(self, requests):
            return [Response([Choice("Winner: A", "stop")], "judge") for _ in requests]

    prompts, base, tuned = _answers(20, 30)
    shares = judge(First(), prompts, base, tuned)
    assert shares == [0.5] * 20


def test_empty_and_unreadable_answers():
    class Unreadable:
        def generate(self, requests):
            return [Response([Choice("no verdict here", "stop")], "judge") for _ in requests]

    prompts = [[{"role": "user", "content": "q"}]] * 3
    shares = judge(Unreadable(), prompts, ["", "an answer", ""], ["an answer", "", ""])
    assert shares == [1.0, 0.0, 0.5]  # an empty answer loses to any other, without the judge
    assert judge(Unreadable(), prompts[:1], ["a"], ["b"]) == [None]
    rates = win_rates([1.0, None, 0.0], [3, 4, 5], [5, 4, 3])
    assert (rates.judged, rates.failed, rates.win_rate) == (2, 1, 0.5)


def test_logistic_fit_recovers_known_coefficients():
    rng = np.random.default_rng(1)
    x = rng.uniform(-1, 1, 20000)
    y = (rng.uniform(size=x.size) < 1 / (1 + np.exp(-(0.7 - 1.3 * x)))).astype(float)
    intercept, slope = fit_logistic(x, y)
    assert intercept == pytest.approx(0.7, abs=0.06) and slope == pytest.approx(-1.3, abs=0.1)
