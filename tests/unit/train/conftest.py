"""A tiny Llama with a tokenizer trained here on the real Self-Instruct seed tasks, built once per session."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def seed_chats(shared_data):
    from pipeline.train.data import seed_task_chats

    return seed_task_chats(shared_data / "seeds" / "self_instruct" / "seed_tasks.jsonl")


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory, seed_chats):
    from pipeline.train.tiny import build_tiny_model

    texts = [m["content"] for chat in seed_chats for m in chat]
    return build_tiny_model(tmp_path_factory.mktemp("tiny") / "model", texts, vocab_size=2000)


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
