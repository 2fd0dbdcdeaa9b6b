"""Preference pairs: several responses per prompt, judged by an LLM, the best against the worst.

Responses come from several candidates (a model and its sampling settings each), so a pair can
contrast models or temperatures. The judge either scores each response on a rubric (UltraFeedback
style: instruction following, truthfulness, honesty, helpfulness, 1 to 10) or compares every pair
twice, once in each order, so a judge that favours the first (or second) position cancels out:
a response wins a comparison only if it wins in both orders, and a split verdict is a tie.
The highest-scored response is chosen, the lowest rejected, and a pair whose score margin is below
`min_margin` (ties included) is dropped: a pair the judge cannot tell apart teaches nothing.
A prompt any of whose requests failed for good, an answer's or a verdict's, is dropped as
`llm_error` with every error in `meta.errors`: a pair picked without some verdicts may not be the
best against the worst, and counting it as the judge's failure to parse would hide a failing endpoint.
"""

from __future__ import annotations

import dataclasses
import itertools
import re
from typing import Literal, Sequence

from pydantic import Field

from generators.client import LLMClient, Request, Response, SamplingParams
from generators.structured import StructuredOption
from generators.prompts import JUDGE_PAIRWISE, JUDGE_RUBRIC
from generators.respond import prompt_messages


@dataclasses.dataclass
class Candidate:
    """One source of responses: a client and how to sample from it."""

    client: LLMClient
    params: SamplingParams
    label: str


RUBRIC_SCALE = (1, 10)


class PreferenceConfig(StructuredOption):
    """How answers are judged and which pairs are kept: the `preferences` stage's options."""

    mode: Literal["rubric", "pairwise"] = Field(default="rubric", description="rubric: 1-10 scores; pairwise: both orders")
    min_margin: float | None = Field(default=None, ge=0, description="score gap chosen - rejected; default 1 (rubric) or 0.5 (pairwise)")
    judge_max_tokens: int = Field(default=256, ge=8)

    def margin(self) -> float:
        if self.min_margin is not None:
            return self.min_margin
        return 1.0 if self.mode == "rubric" else 0.5


@dataclasses.dataclass
class PreferenceResult:
    """The judged responses of one prompt; `reason` None means `chosen`/`rejected` index a kept pair."""

    responses: list[str]
    labels: list[str]
    scores: list[float | None]
    chosen: int | None = None
    rejected: int | None = None
    reason: str | None = None
    meta: dict = dataclasses.field(default_factory=dict)


_RATING = re.compile(r"(?:rating|score)\s*[:=]?\s*\**\s*(\d+(?:\.\d+)?)\s*(?:/\s*(\d+))?", re.IGNORECASE)
_OUT_OF = re.compile(r"(\d+(?:\.\d+)?)\s*(?:/|out of)\s*(\d+)", re.IGNORECASE)
_SHARE_OF_A = {"A": 1.0, "B": 0.0, "tie": 0.5}
_WINNER = re.compile(r"winner\s*[:=]?\s*\**\s*(A|B|tie)\b", re.IGNORECASE)


# The verdicts' formats, for guided decoding (`structured`): one line of justification, then the
# last line the prompts ask for.
RUBRIC_FORMAT = rf"[^\n]{{1,600}}\nRating: ({'|'.join(str(n) for n in range(RUBRIC_SCALE[1], RUBRIC_SCALE[0] - 1, -1))})"
PAIRWISE_FORMAT = r"[^\n]{1,600}\nWinner: (A|B|tie)"


def parse_rating(text: str, low: int = 1, high: int = 10) -> float | None:
    """The judge's score: the last 'Rating: N' (or 'Score: N', 'N/10', 'N out of 10') within the scale.

    Judges wrap scores in markdown, add '/10', or restate the rubric's numbers before their
    verdict, so the last well-formed rating wins and anything outside the scale is no rating.
    """
    for pattern in (_RATING, _OUT_OF):
        for m in reversed(list(pattern.finditer(text or ""))):
            value = float(m.group(1))
            denominator = m.group(2)
            if denominator is not None and int(denominator) != high:
                continue
            if low <= value <= high:
                return value
    return None


def parse_winner(text: str) -> str | None:
    """'A', 'B' or 'tie' from the judge's last 'Winner:' line; None if it gave none."""
    found = _WINNER.findall(text or "")
    return found[-1].upper() if found and found[-1].lower() != "tie" else ("tie" if found else None)


def select_pair(scores: Sequence[float | None], min_margin: float) -> tuple[int | None, int | None, str | None]:
    """(chosen, rejected, reason): best against worst, dropped as a tie or below the margin."""
    valid = [(s, i) for i, s in enumerate(scores) if s is not None]
    if len(valid) < 2:
        return None, None, "judge_unparsed"
    best = max(valid, key=lambda si: (si[0], -si[1]))
    worst = min(valid, key=lambda si: (si[0], si[1]))
    if best[0] == worst[0]:
        return None, None, "tie"
    if best[0] - worst[0] < min_margin:
        return None, None, "below_margin"
    return best[1], worst[1], None


