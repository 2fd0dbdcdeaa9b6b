"""`length`: keep rows whose text is within word and character bounds.

The cheapest filter there is, and often the first one worth running on instruction data:
empty responses and runaway generations are removed before any model looks at them.
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc
from pydantic import Field, model_validator

from pipeline.records import View, drop_rows, text_array, whitespace_tokens
from pipeline.registry import register
from pipeline.stage import MapStage, StageConfig


class LengthConfig(StageConfig):
    view: View = Field(default="text", description="what to measure: a document's text, or a view of an instruction record's messages")
    min_words: int = Field(default=1, ge=0)
    max_words: int | None = Field(default=None, ge=1)
    min_chars: int = Field(default=0, ge=0)
    max_chars: int | None = Field(default=None, ge=1)

    @model_validator(mode="after")
    def _bounds_in_order(self):
        for unit in ("words", "chars"):
            low, high = getattr(self, f"min_{unit}"), getattr(self, f"max_{unit}")
            if high is not None and low > high:
                raise ValueError(f"min_{unit} ({low}) is above max_{unit} ({high}): every row would be dropped")
        return self


@register
class Length(MapStage):
    """Drop rows whose text is too short or too long (whitespace words and characters)."""

    name = "length"
    Config = LengthConfig

    def process_batch(self, batch: pa.Table) -> pa.Table:
        c = self.config
        texts = text_array(batch, c.view)
        words = whitespace_tokens(texts).to_pylist()
        chars = pc.utf8_length(texts).to_pylist()
        reasons = []
        for w, n in zip(words, chars):
            if w < c.min_words:
                reasons.append("too_few_words")
            elif c.max_words is not None and w > c.max_words:
                reasons.append("too_many_words")
            elif n < c.min_chars:
                reasons.append("too_few_chars")
            elif c.max_chars is not None and n > c.max_chars:
                reasons.append("too_many_chars")
            else:
                reasons.append(None)
        return drop_rows(batch, reasons)
