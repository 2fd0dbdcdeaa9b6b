"""The `finetune:` section: every knob of the trainer, validated, with the defaults a first run should use.

The same model serves the YAML section and `pipeline finetune`'s flags, so a command line run and a
config file run cannot drift apart.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class LoraSection(_Section):
    rank: int = Field(16, ge=1, description="LoRA rank r.")
    alpha: float = Field(32.0, gt=0, description="LoRA scaling numerator (scale = alpha / r, or alpha / sqrt(r) with rslora).")
    dropout: float = Field(0.0, ge=0, lt=1, description="Dropout on the LoRA input.")
    target_modules: list[str] | Literal["all-linear"] = Field(
        "all-linear", description="Module names to adapt; 'all-linear' = every linear layer of the blocks (not the LM head)."
    )
    rslora: bool = Field(False, description="Rank-stabilised LoRA: scale by alpha / sqrt(r), which keeps large ranks stable.")


class SftSection(_Section):
    epochs: float = Field(1.0, gt=0, description="Passes over the training examples (fractions allowed).")
    max_steps: int | None = Field(None, ge=1, description="Optimizer steps; overrides epochs when set.")
    micro_batch_size: int = Field(4, ge=1, description="Examples per forward pass.")
    grad_accum: int = Field(4, ge=1, description="Micro batches per optimizer step.")
    learning_rate: float = Field(2e-4, gt=0)
    weight_decay: float = Field(0.0, ge=0)
    warmup_ratio: float = Field(0.03, ge=0, lt=1, description="Share of the steps spent warming the learning rate up from 0.")
    schedule: Literal["cosine", "linear", "constant"] = "cosine"
    max_grad_norm: float | None = Field(1.0, gt=0, description="Gradient clipping; null to disable.")
    max_seq_len: int = Field(2048, ge=8, description="Longer examples are truncated (counted in the logs).")
    packing: bool = Field(True, description="Concatenate a micro batch into one row, no padding, no attention across examples.")
    eval_fraction: float = Field(0.05, ge=0, lt=1, description="Share of examples held out for the eval loss.")
    eval_every: int = Field(50, ge=1, description="Optimizer steps between eval-loss measurements.")
    sample_every: int = Field(100, ge=1, description="Optimizer steps between sample generations on held-out prompts.")
    sample_prompts: int = Field(2, ge=0, description="Held-out prompts to generate from at each sampling.")
    checkpoint_every: int = Field(100, ge=1, description="Optimizer steps between resumable checkpoints.")


class DpoSection(_Section):
    enabled: bool = Field(False, description="Run DPO on the preference shards after SFT.")
    loss: Literal["sigmoid", "ipo", "hinge"] = "sigmoid"
    beta: float = Field(0.1, gt=0, description="Strength of the KL tie to the reference model.")
    reference: Literal["auto", "adapter_disabled", "precomputed"] = Field(
        "auto",
        description="adapter_disabled: the base under the LoRA adapter (one model in memory, no extra pass); "
        "precomputed: log-probs of the policy as DPO starts, computed once (after SFT, or for full fine-tuning); "
        "auto: precomputed, which starting from the base gives adapter_disabled's numbers without its forward pass "
        "at every step, and is kept on disk for the next run (reference_cache).",
    )
    epochs: float = Field(1.0, gt=0)
    max_steps: int | None = Field(None, ge=1)
    micro_batch_size: int = Field(2, ge=1, description="Preference pairs per forward pass.")
    grad_accum: int = Field(4, ge=1)
    learning_rate: float = Field(5e-6, gt=0)
    warmup_ratio: float = Field(0.1, ge=0, lt=1)
    schedule: Literal["cosine", "linear", "constant"] = "linear"
    max_grad_norm: float | None = Field(1.0, gt=0)
    max_seq_len: int = Field(2048, ge=8)
    packing: bool = Field(True, description="Concatenate a micro batch's chosen and rejected sequences into one row, "
                          "no padding, no attention across sequences; false pads one sequence per row.")
    eval_fraction: float = Field(0.05, ge=0, lt=1)
    eval_every: int = Field(50, ge=1)
    checkpoint_every: int = Field(100, ge=1)


class EvalSection(_Section):
    """`pipeline eval`'s settings: the same model serves its flags and the `finetune: {eval: ...}` section
    that evaluates base against fine-tuned after training."""

    enabled: bool = Field(False, description="Evaluate base against fine-tuned after training (finetune section only).")
    tasks: list[str] = Field(
        ["held_out"], min_length=1,
        description="held_out (exact match on the run's held-out prompts), benchmarks with a local copy under "
        "benchmarks_dir (gsm8k, mmlu), or lm-eval task names (from the Hub).",
    )
    benchmarks_dir: str | None = Field(
        None, description="Local benchmark copies in decontaminate's layout (gsm8k/, mmlu/, ...); default "
        "$PIPELINE_BENCHMARKS_DIR.",
    )
    limit: int | None = Field(None, ge=1, description="Items per task (the first ones); null: all.")
    batch_size: int = Field(8, ge=1, description="Requests per forward pass in lm-eval.")
    max_new_tokens: int = Field(64, ge=1, description="Longest answer generated for a held-out prompt.")
    prompts: str | None = Field(
        None, description="A JSONL/Parquet file of prompts (`messages` or `prompt`) instead of the held-out split."
    )
    judge: dict | None = Field(
        None, exclude=True,  # never dumped: the model card shows the settings, and a judge may carry an API key
        description="An LLM config (as an `llms:` entry) that judges base against tuned answers to the "
        "held-out prompts, in both orders; null: no judge.",
    )
    judge_max_tokens: int = Field(256, ge=8, description="Tokens the judge may write per verdict.")

    @field_validator("tasks")
    @classmethod
    def _distinct(cls, tasks: list[str]) -> list[str]:
        dup = sorted({t for t in tasks if tasks.count(t) > 1})
        if dup:
            raise ValueError(f"task {dup[0]!r} is named twice")
        return tasks

    @model_validator(mode="after")
    def _judged_answers(self) -> EvalSection:
        if self.judge is not None and "held_out" not in self.tasks:
            raise ValueError("judge compares the answers to the held_out task's prompts: add held_out to tasks")
        return self

    @field_validator("judge")
    @classmethod
    def _an_llm(cls, judge: dict | None) -> dict | None:
        if judge is not None:
            from generators.llm_config import parse_llm_config

            parse_llm_config(judge)  # a bad backend or field is a config error at load, not after training
        return judge


class FinetuneConfig(_Section):
    model: str = Field(..., description="Base model: a local path or a Hugging Face id.")
    method: Literal["lora", "qlora", "full"] = Field("lora", description="qlora needs a CUDA GPU and bitsandbytes.")
    lora: LoraSection = LoraSection()
    sft: SftSection = SftSection()
    dpo: DpoSection = DpoSection()
    skip_sft: bool = Field(False, description="Go straight to DPO (the base is already instruction-tuned).")
    chat_template: str | None = Field(None, description="A Jinja chat template replacing the tokenizer's (saved with the output).")
    precision: Literal["auto", "bf16", "fp16", "fp32"] = Field(
        "auto",
        description="dtype of the frozen weights and of the matmuls (LoRA weights and optimizer state stay fp32); "
        "auto: bf16 on GPUs that support it, fp16 (with loss scaling) on GPUs that do not, fp32 on CPU.",
    )
    attention: Literal["auto", "varlen", "sdpa", "flash_attention_2", "eager"] = Field(
        "auto",
        description="varlen: packed rows through torch's variable-length flash kernel (CUDA, 16-bit weights; on CPU "
        "one attention call per example); "
        "sdpa/eager: transformers' mask; auto: flash_attention_2 if flash-attn is installed, else varlen, on a GPU "
        "with 16-bit weights; sdpa otherwise.",
    )
    gradient_checkpointing: bool = Field(False, description="Recompute activations in the backward pass to save memory.")
    merge: bool = Field(False, description="Also save the base with the adapter merged in (output/merged).")
    seed: int = 0
    data: list[str] = Field(
        default_factory=list, description="Instruction files or globs; default: the run's data/*.parquet."
    )
    preferences: list[str] = Field(
        default_factory=list, description="Preference files or globs; default: the run's preferences/*.parquet."
    )
    documents: list[str] = Field(
        default_factory=list,
        description="Document files or globs (rows with `text`, e.g. a web-curation run's data/*.parquet), trained in "
        "the SFT phase with the language-modelling objective; document rows in `data` are trained so too.",
    )
    document_token_ratio: float | None = Field(
        None, gt=0, lt=1,
        description="Share of the SFT target tokens that come from documents when mixed with instruction rows "
        "(documents sampled or repeated to reach it); null: every document once.",
    )
    output: str | None = Field(None, description="Where the adapter, logs and card go; default: OUTPUT_DIR/finetune.")
    resume: bool = Field(True, description="Continue from the latest checkpoint in the output directory if there is one.")
    num_workers: int = Field(1, ge=1, description="Ray Train workers (DDP); 1 runs in this process.")
    use_gpu: bool = Field(False, description="Train on CUDA: one GPU per worker (NCCL); else one CPU per worker (gloo).")
    eval: EvalSection = EvalSection()

    @model_validator(mode="after")
    def _consistent(self) -> FinetuneConfig:
        if self.skip_sft and not self.dpo.enabled:
            raise ValueError("skip_sft without dpo.enabled leaves nothing to train")
        if self.method == "full" and self.precision == "fp16":
            raise ValueError("method: full with precision: fp16 would update fp16 weights without fp32 master copies, "
                             "which loses small updates; use bf16 or fp32")
        if self.skip_sft and self.documents:
            raise ValueError("documents are trained in the SFT phase, which skip_sft skips")
        return self
