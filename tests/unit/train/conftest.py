"""A tiny Llama with a tokenizer trained here on the real Self-Instruct seed tasks, built once per session."""

from __future__ import annotations

import gzip
import json

import pytest


def seed_conversations(shared_data) -> list[list[dict]]:
    """The 175 human-written seed tasks as single-turn chats: instruction (+ input) -> output."""
    chats = []
    path = shared_data / "seeds" / "self_instruct" / "seed_tasks.jsonl"
    for line in path.read_text().splitlines():
        task = json.loads(line)
        for instance in task["instances"]:
            prompt = task["instruction"] + (f"\n\n{instance['input']}" if instance["input"] else "")
            chats.append([{"role": "user", "content": prompt}, {"role": "assistant", "content": instance["output"]}])
    return chats


def hh_pairs(shared_data, limit: int) -> list[dict]:
    """The first `limit` HH-RLHF harmless pairs as {chosen, rejected} message lists."""
    from pipeline.train.data import hh_dialogue_to_messages

    rows = []
    with gzip.open(shared_data / "preferences" / "hh_rlhf_harmless" / "pairs.jsonl.gz", "rt") as f:
        for line in f:
            pair = json.loads(line)
            rows.append({k: hh_dialogue_to_messages(pair[k]) for k in ("chosen", "rejected")})
            if len(rows) == limit:
                break
    return rows


@pytest.fixture(scope="session")
def seed_chats(shared_data):
    return seed_conversations(shared_data)


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
