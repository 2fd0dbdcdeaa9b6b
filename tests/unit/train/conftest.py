"""A tiny Llama with a tokenizer trained here on the real Self-Instruct seed tasks, built once per session."""

from __future__ import annotations

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


@pytest.fixture(scope="session")
def seed_chats(shared_data):
    return seed_conversations(shared_data)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory, seed_chats):
    from pipeline.train.tiny import build_tiny_model

    texts = [m["content"] for chat in seed_chats for m in chat]
    return build_tiny_model(tmp_path_factory.mktemp("tiny") / "model", texts, vocab_size=2000)
