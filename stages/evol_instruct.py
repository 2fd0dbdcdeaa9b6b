"""evol_instruct: evolve every instruction for M rounds (Evol-Instruct), one batch of lineages per call.

Each lineage evolves independently of the others (an operation drawn per instruction and round,
the parent kept when an evolution is eliminated), so rows shard across workers like any map
stage, and a batch's rounds run as concurrent request batches. Output: the input rows (or, with
`keep_input: false`, the input rows dropped as `evolved_away`), every successful evolution as a new
row with its answer and its parent in `parent_id`, and every eliminated one as a dropped row
carrying the rule that fired.
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa
from pydantic import Field

from generators.evol_instruct import EvolConfig, EvolInstruct, EvolOptions
from pipeline.records import DROP_REASON, drop_rows, loads_meta
from pipeline.registry import register
from pipeline.stage import MapStage, Problem, Resources, StageConfig
from generators.factory import make_client
from stages.llm_support import (INSTRUCTION_SCHEMA, endpoint_failures_stop_run, instruction_row, llm_problems, resolve_llm,
                                structured_problems, table, user_text)  # fmt: skip


@register
class EvolInstructStage(MapStage):
    """Rewrite each instruction into harder or broader ones over several rounds (Evol-Instruct), with answers."""

    name = "evol_instruct"
    produces_rows = True
    # One worker drives the server with many concurrent requests; more workers only add more clients.
    resources = Resources(num_cpus=0.5, concurrency=1, batch_size=64)

    class Config(StageConfig, EvolOptions):
        llm: str = Field(default="teacher", description="LLM under `llms:` that rewrites instructions and judges equality")
        responder: str | None = Field(default=None, description="LLM that answers evolved instructions (default: `llm`)")
        keep_input: bool = Field(default=True, description="keep the input instructions next to their evolutions")

    def check(self) -> list[Problem]:
        cfg = self.config
        return (llm_problems(self.ctx, [(cfg.llm, ("llm",)), (cfg.responder, ("responder",))])
                + structured_problems(self.ctx, cfg.structured, cfg.llm))

    def prepare(self) -> None:
        super().prepare()
        self.llm_config = resolve_llm(self.ctx, self.config.llm)
        self.responder_config = resolve_llm(self.ctx, self.config.responder) if self.config.responder else None

    def setup(self) -> None:
        client = make_client(self.llm_config)
        responder = make_client(self.responder_config) if self.responder_config else None
        self.clients = [c for c in (client, responder) if c is not None]
        self.evol = EvolInstruct(client, EvolConfig.of(self.config, seed=self.ctx.seed), responder)

    def teardown(self) -> None:
        for client in self.clients:
            client.close()

    def process_batch(self, batch: pa.Table) -> pa.Table:
        rows = batch.to_pylist()
        items = [(r["id"], user_text(r["messages"])) for r in rows]
        evolvable = [(i, t) for i, t in items if t.strip()]
        with endpoint_failures_stop_run(self.ctx):
            attempts = self.evol.run(evolvable)
        source = {r["id"]: r.get("source") for r in rows}
        out = [self._row(e, source.get(e.root_id)) for e in attempts]
        reasons = [None if t.strip() else "no_instruction" for _, t in items]
        if not self.config.keep_input:
            reasons = [r or "evolved_away" for r in reasons]
        inputs = drop_rows(batch, reasons)
        evolved = table(out, INSTRUCTION_SCHEMA)
        return pa.concat_tables([inputs, evolved], promote_options="permissive") if out else inputs

    @staticmethod
    def _row(e, source: str | None) -> dict:
        meta = {
            "stage": "evol_instruct", "operation": e.operation, "round": e.round, "root_id": e.root_id,
            **{k: v for k, v in e.meta.items() if not k.startswith("prompt_version") and k != "parent"},
            "prompt_version": {k.removeprefix("prompt_version").lstrip("_") or "evolve": v for k, v in e.meta.items() if k.startswith("prompt_version")},
        }  # fmt: skip
        messages = [{"role": "user", "content": e.instruction}]
        if e.response:
            messages.append({"role": "assistant", "content": e.response})
        return instruction_row(e.id, messages, e.meta.get("model"), e.parent_id, source, meta, e.reason)

    def summarize(self, output) -> dict[str, Any]:
        """Evolutions per round and operation, and how many each elimination rule removed."""
        per: dict[tuple[int, str], int] = {}
        for batch in output.select_columns(["meta", DROP_REASON]).iter_batches(batch_format="pyarrow", batch_size=None):
            for meta, reason in zip(batch.column("meta").to_pylist(), batch.column(DROP_REASON).to_pylist()):
                m = loads_meta(meta)
                if m.get("stage") == "evol_instruct":
                    key = (m["round"], reason or "evolved")
                    per[key] = per.get(key, 0) + 1
        rounds = sorted({r for r, _ in per})
        outcomes = sorted({o for _, o in per})
        return {
            "evolutions": {f"round {r}": {o: per.get((r, o), 0) for o in outcomes} for r in rounds},
            "plots": [{
                "kind": "bar", "title": "Evol-Instruct outcomes per round", "xlabel": "round", "ylabel": "attempts",
                "series": [{"x": rounds, "y": [per.get((r, o), 0) for r in rounds], "label": o} for o in outcomes],
            }],
        }  # fmt: skip
