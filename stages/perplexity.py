"""`perplexity`: score rows by a language model's perplexity and drop the most surprising ones.

What it catches is what heuristics pass: word salad, machine-garbled text and keyword or list
spam are made of ordinary words, but a model of clean text finds them improbable token after
token (CCNet, DCLM). The model is an `llms:` entry whose backend returns prompt log-probs (the
in-process `transformers` backend, or a `vllm_server`, whose prompts are scored without
generating), or a KenLM model file (`kenlm_model:`), much faster on CPUs.

Instruction rows are scored by their response (`view: response`, the default): it is what a model
is trained to write, and an instruction is short, often a fragment, so its perplexity says little.
A document's `view: response` is its text.

The score is stored in `perplexity`. With `max_perplexity` (one number, or a map by the language
stage's `lang` with a `default`) the stage is one map pass, fused with neighbouring CPU stages
when the scorer is KenLM. With `keep_share` it needs every score before it can cut: it scores
once, sums per-batch histograms of log-perplexity into the cut, then drops the rows above it.
"""

from __future__ import annotations

import importlib.util
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
from pydantic import Field, field_validator, model_validator

from filters.perplexity import (above_limit, cut_perplexity, first_tokens, keep_share_cut, limit_for, perplexity,
                                share_histogram, share_score)
from pipeline import storage
from pipeline.errors import UserError
from pipeline.records import View, drop_rows, live_mask, set_column, text_column
from pipeline.registry import register
from pipeline.stage import GlobalStage, MapStage, Problem, Resources, StageConfig

ABOVE_MAX = "perplexity_above_max"
ABOVE_SHARE = "perplexity_above_keep_share"
TOO_SHORT = "perplexity_too_short"  # no text, or one token: nothing to score
LLM_ERROR = "perplexity_llm_error"
DEFAULT_KEEP_SHARE = 0.9
LANGUAGE = "lang"  # the language stage's column
# Backends known not to return prompt log-probs (Ray Data's vLLM processor returns sampled tokens only).
NO_PROMPT_LOGPROBS = {"ray_vllm"}


class PerplexityConfig(StageConfig):
    llm: str | None = Field(None, description="an entry under `llms:` (transformers or vllm_server) whose model scores the text")
    kenlm_model: str | None = Field(None, description="instead, a KenLM model file (.arpa or .binary) on text normalised as CCNet does",
                                    json_schema_extra=storage.READ_ON_EVERY_NODE)
    tokenizer: str | None = Field(
        None, description="the llm's tokenizer (local path or Hub id) for the first-N-token cut; default: the llm's model"
    )
    max_tokens: int = Field(
        512, ge=1, description="score only the first this many tokens of a text (KenLM: words): a text's quality shows "
        "early, and the cost grows with length"
    )
    max_perplexity: float | dict[str, float] | None = Field(
        None, description="drop rows above this perplexity; or a map by language (`lang`) with a `default` for the others"
    )
    keep_share: float | None = Field(
        None, gt=0, le=1, description=f"instead keep this lowest-perplexity share of rows (default {DEFAULT_KEEP_SHARE})"
    )
    view: View = Field("response", description="what to score: an instruction's response (a document's text), or another view")

    @field_validator("max_perplexity")
    @classmethod
    def _positive(cls, value):
        limits = value.values() if isinstance(value, dict) else [] if value is None else [value]
        if any(limit <= 0 for limit in limits):
            raise ValueError("a perplexity limit must be greater than 0")
        return value

    @model_validator(mode="after")
    def _one_scorer_one_rule(self) -> "PerplexityConfig":
        if (self.llm is None) == (self.kenlm_model is None):
            raise ValueError("give llm or kenlm_model (one scorer)")
        if self.tokenizer is not None and self.llm is None:
            raise ValueError("tokenizer is the llm's; KenLM counts words")
        if self.max_perplexity is not None and self.keep_share is not None:
            raise ValueError("give max_perplexity or keep_share, not both")
        return self

    @property
    def share(self) -> float | None:
        """The share to keep, or None when rows are cut at max_perplexity."""
        if self.max_perplexity is not None:
            return None
        return self.keep_share if self.keep_share is not None else DEFAULT_KEEP_SHARE


