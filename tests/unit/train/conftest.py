"""The trainer's test configs, on the tiny model of tests/unit/conftest.py."""

from __future__ import annotations

import pytest


@pytest.fixture
def make_config(tiny_model_dir):
    """FinetuneConfig for fast CPU tests: short sequences, no eval/sampling/checkpoints unless asked."""
    from pipeline.train.config import FinetuneConfig

    def make(sft=None, dpo=None, **top):
        sft_defaults = {"max_seq_len": 128, "micro_batch_size": 4, "grad_accum": 1, "eval_fraction": 0.0,
                        "sample_prompts": 0, "checkpoint_every": 10_000, "warmup_ratio": 0.0, "max_grad_norm": None}
        dpo_defaults = {"max_seq_len": 128, "eval_fraction": 0.0, "checkpoint_every": 10_000, "warmup_ratio": 0.0,
                        "max_grad_norm": None}
        return FinetuneConfig(model=str(tiny_model_dir), sft={**sft_defaults, **(sft or {})},
                              dpo={**dpo_defaults, **(dpo or {})}, **top)

    return make
