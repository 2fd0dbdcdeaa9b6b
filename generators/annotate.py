"""LLM annotation of documents on a rubric: the first half of the FineWeb-Edu / DCLM recipe.

An LLM rates a seeded sample of documents (educational value 0 to 5 by default, an additive rubric
in our own words after FineWeb-Edu's), and a cheap classifier trained on those ratings
(`pipeline train-classifier --score-field`) then scores the whole corpus (`quality`). Annotating
every document with an LLM costs what the classifier avoids; a few thousand ratings are enough to
learn from.

Which documents are sampled is a function of the run's seed and the row's id alone, so a resumed or
re-batched run annotates the same ones. The rating is the last `Score: N` of the answer (the judge's
rule, `preferences.parse_rating`), within the scale; the text before it is the rationale.
"""

from __future__ import annotations

import dataclasses
import hashlib
from string import Template
from typing import Sequence

from pydantic import Field, model_validator

from generators.client import LLMClient, Request, SamplingParams
from generators.preferences import parse_rating
from generators.prompts import Prompt
from generators.structured import StructuredOption

EDUCATIONAL_VALUE = Prompt(
    "annotate.educational_value",
    1,
    "Below is an extract from a web page. Judge whether it could help teach something at school, from "
    "primary school to college, using this additive scale of 0 to 5 points:\n"
    "- add 1 point if it gives some basic information on an educational topic, even mixed with ads or "
    "unrelated material;\n"
    "- add another point if it covers parts of an educational topic but is disorganised or incomplete;\n"
    "- add a third point if it suits educational use and introduces key concepts, coherently;\n"
    "- add a fourth point if it is highly relevant and useful for teaching, clearly written, like a "
    "chapter of a textbook or a tutorial;\n"
    "- add a fifth point if it is outstanding for teaching, with deep and well-explained content and no "
    "distracting material.\n"
    "Give 0 points to an extract with no educational content (ads, navigation, product listings).\n\n"
    "[Extract]\n$document\n\n"
    "Write one short sentence of justification, then the last line exactly as 'Score: N'.",
)
CUSTOM_PROMPT_NAME = "annotate.custom"
_HASH_SPACE = 2**64


class AnnotateOptions(StructuredOption):
    """What is annotated and how: the `annotate` stage's options."""

    sample: int | float = Field(
        default=1000, description="documents to annotate: a number (e.g. 1000), or a share of the rows (0 < share <= 1.0)")
    prompt: str | None = Field(default=None, description="the rubric prompt, with $document where the text goes (default: educational value 0-5)")
    prompt_version: int = Field(default=1, ge=1, description="the custom prompt's version, recorded on every row: change it when the prompt changes")
    scale: tuple[int, int] = Field(default=(0, 5), description="lowest and highest score the prompt asks for")
    max_chars: int = Field(default=3000, ge=100, description="a document's first characters shown to the LLM")
    temperature: float = Field(default=0.0, ge=0)
    max_tokens: int = Field(default=256, ge=8, description="tokens for the rationale and the score")

    @model_validator(mode="after")
    def _valid(self) -> "AnnotateOptions":
        if isinstance(self.sample, int) and self.sample < 1:
            raise ValueError(f"sample: a number of documents must be at least 1, got {self.sample}")
        if isinstance(self.sample, float) and not 0 < self.sample <= 1:
            raise ValueError(f"sample: a share must be in (0, 1], got {self.sample}")
        if self.scale[0] >= self.scale[1]:
            raise ValueError(f"scale: the lowest score must be below the highest, got {list(self.scale)}")
        if self.prompt is not None:
            if "$document" not in self.prompt:
                raise ValueError("prompt: must contain $document, where the document's text goes")
            try:
                Template(self.prompt).substitute(document="")
            except (KeyError, ValueError) as e:
                raise ValueError(f"prompt: $document is its only placeholder (write $$ for a dollar sign); found {e}") from None
        return self

    @property
    def template(self) -> Prompt:
        return EDUCATIONAL_VALUE if self.prompt is None else Prompt(CUSTOM_PROMPT_NAME, self.prompt_version, self.prompt)


class AnnotateConfig(AnnotateOptions):
    seed: int = 0  # the run's


@dataclasses.dataclass
class Annotation:
    """A rating, or why there is none (`reason`: llm_error, truncated, unparsed)."""

    score: float | None
    rationale: str | None
    reason: str | None
    model: str


def sample_key(seed: int, row_id: str) -> int:
    """A row's place in the seeded order of the sample: rows with the smallest keys are annotated."""
    return int.from_bytes(hashlib.blake2b(f"{seed}:{row_id}".encode(), digest_size=8).digest(), "big")


def share_threshold(share: float) -> int:
    """The key below which a row is in a sample of `share` of the rows."""
    return min(int(share * _HASH_SPACE), _HASH_SPACE)


def count_threshold(keys: Sequence[int], count: int) -> int:
    """The key below which exactly the `count` smallest keys lie (all of them when there are fewer)."""
    if count >= len(keys):
        return _HASH_SPACE
    return sorted(keys)[count - 1] + 1


def score_format(low: int, high: int) -> str:
    """The answer's format, for guided decoding: one line of justification, then `Score: N`."""
    return rf"[^\n]{{1,600}}\nScore: ({'|'.join(str(n) for n in range(high, low - 1, -1))})"


def parse_annotation(text: str, low: int, high: int) -> tuple[float | None, str | None]:
    """(score, rationale): the last score line within the scale, and the text before it; (None, None) without one."""
    score = parse_rating(text, low, high)
    if score is None:
        return None, None
    lines = [line for line in (text or "").strip().splitlines()]
    while lines and parse_rating(lines[-1], low, high) is None:  # the score's own line, and any after it
        lines.pop()
    rationale = "\n".join(lines[:-1]).strip()
    return score, rationale or None


def annotate(client: LLMClient, documents: Sequence[str], config: AnnotateConfig) -> list[Annotation]:
    """One rating per document, in order."""
    low, high = config.scale
    params = SamplingParams(temperature=config.temperature, max_tokens=config.max_tokens, seed=config.seed,
                            guide=config.guide(score_format(low, high)))
    template = config.template
    requests = [Request(messages=({"role": "user", "content": template.render(document=d[: config.max_chars])},), params=params)
                for d in documents]
    out = []
    for response in client.generate(requests) if requests else []:
        if response.error:
            out.append(Annotation(None, None, "llm_error", response.model))
            continue
        score, rationale = parse_annotation(response.text, low, high)
        reason = None if score is not None else "truncated" if response.choices[0].finish_reason == "length" else "unparsed"
        out.append(Annotation(score, rationale, reason, response.model))
    return out