class PerplexityScorer(MapStage):
    """The map pass: score every row, and apply `max_perplexity` when that is the rule."""

    name = "perplexity"

    def __init__(self, config: PerplexityConfig, ctx, llm_config: dict | None = None):
        super().__init__(config, ctx)
        self.llm_config = llm_config

    def effective_resources(self) -> Resources:
        if self.config.resources:
            return self.config.resources
        if self.config.kenlm_model is not None:  # a CPU map stage like the heuristics, fused with them
            return Resources(num_cpus=1, batch_size=1024)
        return Resources(num_cpus=1, concurrency=1, batch_size=64)  # one client: a server or an in-process model

    def setup(self) -> None:
        if self.config.kenlm_model is not None:
            from filters.perplexity import KenLMScorer

            with storage.local_copy(self.config.kenlm_model) as path:  # KenLM opens only local files
                self.kenlm = KenLMScorer(str(path))
            return
        from generators.factory import make_client

        self.tokenizer = load_tokenizer(self.config.tokenizer or self.llm_config["model"])
        self.client = make_client(self.llm_config)

    def teardown(self) -> None:
        if self.config.kenlm_model is None:
            self.client.close()

    def process_batch(self, batch: pa.Table) -> pa.Table:
        texts = text_column(batch, self.config.view)
        if self.config.kenlm_model is not None:
            scores = [self.kenlm.perplexity(t, self.config.max_tokens) for t in texts]
            reasons = [None if s is not None else TOO_SHORT for s in scores]
        else:
            scores, reasons = self._llm_scores(texts)
        batch = set_column(batch, "perplexity", pa.array(scores, pa.float64()))
        limits = self.config.max_perplexity
        if limits is not None:
            languages = batch.column(LANGUAGE).to_pylist() if LANGUAGE in batch.column_names else [None] * batch.num_rows
            reasons = [r or (ABOVE_MAX if above_limit(s, limit_for(lang, limits)) else None)
                       for r, s, lang in zip(reasons, scores, languages)]
        return drop_rows(batch, reasons)

    def _llm_scores(self, texts: list[str]) -> tuple[list[float | None], list[str | None]]:
        from generators.client import Request, SamplingParams
        from stages.llm_support import endpoint_failures_stop_run

        params = SamplingParams(temperature=0.0, max_tokens=0, prompt_logprobs=True)
        heads = [first_tokens(t, self.tokenizer, self.config.max_tokens) if t.strip() else "" for t in texts]
        todo = [i for i, h in enumerate(heads) if h.strip()]
        with endpoint_failures_stop_run(self.ctx):
            responses = self.client.generate([Request(prompt=heads[i], params=params) for i in todo]) if todo else []
        scores: list[float | None] = [None] * len(texts)
        reasons: list[str | None] = [TOO_SHORT] * len(texts)
        for i, response in zip(todo, responses):
            if response.error:
                reasons[i] = LLM_ERROR
                continue
            logprobs = response.choices[0].prompt_logprobs
            if logprobs is None:
                raise UserError(f"stage {self.ctx.stage_id}: llm '{self.config.llm}' ({response.model}) returned no prompt "
                                "log-probs; use the transformers or vllm_server backend")
            scores[i] = perplexity(logprobs, self.config.max_tokens)
            reasons[i] = None if scores[i] is not None else TOO_SHORT
        return scores, reasons


def load_tokenizer(name: str):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(name, use_fast=True)


@register
class PerplexityStage(GlobalStage):
    """Drop rows a language model finds improbable: above `max_perplexity`, or outside the `keep_share` least perplexing."""

    name = "perplexity"
    Config = PerplexityConfig
    adds = ("perplexity",)
    llm_config: dict | None = None
    threshold: float | None = None  # the keep_share cut, found by apply() and reported by summarize()

    def needs(self) -> tuple[str, ...]:
        return (LANGUAGE,) if isinstance(self.config.max_perplexity, dict) else ()

    def check(self) -> list[Problem]:
        if self.config.kenlm_model is not None:
            why = storage.file_problem(self.config.kenlm_model)
            if why is None and importlib.util.find_spec("kenlm") is None:
                why = "needs the kenlm module: pip install 'instruct-pipeline[kenlm]'"
            return [Problem(f"kenlm_model {why}", ("kenlm_model",))] if why else []
        from stages.llm_support import llm_problems

        problems = llm_problems(self.ctx, [(self.config.llm, ("llm",))])
        backend = self.ctx.llms.get(self.config.llm, {}).get("backend")
        if backend in NO_PROMPT_LOGPROBS:
            problems.append(Problem(f"llm '{self.config.llm}': the {backend} backend returns no prompt log-probs; "
                                    "use transformers or vllm_server", ("llm",)))
        return problems

    def prepare(self) -> None:
        super().prepare()
        if self.config.kenlm_model is not None:
            return
        from stages.llm_support import resolve_llm

        self.llm_config = resolve_llm(self.ctx, self.config.llm)
        name = self.config.tokenizer or self.llm_config["model"]
        try:
            load_tokenizer(name)
        except Exception as e:  # a served name that is no tokenizer: the user names one
            raise UserError(f"stage {self.ctx.stage_id}: cannot load the tokenizer '{name}' for the first-N-token cut "
                            f"({type(e).__name__}); set tokenizer: to the model's local path or Hub id") from None

    def scorer(self) -> PerplexityScorer:
        return PerplexityScorer(self.config, self.ctx, self.llm_config)

    def map_stage(self) -> MapStage | None:
        return self.scorer() if self.config.share is None else None

    def apply(self, dataset):
        scored = self.run_substage(self.scorer(), dataset)
        if self.config.share is None:
            return scored
        scored = scored.materialize()
        cut = keep_share_cut(self.summed_counts(scored, lambda batch: share_histogram(_live_scores(batch))), self.config.share)
        self.threshold = cut_perplexity(cut)
        return scored.map_batches(_cut, fn_args=(cut,), batch_format="pyarrow", batch_size=4096)

    def summarize(self, output) -> dict[str, Any]:
        if self.config.share is not None:
            return {"mode": "keep_share", "keep_share": self.config.share, "max_perplexity": self.threshold}
        return {"mode": "max_perplexity", "max_perplexity": self.config.max_perplexity}


def _live_scores(batch: pa.Table) -> list[float]:
    if "perplexity" not in batch.column_names:
        return []
    return pc.drop_null(batch.column("perplexity").filter(live_mask(batch))).to_pylist()


def _cut(batch: pa.Table, cut: float) -> pa.Table:
    if "perplexity" not in batch.column_names:
        batch = set_column(batch, "perplexity", pa.nulls(batch.num_rows, pa.float64()))
    scores = batch.column("perplexity").to_pylist()
    return drop_rows(batch, [None if s is not None and share_score(s) >= cut else ABOVE_SHARE for s in scores])
