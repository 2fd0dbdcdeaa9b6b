"""`annotate`: an LLM rates a seeded sample of documents on a rubric (FineWeb-Edu / DCLM's first step).

Every row is kept. A sampled row gets `annotation_score` (null when the LLM's answer had no score in
the scale), `annotation_rationale` and `annotation_prompt` (the prompt's name@version, so ratings from
different prompts are never mixed up); the others pass with nulls. `pipeline train-classifier
--score-field annotation_score` then learns the ratings and `quality` applies the model to every row.

A share (`sample: 0.05`) is one map pass; a number of documents (`sample: 2000`) first reads every
live row's sample key to find the cut that gives exactly that many. (Neither fuses with neighbouring
stages: the LLM client keeps a pass, and a worker pool sized to its server, of its own.)
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import pyarrow as pa
from pydantic import Field

from generators.annotate import AnnotateConfig, AnnotateOptions, annotate, count_threshold, sample_key, share_threshold
from generators.factory import make_client
from pipeline.records import live_mask, set_column, text_column
from pipeline.registry import register
from pipeline.stage import GlobalStage, MapStage, Problem, Resources, StageConfig
from stages.llm_support import endpoint_failures_stop_run, llm_problems, resolve_llm, structured_problems

SCORE, RATIONALE, PROMPT = "annotation_score", "annotation_rationale", "annotation_prompt"


class AnnotateStageConfig(StageConfig, AnnotateOptions):
    llm: str = Field(default="teacher", description="LLM under `llms:` that rates the documents")


class AnnotateScorer(MapStage):
    """The map pass: rate the live rows whose sample key is below `threshold`."""

    name = "annotate"
    resources = Resources(num_cpus=0.5, concurrency=1, batch_size=64)  # one client keeps a server busy

    def __init__(self, config: AnnotateStageConfig, ctx, llm_config: dict, threshold: int):
        super().__init__(config, ctx)
        self.llm_config, self.threshold = llm_config, threshold

    def setup(self) -> None:
        self.client = make_client(self.llm_config)

    def teardown(self) -> None:
        self.client.close()

    def process_batch(self, batch: pa.Table) -> pa.Table:
        seed = self.ctx.seed
        ids = [str(i) for i in batch.column("id").to_pylist()]
        chosen = [i for i, (alive, row_id) in enumerate(zip(live_mask(batch).to_pylist(), ids))
                  if alive and sample_key(seed, row_id) < self.threshold]
        texts = text_column(batch, "text")
        config = AnnotateConfig.of(self.config, seed=seed)
        with endpoint_failures_stop_run(self.ctx):
            results = annotate(self.client, [texts[i] for i in chosen], config)
        scores, rationales, prompts = [None] * batch.num_rows, [None] * batch.num_rows, [None] * batch.num_rows
        for i, a in zip(chosen, results):
            scores[i], rationales[i], prompts[i] = a.score, a.rationale, config.template.id
        batch = set_column(batch, SCORE, pa.array(scores, pa.float32()))
        batch = set_column(batch, RATIONALE, pa.array(rationales, pa.string()))
        return set_column(batch, PROMPT, pa.array(prompts, pa.string()))


@register
class AnnotateStage(GlobalStage):
    """Rate a seeded sample of documents with an LLM on a rubric (educational value 0-5 by default)."""

    name = "annotate"
    Config = AnnotateStageConfig
    adds = (SCORE, RATIONALE, PROMPT)

    def check(self) -> list[Problem]:
        return llm_problems(self.ctx, [(self.config.llm, ("llm",))]) + structured_problems(self.ctx, self.config.structured, self.config.llm)

    def prepare(self) -> None:
        super().prepare()
        self.llm_config = resolve_llm(self.ctx, self.config.llm)

    def apply(self, dataset):
        if isinstance(self.config.sample, float):
            threshold = share_threshold(self.config.sample)
        else:
            dataset = dataset.materialize()  # read once for the keys, once to annotate
            keys = []
            for batch in dataset.map_batches(_keys, fn_args=(self.ctx.seed,), batch_format="pyarrow").iter_batches(
                    batch_format="pyarrow", batch_size=None):
                keys += batch.column("key").to_pylist()
            threshold = count_threshold(keys, self.config.sample)
        return self.run_substage(AnnotateScorer(self.config, self.ctx, self.llm_config, threshold), dataset)

    def summarize(self, output) -> dict[str, Any]:
        sampled, scores = 0, Counter()
        for batch in output.select_columns([SCORE, PROMPT]).iter_batches(batch_format="pyarrow", batch_size=None):
            for score, prompt in zip(batch.column(SCORE).to_pylist(), batch.column(PROMPT).to_pylist()):
                if prompt is not None:
                    sampled += 1
                    if score is not None:
                        scores[int(score)] += 1
        low, high = self.config.scale
        levels = list(range(low, high + 1))
        return {
            "sampled": sampled, "scored": sum(scores.values()), "unscored": sampled - sum(scores.values()),
            "prompt": self.config.template.id, "scores": {str(k): scores[k] for k in levels},
            "plots": [{"kind": "bar", "title": "annotated documents by score", "x": [str(k) for k in levels],
                       "y": [scores[k] for k in levels], "xlabel": "score", "ylabel": "documents"}],
        }  # fmt: skip


def _keys(batch: pa.Table, seed: int) -> pa.Table:
    alive = live_mask(batch).to_pylist()
    return pa.table({"key": pa.array([sample_key(seed, str(i)) for i, a in zip(batch.column("id").to_pylist(), alive) if a],
                                     pa.uint64())})
