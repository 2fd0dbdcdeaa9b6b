"""`heuristics`: the Gopher quality and repetition, C4 and FineWeb rules, first failing rule as the reason.

Families run in the order given by `rules`; C4 removes lines, and the cleaned text is both
what later families judge and what a kept document carries on. Instruction records are judged
on a text view of their messages with the `instruction` profile (chosen automatically when the
rows have `messages` and no `text`), and their messages are never rewritten.

A row is judged in its language: the `lang` column the `language` stage writes, or the stage's
`lang` option where there is none (English by default, what the rules were published for).
Rules that do not know a row's language skip it; each row lists them in `heuristics_skipped`,
which `summarize` counts per rule and language, so a run says which rules did not judge which rows.
"""

from __future__ import annotations

import re
from typing import Any, Literal

import pyarrow as pa
from pydantic import Field, field_validator, model_validator

from filters.heuristics import DEFAULT_ORDER, FAMILIES, Heuristics
from filters.textstats import DEFAULT_LANGUAGE, language_code
from pipeline.records import View, drop_rows, set_column, text_column
from pipeline.registry import register
from pipeline.stage import MapStage, StageConfig

Family = Literal["gopher_quality", "gopher_repetition", "c4", "fineweb"]
SKIPPED = "heuristics_skipped"
LANGUAGE_TAG = re.compile(r"[A-Za-z]{2,3}([-_][A-Za-z0-9]+)*")


class HeuristicsConfig(StageConfig):
    rules: list[Family] = Field(list(DEFAULT_ORDER), min_length=1, description="rule families, in the order they run")
    profile: Literal["auto", "document", "instruction"] = Field(
        "auto", description="default thresholds: web documents, short instruction records, or by the rows' kind"
    )
    view: View = Field(
        "text", description="what to judge: a document's text, or a view of an instruction record's messages"
    )
    gopher_quality: dict[str, Any] = Field({}, description="threshold overrides, e.g. {min_words: 100}")
    gopher_repetition: dict[str, Any] = Field({}, description="threshold overrides, e.g. {max_dup_lines: 0.2}")
    c4: dict[str, Any] = Field({}, description="threshold overrides, e.g. {min_sentences: 3}")
    fineweb: dict[str, Any] = Field({}, description="threshold overrides, e.g. {max_short_lines: 0.5}")
    disable: list[str] = Field([], description="rules to switch off, as family.rule (e.g. c4.curly_bracket)")
    enable: list[str] = Field([], description="rules the profile switches off that should run anyway")
    lang: str = Field(
        DEFAULT_LANGUAGE,
        description="language of rows without a `lang` value (the language stage writes one), e.g. de for a German corpus",
    )

    def build(self, profile: Literal["document", "instruction"]) -> Heuristics:
        thresholds = {name: getattr(self, name) for name in FAMILIES}
        return Heuristics.build(self.rules, profile, thresholds, self.disable, self.enable)

    @field_validator("lang")
    @classmethod
    def _language_code(cls, lang: str) -> str:
        if not LANGUAGE_TAG.fullmatch(lang):
            raise ValueError(f"'{lang}' is not a language code (ISO 639, as the language stage writes: en, de, pt-BR)")
        return lang

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
        texts = text_column(batch, self.config.view)
        results = [chain.check(text, lang) for text, lang in zip(texts, row_languages(batch, self.config.lang))]
        if is_document and self.config.view == "text":
            originals = batch.column("text").to_pylist()
            cleaned = [v.text if v.reason is None else old for v, old in zip(results, originals)]
            batch = set_column(batch, "text", pa.array(cleaned, pa.string()))
        batch = set_column(batch, SKIPPED, pa.array([v.skipped or None for v in results], pa.list_(pa.string())))
        return drop_rows(batch, [v.reason for v in results])

    def summarize(self, output) -> dict[str, Any]:
        """{"skipped_rules": {rule: {language: rows}}}: which rules did not judge which languages."""
        skipped: dict[str, dict[str, int]] = {}
        counts = output.map_batches(_skip_counts, fn_args=(self.config.lang,), batch_format="pyarrow", batch_size=None)
        for row in counts.iter_rows():
            per_lang = skipped.setdefault(row["rule"], {})
            per_lang[row["lang"]] = per_lang.get(row["lang"], 0) + row["rows"]
        return {"skipped_rules": {rule: dict(sorted(langs.items())) for rule, langs in sorted(skipped.items())}}


def row_languages(batch: pa.Table, default: str) -> list[str]:
    """Each row's language: its `lang` value, or `default` where it has none."""
    if "lang" not in batch.column_names:
        return [default] * batch.num_rows
    return [lang or default for lang in batch.column("lang").to_pylist()]


def _skip_counts(batch: pa.Table, default: str) -> pa.Table:
    """Rows per (skipped rule, language) in one block: a handful of rows for the driver."""
    counts: dict[tuple[str, str], int] = {}
    if SKIPPED in batch.column_names:
        for rules, lang in zip(batch.column(SKIPPED).to_pylist(), row_languages(batch, default)):
            for rule in rules or ():
                key = rule, language_code(lang)
                counts[key] = counts.get(key, 0) + 1
    return pa.table({
        "rule": pa.array([rule for rule, _ in counts], pa.string()),
        "lang": pa.array([lang for _, lang in counts], pa.string()),
        "rows": pa.array(list(counts.values()), pa.int64()),
    })