class PreferenceJudge:
    def __init__(self, candidates: Sequence[Candidate], judge: LLMClient, config: PreferenceConfig):
        if sum(c.params.n for c in candidates) < 2:
            raise ValueError("preferences need at least two responses per prompt (candidates x samples)")
        self.candidates = list(candidates)
        self.judge = judge
        self.config = config

    def run(self, conversations: Sequence[Sequence[dict]]) -> list[PreferenceResult]:
        prompts = [prompt_messages(c) for c in conversations]
        results = [PreferenceResult([], [], []) for _ in prompts]
        for cand in self.candidates:
            responses = cand.client.generate([Request(messages=p, params=cand.params) for p in prompts])
            for res, resp in zip(results, responses):
                self._collect(res, cand, resp)
        usable = [(p, r) for p, r in zip(prompts, results) if r.reason is None and len(r.responses) >= 2]
        for r in results:
            if r.reason is None and len(r.responses) < 2:
                r.reason = "too_few_responses"
        if self.config.mode == "rubric":
            self._rubric(usable)
        else:
            self._pairwise(usable)
        for _, r in usable:
            if r.reason is None:
                r.chosen, r.rejected, r.reason = select_pair(r.scores, self.config.margin())
        return results

    @staticmethod
    def _collect(result: PreferenceResult, cand: Candidate, response: Response) -> None:
        if response.error:
            _failed(result, cand.label, response.error)
            return
        for choice in response.choices:
            if choice.finish_reason == "length" or not choice.text.strip():
                result.meta["unusable_responses"] = result.meta.get("unusable_responses", 0) + 1
                continue
            result.responses.append(choice.text.strip())
            result.labels.append(cand.label)

    def _judge(self, requests: list[Request]) -> list[Response]:
        return self.judge.generate(requests) if requests else []

    def _rubric(self, items: list[tuple[tuple[dict, ...], PreferenceResult]]) -> None:
        low, high = RUBRIC_SCALE
        params = SamplingParams(temperature=0.0, max_tokens=self.config.judge_max_tokens, guide=self.config.guide(RUBRIC_FORMAT))
        jobs = [(r, i) for _, r in items for i in range(len(r.responses))]
        requests = [
            Request(messages=({"role": "user", "content": JUDGE_RUBRIC.render(instruction=_instruction(p), response=r.responses[i])},), params=params)
            for p, r in items
            for i in range(len(r.responses))
        ]
        for _, r in items:
            r.scores = [None] * len(r.responses)
            r.meta["prompt_version_judge"] = JUDGE_RUBRIC.id
        for (r, i), verdict in zip(jobs, self._judge(requests)):
            if verdict.error:
                _failed(r, "judge", verdict.error)
                continue
            r.scores[i] = parse_rating(verdict.text, low, high)

    def _pairwise(self, items: list[tuple[tuple[dict, ...], PreferenceResult]]) -> None:
        """Every ordered pair once; a response's score is its share of wins over all comparisons."""
        params = SamplingParams(temperature=0.0, max_tokens=self.config.judge_max_tokens, guide=self.config.guide(PAIRWISE_FORMAT))
        jobs, requests = [], []
        for p, r in items:
            r.meta["prompt_version_judge"] = JUDGE_PAIRWISE.id
            for i, j in itertools.permutations(range(len(r.responses)), 2):
                jobs.append((r, i, j))
                text = JUDGE_PAIRWISE.render(instruction=_instruction(p), first=r.responses[i], second=r.responses[j])
                requests.append(Request(messages=({"role": "user", "content": text},), params=params))
        verdicts: dict[int, dict[tuple[int, int], str | None]] = {}
        for (r, i, j), v in zip(jobs, self._judge(requests)):
            if v.error:
                _failed(r, "judge", v.error)
            verdicts.setdefault(id(r), {})[(i, j)] = None if v.error else parse_winner(v.text)
        for _, r in items:
            got = verdicts.get(id(r), {})
            n = len(r.responses)
            points = [0.0] * n
            parsed = True
            for i, j in itertools.combinations(range(n), 2):
                ij, ji = got.get((i, j)), got.get((j, i))
                if ij is None or ji is None:
                    parsed = False
                    continue
                # i's share of the pair over both orders: 1 if it wins as A and as B, 0.5 when the
                # verdict flips with the order (position bias) or both are ties.
                share = (_SHARE_OF_A[ij] + 1 - _SHARE_OF_A[ji]) / 2
                points[i] += share
                points[j] += 1 - share
            r.scores = [pt / (n - 1) for pt in points] if parsed else [None] * n
            r.meta["verdicts"] = {f"{i}>{j}": w for (i, j), w in got.items()}


def _failed(result: PreferenceResult, who: str, error: str) -> None:
    result.reason = "llm_error"
    result.meta.setdefault("errors", []).append(f"{who}: {error}")


def _instruction(prompt: Sequence[dict]) -> str:
    """What the judge sees as the request: the conversation's user turns."""
    return "\n\n".join(m["content"] for m in prompt if m["role"] == "user")
