"""`heuristics`: the Gopher quality and repetition, C4 and FineWeb rules, first failing rule as the reason.

Families run in the order given by `rules`; C4 removes lines, and the cleaned text is both
what later families judge and what a kept document carries on. Instruction records are judged
on a text view of their messages with the `instruction` profile (chosen automatically when the
rows have `messages` and no `text`), and their messages are never rewritten.
"""

from __future__ import annotations

from typing import Any, Literal

import pyarrow as pa
from pydantic import Field, model_validator

from filters.heuristics import DEFAULT_ORDER, FAMILIES, Heuristics
from pipeline.records import drop_rows, set_column, text_column
from pipeline.registry import register
from pipeline.stage import MapStage, StageConfig

Family = Literal["gopher_quality", "gopher_repetition", "c4", "fineweb"]


class HeuristicsConfig(StageConfig):
    rules: list[Family] = Field(list(DEFAULT_ORDER), min_length=1, description="rule families, in the order they run")
    profile: Literal["auto", "document", "instruction"] = Field(
        "auto", description="default thresholds: web documents, short instruction records, or by the rows' kind"
    )
    view: Literal["text", "instruction", "response", "conversation"] = Field(
        "text", description="what to judge: a document's text, or a view of an instruction record's messages"
    )
    gopher_quality: dict[str, Any] = Field({}, description="threshold overrides, e.g. {min_words: 100}")
    gopher_repetition: dict[str, Any] = Field({}, description="threshold overrides, e.g. {max_dup_lines: 0.2}")
    c4: dict[str, Any] = Field({}, description="threshold overrides, e.g. {min_sentences: 3}")
    fineweb: dict[str, Any] = Field({}, description="threshold overrides, e.g. {max_short_lines: 0.5}")
    disable: list[str] = Field([], description="rules to switch off, as family.rule (e.g. c4.curly_bracket)")
    enable: list[str] = Field([], description="rules the profile switches off that should run anyway")

    def build(self, profile: Literal["document", "instruction"]) -> Heuristics:
        thresholds = {name: getattr(self, name) for name in FAMILIES}
        return Heuristics.build(self.rules, profile, thresholds, self.disable, self.enable)

    @model_validator(mode="after")
    def _valid_rules_and_thresholds(self) -> "HeuristicsConfig":
        for profile in ("document", "instruction"):
            self.build(profile)
        return self


@register
class HeuristicsStage(MapStage):
    """Drop documents (or instruction records) that fail a heuristic rule; C4 cleans kept documents' lines."""

    name = "heuristics"
    Config = HeuristicsConfig

    def setup(self) -> None:
        self.chains = {p: self.config.build(p) for p in ("document", "instruction")}

    def process_batch(self, batch: pa.Table) -> pa.Table:
        is_document = "text" in batch.column_names
        profile = self.config.profile
        if profile == "auto":
            profile = "document" if is_document or "messages" not in batch.column_names else "instruction"
        chain = self.chains[profile]
        results = [chain.check(text) for text in text_column(batch, self.config.view)]
        if is_document and self.config.view == "text":
            originals = batch.column("text").to_pylist()
            cleaned = [new if reason is None else old for (reason, new), old in zip(results, originals)]
            batch = set_column(batch, "text", pa.array(cleaned, pa.string()))
        return drop_rows(batch, [reason for reason, _ in results])
