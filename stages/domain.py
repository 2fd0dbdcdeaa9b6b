"""Domain: give every row a `domain_label` and a `domain_score`, for reweighting and reports.

Three labellers, tried in this order, the first that answers wins:
1. `rules`: host and URL rules from a mapping file (filters/domains.py), score 1;
2. `field`: the value of a column, such as `source`, score 1;
3. `model`: a fastText classifier trained with `pipeline train-classifier`, score = its
   probability; predictions below `min_score` count as no answer.
Rows nobody labels get `default` with score 0. The `domain` column (the host) is left alone.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa
from pydantic import Field, model_validator

from filters.domains import RulesError, load_rules
from pipeline import storage
from pipeline.records import View, field_values, live_mask, set_column, text_column
from pipeline.registry import register
from pipeline.stage import MapStage, Problem, Resources, StageConfig


class DomainConfig(StageConfig):
    rules: str | None = Field(default=None, description="host/URL rules file (.yaml, .json or .csv): see docs/reweighting.md")
    field: str | None = Field(default=None, description="column (or field of the input) whose value is the label, e.g. source")
    model: str | None = Field(default=None, description="fastText model trained with `pipeline train-classifier`",
                              json_schema_extra=storage.READ_ON_EVERY_NODE)
    min_score: float = Field(default=0.0, ge=0, le=1, description="classifier predictions below this score are not used")
    view: View = Field(
        default="text", description="text the classifier reads (instructions: a view of messages)"
    )
    default: str = Field(default="other", description="label of rows that no labeller labels")

    @model_validator(mode="after")
    def _some_labeller(self):
        if not (self.rules or self.field or self.model):
            raise ValueError("give at least one of rules, field or model")
        return self


@register
class Domain(MapStage):
    """Label rows by rules, then by a field, then by a classifier; fall back to a default label."""

    name = "domain"
    Config = DomainConfig
    adds = ("domain_label", "domain_score")
    resources = Resources(num_cpus=1, batch_size=1024)

    _rules = None
    _classifier = None

    def check(self) -> list[Problem]:
        missing = [Problem(f"{key} file {why}", (key,))
                   for key, path in (("rules", self.config.rules), ("model", self.config.model))
                   if path and (why := storage.file_problem(path))]
        if missing or not self.config.rules:
            return missing
        try:  # a rules file is small: reading it now finds its mistakes before the run
            load_rules(self.config.rules)
        except RulesError as err:
            return [Problem(str(err), ("rules",))]
        return []

    def prepare(self) -> None:
        super().prepare()
        if self.config.rules:
            self._rules = load_rules(self.config.rules)

    def setup(self) -> None:
        if self.config.rules and self._rules is None:
            self._rules = load_rules(self.config.rules)
        if self.config.model:
            from filters.fasttext_classifier import FastTextClassifier

            with storage.local_copy(self.config.model) as path:  # fastText opens only local files
                self._classifier = FastTextClassifier(path)

    def process_batch(self, batch: pa.Table) -> pa.Table:
        n = batch.num_rows
        labels: list[str | None] = [None] * n
        scores = np.zeros(n, dtype=np.float64)

        if self._rules is not None:
            urls = field_values(batch, "url")
            hosts = field_values(batch, "domain")
            for i in range(n):
                labels[i] = self._rules.label(urls[i], hosts[i])
            scores[[i for i, lab in enumerate(labels) if lab is not None]] = 1.0

        if self.config.field:
            values = field_values(batch, self.config.field)
            for i in range(n):
                if labels[i] is None and values[i] not in (None, ""):
                    labels[i], scores[i] = str(values[i]), 1.0

        if self._classifier is not None:
            texts = text_column(batch, self.config.view)
            # fastText gives empty text a confident label: such rows are left to the default
            todo = [i for i in range(n) if labels[i] is None and texts[i].strip()]
            predicted, probs = self._classifier.predict([texts[i] for i in todo]) if todo else ([], [])
            for i, lab, p in zip(todo, predicted, probs):
                if p >= self.config.min_score:
                    labels[i], scores[i] = lab, p

        labels = [lab if lab is not None else self.config.default for lab in labels]
        batch = set_column(batch, "domain_label", pa.array(labels, pa.string()))
        return set_column(batch, "domain_score", pa.array(scores, pa.float64()))

    def summarize(self, output) -> dict[str, Any]:
        rows: dict[str, int] = {}
        score: dict[str, float] = {}
        for batch in output.map_batches(_label_counts, batch_format="pyarrow").iter_batches(batch_format="pyarrow", batch_size=None):
            for r in batch.to_pylist():
                rows[r["domain_label"]] = rows.get(r["domain_label"], 0) + r["rows"]
                score[r["domain_label"]] = score.get(r["domain_label"], 0.0) + r["score"]
        labels = {lab: {"rows": n, "mean_score": score[lab] / n} for lab, n in sorted(rows.items(), key=lambda kv: -kv[1])}
        return {
            "labels": labels,
            "plots": [
                {
                    "kind": "bar",
                    "title": "Rows per domain label",
                    "x": list(labels),
                    "y": [v["rows"] for v in labels.values()],
                    "xlabel": "domain label",
                    "ylabel": "rows",
                }
            ],
        }


def _label_counts(batch: pa.Table) -> pa.Table:
    """Rows and summed score per label in one batch (live rows only): a handful of rows for the driver."""
    live = pa.table({"domain_label": batch.column("domain_label"), "score": batch.column("domain_score")}).filter(live_mask(batch))
    counts = live.group_by("domain_label").aggregate([("score", "sum"), ("score", "count")])
    return counts.select(["domain_label", "score_sum", "score_count"]).rename_columns(["domain_label", "score", "rows"])
