"""`quality`: score rows with a fastText classifier and keep those above a score or the top fraction.

The score (probability of `label`; for a regression head on embeddings, its prediction on the
rubric's scale mapped onto [0, 1]) is stored in `quality`. With `min_score` the stage is one
map pass, which the engine fuses with neighbouring map stages. With `top_fraction` it needs
every score before it can cut: it scores once, materializes, sums per-batch score histograms
into the cut (to 1e-4), then marks rows below it, so the threshold is global without sorting
or collecting the data.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import Field, model_validator

from pipeline import storage
from pipeline.errors import UserError
from pipeline.records import View, drop_rows, live_mask, set_column, text_column
from pipeline.registry import register
from pipeline.stage import GlobalStage, MapStage, Problem, Resources, StageConfig

BELOW_MIN_SCORE = "quality_below_min_score"
BELOW_TOP_FRACTION = "quality_below_top_fraction"
DEFAULT_MIN_SCORE = 0.5


class QualityConfig(StageConfig):
    model: str = Field(description="a fastText classifier (.bin/.ftz) or a regression head (.json), from `pipeline train-classifier`",
                       json_schema_extra=storage.READ_ON_EVERY_NODE)
    label: str = Field("hq", description="the label whose probability is the quality score (fastText models)")
    min_score: float | None = Field(None, ge=0, le=1, description=f"keep rows scoring at least this (default {DEFAULT_MIN_SCORE})")
    top_fraction: float | None = Field(None, gt=0, le=1, description="instead keep this best-scoring fraction of rows")
    view: View = Field(
        "text", description="what to score: a document's text, or a view of an instruction record's messages"
    )

    @model_validator(mode="after")
    def _one_mode(self) -> "QualityConfig":
        if self.min_score is not None and self.top_fraction is not None:
            raise ValueError("give min_score or top_fraction, not both")
        return self

    @property
    def floor(self) -> float:
        return self.min_score if self.min_score is not None else DEFAULT_MIN_SCORE


class QualityScorer(MapStage):
    """The map pass: score every row, and apply `min_score` when that is the mode."""

    name = "quality"
    resources = Resources(num_cpus=1, batch_size=1024)

    def setup(self) -> None:
        with storage.local_copy(self.config.model) as path:  # fastText opens only local files
            self.score = _scorer(path, self.config.label)

    def process_batch(self, batch: pa.Table) -> pa.Table:
        scores = self.score(text_column(batch, self.config.view))
        batch = set_column(batch, "quality", pa.array(scores, pa.float32()))
        if self.config.top_fraction is not None:
            return batch
        return drop_rows(batch, [None if s >= self.config.floor else BELOW_MIN_SCORE for s in scores])


@register
class QualityStage(GlobalStage):
    """Keep rows a fastText classifier rates highly: above `min_score`, or the `top_fraction` best."""

    name = "quality"
    Config = QualityConfig
    adds = ("quality",)
    threshold: float | None = None  # a top_fraction cut, found by apply() and reported by summarize()

    def check(self) -> list[Problem]:
        why = storage.file_problem(self.config.model)
        return [Problem(f"quality model {why}", ("model",))] if why else []

    def prepare(self) -> None:
        from filters import embedding_head
        from filters.fasttext_classifier import FastTextClassifier

        super().prepare()
        path = self.config.model
        try:
            with storage.local_copy(path) as local:  # fastText opens only local files
                if embedding_head.is_head(path):
                    return self._check_head(embedding_head.load(local))
                labels = FastTextClassifier(local).labels
        except ValueError as e:
            kind = "regression head" if embedding_head.is_head(path) else "fastText model"
            raise UserError(f"stage {self.ctx.stage_id}: {path} is not a {kind} ({e})") from None
        if self.config.label not in labels:
            raise UserError(f"stage {self.ctx.stage_id}: label '{self.config.label}' is not in {path} (labels: {', '.join(labels)})")

    def _check_head(self, head) -> None:
        from filters.embeddings import model_problem

        if why := model_problem(head.embedding_model):
            raise UserError(f"stage {self.ctx.stage_id}: {self.config.model}: {why}")

    def map_stage(self) -> MapStage | None:
        return QualityScorer(self.config, self.ctx) if self.config.top_fraction is None else None

    def apply(self, dataset):
        scored = self.run_substage(QualityScorer(self.config, self.ctx), dataset)
        if self.config.top_fraction is None:
            return scored
        from filters.fasttext_classifier import score_histogram, top_fraction_threshold

        scored = scored.materialize()
        histogram = self.summed_counts(scored, lambda batch: score_histogram(_live_scores(batch)))
        self.threshold = top_fraction_threshold(histogram, self.config.top_fraction)
        return scored.map_batches(_cut, fn_args=(self.threshold,), batch_format="pyarrow", batch_size=4096)

    def summarize(self, output) -> dict[str, Any]:
        if self.config.top_fraction is not None:
            cut = {"threshold": self.threshold, "mode": "top_fraction"}
        else:
            cut = {"threshold": self.config.floor, "mode": "min_score"}
        return {**cut, **self._held_out_measures()}

    def _held_out_measures(self) -> dict[str, Any]:
        """How the model did on the rows `train-classifier` held out (the metrics file it writes beside
        the model): after annotate-then-classify, the classifier's agreement with the annotator, in
        the report of the run that applies it."""
        model = storage.locate(self.config.model)
        try:
            metrics = json.loads((model.parent / f"{model.name}.metrics.json").read_text())
        except (OSError, ValueError):  # a model trained elsewhere has none
            return {}
        shown = {k: metrics[k] for k in ("n_test", "accuracy", "auc", "agreement") if k in metrics}
        return {"classifier_held_out": shown} if shown else {}


def _scorer(path: str, label: str):
    """texts -> scores on [0, 1]: a fastText model's probability of `label`, or a regression head's
    prediction on its rubric's scale."""
    from filters import embedding_head

    if embedding_head.is_head(path):
        from filters.embeddings import Embedder

        head = embedding_head.load(path)
        embedder = Embedder(head.embedding_model)
        return lambda texts: head.quality(embedder.encode(texts)).tolist()
    from filters.fasttext_classifier import FastTextClassifier

    classifier = FastTextClassifier(path)
    return lambda texts: classifier.score(texts, label)


def _live_scores(batch: pa.Table) -> np.ndarray:
    """Scores of rows still alive (a block of rows dropped earlier may have no `quality` column)."""
    if "quality" not in batch.column_names:
        return np.zeros(0)
    scores = batch.column("quality").filter(live_mask(batch))
    return np.asarray(pc.drop_null(scores).to_numpy(zero_copy_only=False), dtype=np.float64)


def _cut(batch: pa.Table, threshold: float) -> pa.Table:
    if "quality" not in batch.column_names:
        batch = set_column(batch, "quality", pa.nulls(batch.num_rows, pa.float32()))
    scores = batch.column("quality").to_pylist()
    return drop_rows(batch, [None if s is not None and s >= threshold else BELOW_TOP_FRACTION for s in scores])
