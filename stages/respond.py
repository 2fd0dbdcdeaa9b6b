"""respond: answer instructions with a named LLM, one or several samples per instruction.

With `samples: 1` a row gets its answer in place (the id stays); with more, each sample becomes
its own row (`<id>.s<k>`, parent_id = the instruction's id). Rows that already end with an
answer are left alone unless `overwrite` is set. A failed or cut answer drops the row with the
reason (`llm_error` with the error in meta, `response_truncated`, `empty_response`).
"""

from __future__ import annotations

import pyarrow as pa
from pydantic import Field

from generators.respond import PROMPT_VERSION, RespondConfig, RespondOptions, prompt_messages, respond
from pipeline.registry import register
from pipeline.stage import MapStage, Problem, Resources, StageConfig
from generators.factory import make_client
from stages.llm_support import (INSTRUCTION_SCHEMA, endpoint_failures_stop_run, instruction_row, llm_problems, merge_meta, resolve_llm,
                                table, user_text, with_prompt_version)  # fmt: skip


@register
class RespondStage(MapStage):
    """Answer each instruction with an LLM, one or several samples per instruction."""

    name = "respond"
    produces_rows = True
    resources = Resources(num_cpus=0.5, concurrency=1, batch_size=64)

    class Config(StageConfig, RespondOptions):
        llm: str = Field(default="teacher", description="LLM under `llms:` that answers")
        overwrite: bool = Field(default=False, description="answer again rows that already end with an answer")

    def check(self) -> list[Problem]:
        return llm_problems(self.ctx, [(self.config.llm, ("llm",))])

    def prepare(self) -> None:
        super().prepare()
        self.llm_config = resolve_llm(self.ctx, self.config.llm)

    def setup(self) -> None:
        self.client = make_client(self.llm_config)

    def teardown(self) -> None:
        self.client.close()

    def process_batch(self, batch: pa.Table) -> pa.Table:
        cfg = self.config
        rows = batch.to_pylist()
        todo = [r for r in rows if user_text(r["messages"]).strip() and (cfg.overwrite or r["messages"][-1]["role"] != "assistant")]
        params = RespondConfig.of(cfg, seed=self.ctx.seed)
        with endpoint_failures_stop_run(self.ctx):
            answers = {id(r): resp for r, resp in zip(todo, respond(self.client, [r["messages"] for r in todo], params))}
        out = []
        for r in rows:
            base = {k: r.get(k) for k in ("id", "messages", "generated_by", "parent_id", "source")}
            if not user_text(r["messages"]).strip():
                out.append(instruction_row(**base, meta=merge_meta(r.get("meta"), {}), reason="no_instruction"))
                continue
            resp = answers.get(id(r))
            if resp is None:
                out.append(instruction_row(**base, meta=merge_meta(r.get("meta"), {})))
                continue
            prompt = list(prompt_messages(r["messages"]))
            if resp.error:
                out.append(instruction_row(**base, meta=merge_meta(r.get("meta"), {"error": resp.error, "responder": resp.model}), reason="llm_error"))
                continue
            for k, choice in enumerate(resp.choices):
                reason = "response_truncated" if choice.finish_reason == "length" else None if choice.text.strip() else "empty_response"
                meta = with_prompt_version(merge_meta(r.get("meta"), {"responder": resp.model, "sample": k}), "respond", PROMPT_VERSION)
                several = len(resp.choices) > 1
                out.append(instruction_row(
                    f"{r['id']}.s{k}" if several else r["id"],
                    prompt + [{"role": "assistant", "content": choice.text.strip()}],
                    resp.model, r["id"] if several else r.get("parent_id"), r.get("source"), meta, reason,
                ))  # fmt: skip
        return table(out, INSTRUCTION_SCHEMA)
