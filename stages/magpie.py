"""magpie: conversations sampled from an aligned model's own chat template (Magpie), on the driver.

The stage needs no input of its kind: the input rows pass through, and `count` conversations are
added, generated on the driver in batches of `batch_size` (one request batch per turn and step,
which is what keeps a server busy; the model's work is on the server, not here). The tokenizer
whose template gives the pre-query prefix is the LLM's own (`tokenizer:` names another copy of it,
e.g. a local one for a remote server). Every conversation becomes one row in the `messages`
format; one that did not reach `turns` exchanges is dropped with its reason and the turns it made.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from pydantic import Field

from generators.factory import make_client
from generators.magpie import PRE_QUERY_VERSION, Magpie, MagpieConfig, MagpieOptions, TemplateUnsplittable, pre_query, template_digest
from generators.prompts import RESPOND
from pipeline.errors import UserError
from pipeline.records import stable_id
from pipeline.registry import register
from pipeline.stage import GlobalStage, Problem, StageConfig
from stages.llm_support import INSTRUCTION_SCHEMA, endpoint_failures_stop_run, instruction_row, llm_problems, resolve_llm, table

SOURCE = "magpie"


@register
class MagpieStage(GlobalStage):
    """Sample conversations from an aligned model given only its chat template's pre-query prefix (Magpie)."""

    name = "magpie"
    produces_rows = True

    class Config(StageConfig, MagpieOptions):
        llm: str = Field(default="teacher", description="LLM under `llms:` that writes the user turns (completion endpoint)")
        responder: str | None = Field(default=None, description="LLM that answers them (chat endpoint; default: `llm`)")
        tokenizer: str | None = Field(default=None, description="tokenizer with the model's chat template (default: the LLM's `model`)")

    def check(self) -> list[Problem]:
        cfg = self.config
        problems = llm_problems(self.ctx, [(cfg.llm, ("llm",)), (cfg.responder, ("responder",))])
        if problems:
            return problems
        try:
            tokenizer = self._tokenizer()
        except UserError as e:
            return [Problem(str(e), ("tokenizer",))]
        whys = [_split_problem(tokenizer, s) for s in cfg.system_prompts]
        if all(whys):
            problems.append(Problem(f"no system prompt variant has a pre-query prefix: {whys[0]}", ("system_prompts",)))
        return problems

    def prepare(self) -> None:
        super().prepare()
        self.llm_config = resolve_llm(self.ctx, self.config.llm)
        self.responder_config = resolve_llm(self.ctx, self.config.responder) if self.config.responder else None

    def apply(self, dataset):
        import ray.data

        cfg = self.config
        tokenizer = self._tokenizer()
        client = make_client(self.llm_config)
        responder = make_client(self.responder_config) if self.responder_config else None
        magpie = Magpie(tokenizer, client, MagpieConfig.of(cfg, seed=self.ctx.seed), responder)
        conversations = []
        try:
            with endpoint_failures_stop_run(self.ctx):
                for start in range(0, cfg.count, cfg.batch_size):
                    conversations += magpie.run(range(start, min(start + cfg.batch_size, cfg.count)))
        finally:
            for c in (client, responder):
                if c is not None:
                    c.close()
        digest = template_digest(tokenizer)
        rows = [self._row(c, digest) for c in conversations]
        self.metrics = _metrics(conversations, cfg)
        return dataset.union(ray.data.from_arrow(table(rows, INSTRUCTION_SCHEMA)))

    def summarize(self, output) -> dict[str, Any]:
        return getattr(self, "metrics", {})

    def _tokenizer(self):
        from transformers import AutoTokenizer

        name = self.config.tokenizer or self.ctx.llm(self.config.llm)["model"]
        try:
            tokenizer = AutoTokenizer.from_pretrained(name)
        except Exception as e:
            raise UserError(f"stage {self.ctx.stage_id}: cannot load the tokenizer '{name}': {' '.join(str(e).split())[:300]}") from None
        if not tokenizer.chat_template:
            raise UserError(f"stage {self.ctx.stage_id}: the tokenizer '{name}' has no chat template (Magpie needs an aligned model's)")
        return tokenizer

    def _row(self, c, digest: str) -> dict:
        meta = {
            "stage": SOURCE, "turns": c.turns, "system_prompt": c.system_prompt, "chat_template": digest,
            "responder": c.responder, "prompt_version": {"query": PRE_QUERY_VERSION, "respond": RESPOND.id},
        }  # fmt: skip
        if c.error:
            meta["error"] = c.error
        row_id = stable_id(SOURCE, self.ctx.stage_id, self.ctx.seed, c.index)
        return instruction_row(row_id, c.messages, c.model, None, SOURCE, meta, c.reason)


def _split_problem(tokenizer, system_prompt: str | None) -> str | None:
    """Why the template has no pre-query point for this variant, or None: a model none of whose
    variants splits is a config mistake, one variant that does not is rows dropped with a reason."""
    try:
        pre_query(tokenizer, [{"role": "system", "content": system_prompt}] if system_prompt else [])
    except TemplateUnsplittable as e:
        return str(e)
    return None


def _metrics(conversations, cfg) -> dict[str, Any]:
    """What became of the conversations: per system prompt variant, and how many turns failed ones made."""
    outcomes = Counter(c.reason or "kept" for c in conversations)
    per_variant = {f"system_prompt {v}": dict(Counter(c.reason or "kept" for c in conversations if c.system_prompt == v))
                   for v in range(len(cfg.system_prompts))}  # fmt: skip
    turns = Counter(c.turns for c in conversations if c.reason)
    return {
        "conversations": cfg.count, "turns": cfg.turns, "outcomes": dict(outcomes), "per_system_prompt": per_variant,
        "plots": [
            {"kind": "bar", "title": "Magpie conversations, by outcome", "x": list(outcomes), "y": list(outcomes.values()),
             "xlabel": "outcome", "ylabel": "conversations"},
            {"kind": "bar", "title": "Magpie: exchanges finished before a conversation failed", "x": sorted(turns),
             "y": [turns[t] for t in sorted(turns)], "xlabel": "exchanges", "ylabel": "conversations"},
        ],
    }  # fmt: skip
