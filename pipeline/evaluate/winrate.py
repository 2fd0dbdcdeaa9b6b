"""Judge win rate: the tuned model's answers against the base's, judged pairwise in both orders, with the
length-controlled win rate of AlpacaEval 2.0.

The judge is the preference stage's (`generators.preferences.PreferenceJudge` in pairwise mode): each
pair is judged once in each order, so a judge that favours a position cancels out, and the tuned
answer's share of the two verdicts (1, 0.5 or 0) is its score on that prompt. Judges also favour longer
answers, so a tuned model that only got wordier would win; the length-controlled win rate removes that:
a logistic regression of the tuned answer's share on tanh(length difference / its standard deviation)
(the length term of AlpacaEval 2.0's GLM; it has no per-model terms to fit here, with one pair of
models), read at a length difference of zero.
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

import numpy as np

from generators.client import Choice, LLMClient, OnResponse, Request, Response, SamplingParams
from generators.preferences import Candidate, PreferenceConfig, PreferenceJudge

# The regression's slope is tied lightly to zero: with answers that always win when longer the
# likelihood has no finite maximum, and AlpacaEval regularises the same way.
SLOPE_PENALTY = 1e-2


class _Answers:
    """Answers already written, served as an LLM client would serve them, one per request in order."""

    def __init__(self, answers: Sequence[str], label: str):
        self.answers, self.model = list(answers), label

    def generate(self, requests: Sequence[Request], *, on_response: OnResponse | None = None) -> list[Response]:
        responses = [Response([Choice(a, "stop")], self.model) for a, _ in zip(self.answers, requests)]
        for i, response in enumerate(responses):
            if on_response:
                on_response(i, response)
        return responses

    def close(self) -> None:
        pass


@dataclasses.dataclass
class WinRate:
    prompts: int
    judged: int
    win_rate: float
    length_controlled: float
    length_slope: float
    mean_length_base: float
    mean_length_tuned: float
    failed: int  # prompts whose verdicts failed or could not be read

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


def judge(client: LLMClient, prompts: Sequence[Sequence[dict]], base: Sequence[str], tuned: Sequence[str],
          max_tokens: int = 256) -> list[float | None]:
    """The tuned answer's share of the judge's two verdicts on each prompt (None: no usable verdict).
    An empty answer loses to any other and ties with another empty one, without asking the judge."""
    candidates = [Candidate(_Answers(base, "base"), SamplingParams(temperature=0.0), "base"),
                  Candidate(_Answers(tuned, "tuned"), SamplingParams(temperature=0.0), "tuned")]
    results = PreferenceJudge(candidates, client, PreferenceConfig(mode="pairwise", judge_max_tokens=max_tokens)).run(
        [list(p) for p in prompts])
    shares = []
    for r, b, t in zip(results, base, tuned):
        if r.reason == "too_few_responses":
            shares.append(0.5 if bool(b.strip()) == bool(t.strip()) else float(bool(t.strip())))
        elif r.reason in ("llm_error", "judge_unparsed") or r.scores[1] is None:
            shares.append(None)
        else:
            shares.append(r.scores[r.labels.index("tuned")])
    return shares


def win_rates(shares: Sequence[float | None], base_lengths: Sequence[int], tuned_lengths: Sequence[int]) -> WinRate:
    """Raw and length-controlled win rate of the tuned model from its per-prompt shares and answer lengths."""
    keep = [i for i, s in enumerate(shares) if s is not None]
    y = np.array([shares[i] for i in keep], dtype=float)
    diff = np.array([tuned_lengths[i] - base_lengths[i] for i in keep], dtype=float)
    scale = diff.std()
    x = np.tanh(diff / scale) if scale > 0 else np.zeros_like(diff)
    intercept, slope = fit_logistic(x, y) if len(y) else (0.0, 0.0)
    return WinRate(
        prompts=len(shares), judged=len(keep), win_rate=float(y.mean()) if len(y) else float("nan"),
        length_controlled=float(1 / (1 + np.exp(-intercept))) if len(y) else float("nan"), length_slope=float(slope),
        mean_length_base=float(np.mean(base_lengths)) if len(base_lengths) else 0.0,
        mean_length_tuned=float(np.mean(tuned_lengths)) if len(tuned_lengths) else 0.0, failed=len(shares) - len(keep))


def fit_logistic(x: np.ndarray, y: np.ndarray, iterations: int = 50) -> tuple[float, float]:
    """(intercept, slope) maximising the Bernoulli likelihood of the shares `y` (0, 0.5 or 1) given `x`,
    the slope lightly penalised; Newton's method, which converges in a few steps on two parameters."""
    X = np.stack([np.ones_like(x), x], axis=1)
    w = np.zeros(2)
    penalty = np.diag([0.0, SLOPE_PENALTY])
    for _ in range(iterations):
        p = 1 / (1 + np.exp(-(X @ w)))
        grad = X.T @ (y - p) - penalty @ w
        hess = X.T @ (X * (p * (1 - p))[:, None]) + penalty + 1e-9 * np.eye(2)
        step = np.linalg.solve(hess, grad)
        w += step
        if np.abs(step).max() < 1e-10:
            break
    return float(w[0]), float(w[1])
