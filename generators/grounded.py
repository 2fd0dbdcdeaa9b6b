"""Instructions grounded in curated documents: instruction back-translation (Li et al., Humpback, 2023).

A web document is already a good answer to some request; the model writes that request
(self-augmentation), then a judge rates the (request, document) pair on a 5-point scale
(self-curation) and pairs below `min_score` are dropped. Curated web text thereby becomes
instruction data whose answers are human-written, not generated.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Sequence

from pydantic import Field

from generators.client import LLMClient, Request, SamplingParams
from generators.options import Options
from generators.preferences import parse_rating
from generators.prompts import BACKTRANSLATE, GROUNDED_JUDGE


class GroundedOptions(Options):
    """Which documents are used and which pairs kept: the `grounded` stage's options."""

    min_score: float = Field(default=4.0, ge=1, le=5, description="keep pairs rated at least this (1-5)")
    min_words: int = Field(default=50, ge=1, description="documents shorter than this are dropped")
    max_words: int = Field(default=1500, ge=1, description="documents longer than this are dropped")
    temperature: float = Field(default=0.7, ge=0)
    max_tokens: int = Field(default=128, ge=8, description="tokens for the written instruction")


class GroundedConfig(GroundedOptions):
    judge_max_tokens: int = 256
    seed: int | None = None  # the run's


@dataclasses.dataclass
class GroundedPair:
    instruction: str = ""
    score: float | None = None
    reason: str | None = None
    meta: dict = dataclasses.field(default_factory=dict)


_LABEL = re.compile(r"^\s*(?:\[?(?:request|instruction|question)\]?\s*:?)\s*", re.IGNORECASE)


def clean_instruction(text: str) -> str:
    """The first paragraph of the model's answer, without a restated label or quotes."""
    first = text.strip().split("\n\n")[0].strip().strip('"')
    return _LABEL.sub("", first).strip().strip('"').strip()


def backtranslate(client: LLMClient, judge: LLMClient, documents: Sequence[str], config: GroundedConfig) -> list[GroundedPair]:
    pairs = [GroundedPair(meta={"prompt_version": BACKTRANSLATE.id}) for _ in documents]
    todo = []
    for pair, doc in zip(pairs, documents):
        words = len(doc.split())
        if words < config.min_words:
            pair.reason = "document_too_short"
        elif words > config.max_words:
            pair.reason = "document_too_long"
        else:
            todo.append((pair, doc))
    params = SamplingParams(temperature=config.temperature, max_tokens=config.max_tokens, seed=config.seed)
    requests = [Request(messages=({"role": "user", "content": BACKTRANSLATE.render(document=d)},), params=params) for _, d in todo]
    for (pair, _), r in zip(todo, client.generate(requests) if requests else []):
        pair.meta["model"] = r.model
        if r.error:
            pair.reason, pair.meta["error"] = "llm_error", r.error
        elif r.choices[0].finish_reason == "length":
            pair.reason = "truncated"
        else:
            pair.instruction = clean_instruction(r.text)
            pair.reason = None if pair.instruction else "empty_instruction"

    judged = [(p, d) for p, d in todo if p.reason is None]
    jparams = SamplingParams(temperature=0.0, max_tokens=config.judge_max_tokens)
    jrequests = [
        Request(messages=({"role": "user", "content": GROUNDED_JUDGE.render(instruction=p.instruction, response=d)},), params=jparams)
        for p, d in judged
    ]
    for (pair, _), r in zip(judged, judge.generate(jrequests) if jrequests else []):
        pair.meta.update(prompt_version_judge=GROUNDED_JUDGE.id, judge=r.model)
        if r.error:
            pair.reason, pair.meta["error"] = "llm_error", r.error
            continue
        pair.score = parse_rating(r.text, 1, 5)
        if pair.score is None:
            pair.reason = "judge_unparsed"
        elif pair.score < config.min_score:
            pair.reason = "low_score"
    return pairs
