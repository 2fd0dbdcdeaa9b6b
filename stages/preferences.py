"""preferences: turn instructions into DPO pairs judged by an LLM.

Every instruction is answered by each `candidates` entry (a named LLM with its own temperature and
sample count), the judge scores the answers (rubric) or compares them in both orders (pairwise),
and the best answer becomes `chosen`, the worst `rejected`. Pairs below the score margin, ties
included, are dropped with their reason. The summary reports how the judge's preference relates
to answer length (LLM judges are known to favour longer answers).
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa
from pydantic import BaseModel, ConfigDict, Field, field_validator

from generators.client import SamplingParams
from generators.preferences import Candidate, PreferenceConfig, PreferenceJudge
from generators.respond import prompt_messages
from pipeline.records import DROP_REASON, dumps_meta, loads_meta, stable_id
from pipeline.registry import register
from pipeline.stage import MapStage, Problem, Resources, StageConfig
from generators.factory import make_client
from stages.llm_support import (PREFERENCE_SCHEMA, endpoint_failures_stop_run, llm_problems, merge_meta, resolve_llm, structured_problems,
                                table, user_text, with_prompt_version)  # fmt: skip


class CandidateConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    llm: str = Field(description="LLM under `llms:`")
    temperature: float = Field(default=0.7, ge=0)
    samples: int = Field(default=1, ge=1)
    max_tokens: int = Field(default=1024, ge=1)


@register
class PreferencesStage(MapStage):
    """Preference pairs for DPO: several answers per instruction, judged by an LLM, best against worst."""

    name = "preferences"
    resources = Resources(num_cpus=0.5, concurrency=1, batch_size=32)

    class Config(StageConfig, PreferenceConfig):
        candidates: list[CandidateConfig] = Field(
            default_factory=lambda: [CandidateConfig(llm="teacher", temperature=0.3), CandidateConfig(llm="teacher", temperature=1.0)],
            description="who answers each instruction: several models, or one model at several temperatures",
        )
        judge: str = Field(default="teacher", description="LLM under `llms:` that judges")

        @field_validator("candidates")
        @classmethod
        def _two_answers(cls, candidates: list[CandidateConfig]) -> list[CandidateConfig]:
            if sum(c.samples for c in candidates) < 2:
                raise ValueError("candidates must give at least two answers per instruction")
            return candidates

    def check(self) -> list[Problem]:
        cfg = self.config
        uses = [(c.llm, ("candidates", i, "llm")) for i, c in enumerate(cfg.candidates)] + [(cfg.judge, ("judge",))]
        return llm_problems(self.ctx, uses) + structured_problems(self.ctx, cfg.structured, cfg.judge)

    def prepare(self) -> None:
        super().prepare()
        names = {c.llm for c in self.config.candidates} | {self.config.judge}
        self.llm_configs = {n: resolve_llm(self.ctx, n) for n in sorted(names)}

    def setup(self) -> None:
        cfg = self.config
        clients = self.clients = {n: make_client(c) for n, c in self.llm_configs.items()}
        candidates = [
            Candidate(clients[c.llm], SamplingParams(temperature=c.temperature, max_tokens=c.max_tokens, n=c.samples, seed=self.ctx.seed),
                      f"{c.llm}@t{c.temperature}")
            for c in cfg.candidates
        ]  # fmt: skip
        self.judge = PreferenceJudge(candidates, clients[cfg.judge], cfg)
        self.judge_model = clients[cfg.judge].model

    def teardown(self) -> None:
        for client in self.clients.values():
            client.close()

    def process_batch(self, batch: pa.Table) -> pa.Table:
        rows = batch.to_pylist()
        with endpoint_failures_stop_run(self.ctx):
            results = self.judge.run([r["messages"] for r in rows])
        out = []
        for r, res in zip(rows, results):
            prompt = list(prompt_messages(r["messages"]))
            lengths = [len(t.split()) for t in res.responses]
            meta = merge_meta(r.get("meta"), {
                **{k: v for k, v in res.meta.items() if k != "prompt_version_judge"},
                "instruction_id": r["id"], "candidates": res.labels, "all_scores": res.scores, "lengths": lengths,
            })  # fmt: skip
            meta = with_prompt_version(meta, "judge", res.meta.get("prompt_version_judge", ""))
            reason = res.reason if user_text(prompt).strip() else "no_instruction"
            chosen = [{"role": "assistant", "content": res.responses[res.chosen]}] if reason is None else None
            rejected = [{"role": "assistant", "content": res.responses[res.rejected]}] if reason is None else None
            out.append({
                "id": stable_id("preference", r["id"], chosen, rejected),
                "prompt": prompt, "chosen": chosen, "rejected": rejected,
                "scores": {"chosen": res.scores[res.chosen], "rejected": res.scores[res.rejected]} if reason is None else None,
                "judge": self.judge_model, "source": r.get("source"), "meta": dumps_meta(meta), DROP_REASON: reason,
            })  # fmt: skip
        return table(out, PREFERENCE_SCHEMA)

    def summarize(self, output) -> dict[str, Any]:
        return length_bias(output)


def length_bias(output) -> dict[str, Any]:
    """How preference follows length: chosen-longer share of kept pairs, and score-length rank correlation."""
    import numpy as np

    if "scores" not in output.schema().names:
        return {}
    diffs, scores, lengths = [], [], []
    for batch in output.select_columns(["meta", DROP_REASON]).iter_batches(batch_format="pyarrow", batch_size=None):
        for meta, reason in zip(batch.column("meta").to_pylist(), batch.column(DROP_REASON).to_pylist()):
            m = loads_meta(meta)
            if "all_scores" not in m:
                continue
            pairs = [(s, n) for s, n in zip(m["all_scores"], m["lengths"]) if s is not None]
            scores += [s for s, _ in pairs]
            lengths += [n for _, n in pairs]
            if reason is None and pairs:
                best = max(range(len(pairs)), key=lambda i: (pairs[i][0], -i))
                worst = min(range(len(pairs)), key=lambda i: (pairs[i][0], i))
                diffs.append(pairs[best][1] - pairs[worst][1])
    if not diffs and not scores:
        return {"pairs": 0}
    spearman = None
    if len(scores) > 2 and len(set(scores)) > 1 and len(set(lengths)) > 1:
        ranks = lambda v: np.argsort(np.argsort(v, kind="stable"), kind="stable")  # noqa: E731
        spearman = round(float(np.corrcoef(ranks(scores), ranks(lengths))[0, 1]), 4)
    longer = sum(d > 0 for d in diffs)
    return {
        "pairs": len(diffs),
        "chosen_longer_share": round(longer / len(diffs), 4) if diffs else None,
        "mean_length_gap_words": round(float(np.mean(diffs)), 2) if diffs else None,
        "score_length_spearman": spearman,
        "plots": [{
            "kind": "hist", "title": "Chosen minus rejected length (words)", "xlabel": "length gap", "ylabel": "pairs",
            **_histogram(diffs),
        }] if diffs else [],
    }  # fmt: skip


def _histogram(values: list[int], bins: int = 12) -> dict:
    import numpy as np

    counts, edges = np.histogram(values, bins=bins)
    return {"x": [f"{edges[i]:.0f}" for i in range(len(counts))], "y": counts.tolist()}
