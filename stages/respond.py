"""respond: answer instructions with a named LLM, one or several samples per instruction.

With `samples: 1` a row gets its answer in place (the id stays); with more, each sample becomes
its own row (`<id>.s<k>`, parent_id = the instruction's id). Rows that already end with an
answer are left alone unless `overwrite` is set. A failed or cut answer drops the row with the
reason (`llm_error` with the error in meta, `response_truncated`, `empty_response`).

With `turns: N`, every answered conversation (just now, or already in the input) goes on until it
has N exchanges, its user turns written by `user_simulator`; one whose simulated turn or answer
failed is dropped with that reason (`simulator_llm_error`, `simulator_truncated`,
`empty_user_turn`, or an answer's), the turns it reached in `meta.turns`.
"""

from __future__ import annotations

import pyarrow as pa
from pydantic import Field

from generators.respond import (PROMPT_VERSION, RespondConfig, RespondOptions, answer_problem, continue_conversations, exchanges,
                                prompt_messages, respond, simulator_prompt)  # fmt: skip
from pipeline.records import DROP_REASON, dumps_meta, loads_meta
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
        user_simulator: str | None = Field(default=None, description="LLM under `llms:` that writes the user turns when `turns` > 1 (default: `llm`)")

    def check(self) -> list[Problem]:
        return llm_problems(self.ctx, [(self.config.llm, ("llm",)), (self.config.user_simulator, ("user_simulator",))])

    def prepare(self) -> None:
        super().prepare()
        self.llm_config = resolve_llm(self.ctx, self.config.llm)
        simulator = self.config.user_simulator
        # The answering LLM playing the user as well is one client, not a second copy of the model.
        own = simulator and simulator != self.config.llm and self.config.turns > 1
        self.simulator_config = resolve_llm(self.ctx, simulator) if own else None

    def setup(self) -> None:
        self.client = make_client(self.llm_config)
        self.simulator = make_client(self.simulator_config) if self.simulator_config else self.client

    def teardown(self) -> None:
        self.client.close()
        if self.simulator is not self.client:
            self.simulator.close()

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
                reason = answer_problem(choice)
                meta = with_prompt_version(merge_meta(r.get("meta"), {"responder": resp.model, "sample": k}), "respond", PROMPT_VERSION)
                several = len(resp.choices) > 1
                out.append(instruction_row(
                    f"{r['id']}.s{k}" if several else r["id"],
                    prompt + [{"role": "assistant", "content": choice.text.strip()}],
                    resp.model, r["id"] if several else r.get("parent_id"), r.get("source"), meta, reason,
                ))  # fmt: skip
        if cfg.turns > 1:
            self._continue([r for r in out if r[DROP_REASON] is None and exchanges(r["messages"]) < cfg.turns], params)
        return table(out, INSTRUCTION_SCHEMA)

    def _continue(self, rows: list[dict], params: RespondConfig) -> None:
        """Take the answered rows on to `turns` exchanges, in place."""
        with endpoint_failures_stop_run(self.ctx):
            results = continue_conversations(self.client, self.simulator, [r["messages"] for r in rows], params)
        simulate = simulator_prompt(params).id
        for row, c in zip(rows, results):
            meta = {**loads_meta(row["meta"]), "turns": c.turns, "user_simulator": c.simulator}
            if c.responder:  # a human-written exchange continued by models is the models' row now
                meta["responder"] = row["generated_by"] = c.responder
            if c.error:
                meta["error"] = c.error
            meta = with_prompt_version(with_prompt_version(meta, "respond", PROMPT_VERSION), "simulate", simulate)
            row.update(messages=c.messages, meta=dumps_meta(meta), **{DROP_REASON: c.reason})
