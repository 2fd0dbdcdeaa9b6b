"""self_instruct: grow new tasks from seed tasks (Self-Instruct), on the driver.

The pool loop is inherently sequential (each round's prompts show tasks pooled by the rounds
before it, and each proposal is checked against everything pooled so far), so it runs on the
driver, with each round's requests sent as one concurrent batch. Seeds come from `seeds:` (a
`seed_tasks.jsonl`-style or any instruction file) or, without it, from the input rows, which
pass through unchanged either way. Each pooled task becomes one row per instance (instruction and
input as the user turn, output as the answer); every dropped proposal becomes a dropped row
carrying its reason, so the rejects show what the filters removed.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import Field

from generators.self_instruct import SeedTask, SelfInstruct, SelfInstructConfig, SelfInstructOptions, load_seed_tasks
from pipeline.errors import UserError
from pipeline.records import DROP_REASON, loads_meta, stable_id
from pipeline.registry import register
from pipeline.stage import GlobalStage, Problem, StageConfig
from generators.factory import make_client
from stages.llm_support import (INSTRUCTION_SCHEMA, endpoint_failures_stop_run, instruction_row, llm_problems, resolve_llm,
                                structured_problems, table, user_text)  # fmt: skip

SOURCE = "self_instruct"


@register
class SelfInstructStage(GlobalStage):
    """Generate new tasks from seed tasks with an LLM (Self-Instruct); the seed rows pass through."""

    name = "self_instruct"
    produces_rows = True

    class Config(StageConfig, SelfInstructOptions):
        llm: str = Field(default="teacher", description="name of the LLM under `llms:` that proposes and answers tasks")
        seeds: str | None = Field(default=None, description="seed task file (seed_tasks.jsonl style, instruction JSONL or text); None: the input rows")
        max_seed_rows: int = Field(default=10_000, ge=1, description="largest seed set read from the input rows")

    def check(self) -> list[Problem]:
        cfg = self.config
        problems = llm_problems(self.ctx, [(cfg.llm, ("llm",))]) + structured_problems(self.ctx, cfg.structured, cfg.llm)
        if cfg.seeds and not Path(cfg.seeds).is_file():
            problems.append(Problem(f"seeds file not found: {cfg.seeds}", ("seeds",)))
        return problems

    def prepare(self) -> None:
        super().prepare()
        self.llm_config = resolve_llm(self.ctx, self.config.llm)

    def apply(self, dataset):
        import ray.data

        cfg = self.config
        seeds = self._seeds(dataset)
        algo_config = SelfInstructConfig.of(cfg, seed=self.ctx.seed)
        if len(seeds) < cfg.prompt_tasks - cfg.pool_tasks:
            raise UserError(f"stage {self.ctx.stage_id}: {len(seeds)} seed tasks; each prompt needs {cfg.prompt_tasks - cfg.pool_tasks}")
        client = make_client(self.llm_config)
        growth: list[int] = []
        try:
            with endpoint_failures_stop_run(self.ctx):
                result = SelfInstruct(client, seeds, algo_config).run(on_round=lambda r, n: growth.append(n))
        finally:
            client.close()
        rows = [row for p in result.pooled for row in self._rows(p, result.model)]
        rows += [self._dropped_row(p, result.model) for p in result.dropped]
        self.metrics = {
            "seeds": len(seeds),
            "target": cfg.target,
            "pooled": len(result.pooled),
            "rounds": result.rounds,
            "requests": result.requests,
            "stopped_early": result.stopped_early,
            "proposal_drops": dict(result.drops),
            "classification_share": _share([p.is_classification for p in result.pooled if p.is_classification is not None]),
            "plots": [
                {"kind": "line", "title": "Self-Instruct pool growth", "x": list(range(1, len(growth) + 1)), "y": growth,
                 "xlabel": "round", "ylabel": "generated tasks pooled"},
                {"kind": "bar", "title": "Self-Instruct proposals dropped, by reason", "x": list(result.drops),
                 "y": list(result.drops.values()), "xlabel": "reason", "ylabel": "proposals"},
            ],
        }  # fmt: skip
        return dataset.union(ray.data.from_arrow(table(rows, INSTRUCTION_SCHEMA)))

    def summarize(self, output) -> dict[str, Any]:
        return getattr(self, "metrics", {})

    def _seeds(self, dataset) -> list[SeedTask]:
        if self.config.seeds:
            try:
                return load_seed_tasks(self.config.seeds)
            except ValueError as e:
                raise UserError(f"stage {self.ctx.stage_id}: {e}") from None
        if "messages" not in dataset.schema().names:
            raise UserError(f"stage {self.ctx.stage_id}: no `seeds:` file and the input rows are not instructions")
        rows = [r for r in dataset.take(self.config.max_seed_rows + 1) if r.get(DROP_REASON) is None]
        if len(rows) > self.config.max_seed_rows:
            raise UserError(f"stage {self.ctx.stage_id}: more than {self.config.max_seed_rows} seed rows; raise max_seed_rows or pass a seeds file")
        return [seed_from_row(r) for r in rows if user_text(r.get("messages"))]

    def _rows(self, p, model: str) -> list[dict]:
        meta = {"stage": SOURCE, "round": p.round, "is_classification": p.is_classification, "instruction": p.instruction, **_versions(p.meta)}
        if p.reason:
            return [instruction_row(stable_id(SOURCE, p.instruction), [{"role": "user", "content": p.instruction}], model, None, SOURCE, meta, p.reason)]
        rows = []
        for inst in p.instances:
            user = p.instruction + (f"\n\n{inst['input']}" if inst["input"] else "")
            messages = [{"role": "user", "content": user}, {"role": "assistant", "content": inst["output"]}]
            rows.append(instruction_row(stable_id(SOURCE, user, inst["output"]), messages, model, None, SOURCE, {**meta, "input": inst["input"]}))
        return rows

    def _dropped_row(self, p, model: str) -> dict:
        meta = {"stage": SOURCE, "round": p.round, **_versions(p.meta)}
        messages = [{"role": "user", "content": p.instruction}] if p.instruction else []
        return instruction_row(stable_id(SOURCE, "dropped", p.round, p.instruction, json.dumps(meta, sort_keys=True)), messages, model, None, SOURCE, meta, p.reason)


def seed_from_row(row: dict) -> SeedTask:
    """A seed task from an instruction row; a `seed_tasks.jsonl` row read as input keeps its instances."""
    meta = loads_meta(row.get("meta"))
    text = user_text(row["messages"])
    instances = meta.get("instances") if isinstance(meta.get("instances"), list) else []
    first_input = instances[0].get("input") if instances and isinstance(instances[0], dict) else ""
    if first_input and text.endswith("\n\n" + first_input):
        text = text[: -len(first_input) - 2]
    if not instances:
        answer = next((m["content"] for m in row["messages"] if m["role"] == "assistant"), None)
        instances = [{"input": "", "output": answer}] if answer else []
    return SeedTask(text, instances, meta.get("is_classification"), row.get("id"))


def _versions(meta: dict) -> dict:
    """The generator's `prompt_version*` keys folded into one `prompt_version` mapping, step -> template."""
    out = {k: v for k, v in meta.items() if not k.startswith("prompt_version")}
    out["prompt_version"] = {k.removeprefix("prompt_version").lstrip("_") or "propose": v for k, v in meta.items() if k.startswith("prompt_version")}
    return out


def _share(flags: list[bool]) -> float | None:
    return round(sum(flags) / len(flags), 4) if flags else None
