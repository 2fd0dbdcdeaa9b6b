"""grounded: instructions written for curated documents (instruction back-translation, Humpback).

Reads document rows (`text`), asks the model for the request each document answers, has a judge
rate the pair on a 5-point scale and keeps pairs at or above `min_score`. Each output row is an
instruction whose answer is the human-written document, with the document's id in `parent_id`.
"""

from __future__ import annotations

import pyarrow as pa
from pydantic import Field

from generators.grounded import GroundedConfig, GroundedOptions, backtranslate
from pipeline.records import stable_id, text_column
from pipeline.registry import register
from pipeline.stage import MapStage, Problem, Resources, StageConfig
from generators.factory import make_client
from stages.llm_support import (INSTRUCTION_SCHEMA, endpoint_failures_stop_run, instruction_row, llm_problems, merge_meta, resolve_llm, table,
                                with_prompt_version)  # fmt: skip


@register
class GroundedStage(MapStage):
    """Write, with an LLM, the instruction each document answers; the document becomes the answer (back-translation)."""

    name = "grounded"
    resources = Resources(num_cpus=0.5, concurrency=1, batch_size=32)

    class Config(StageConfig, GroundedOptions):
        llm: str = Field(default="teacher", description="LLM under `llms:` that writes the instruction")
        judge: str | None = Field(default=None, description="LLM that rates the pair (default: `llm`)")

    def check(self) -> list[Problem]:
        return llm_problems(self.ctx, [(self.config.llm, ("llm",)), (self.config.judge, ("judge",))])

    def prepare(self) -> None:
        super().prepare()
        self.llm_config = resolve_llm(self.ctx, self.config.llm)
        self.judge_config = resolve_llm(self.ctx, self.config.judge) if self.config.judge else self.llm_config

    def setup(self) -> None:
        self.client = make_client(self.llm_config)
        self.judge = make_client(self.judge_config) if self.config.judge else self.client

    def teardown(self) -> None:
        self.client.close()
        if self.judge is not self.client:
            self.judge.close()

    def process_batch(self, batch: pa.Table) -> pa.Table:
        cfg = self.config
        texts = text_column(batch, "text")
        algo = GroundedConfig.of(cfg, seed=self.ctx.seed)
        with endpoint_failures_stop_run(self.ctx):
            pairs = backtranslate(self.client, self.judge, texts, algo)
        rows = batch.select([c for c in ("id", "source", "url", "meta") if c in batch.column_names]).to_pylist()
        out = []
        for row, text, pair in zip(rows, texts, pairs):
            versions = {k: v for k, v in pair.meta.items() if k.startswith("prompt_version")}
            meta = merge_meta(row.get("meta"), {k: v for k, v in pair.meta.items() if k not in versions})
            meta.update(stage="grounded", score=pair.score, url=row.get("url"))
            for key, version in versions.items():
                meta = with_prompt_version(meta, key.removeprefix("prompt_version").lstrip("_") or "backtranslate", version)
            messages = [{"role": "user", "content": pair.instruction}, {"role": "assistant", "content": text}] if pair.instruction else []
            out.append(instruction_row(stable_id("grounded", row.get("id"), pair.instruction), messages,
                                       pair.meta.get("model"), row.get("id"), row.get("source"), meta, pair.reason))  # fmt: skip
        return table(out, INSTRUCTION_SCHEMA)
