"""A tiny Llama with a tokenizer trained here on the real Self-Instruct seed tasks, built once per session.

Here rather than beside one folder's tests: the trainer's tests (train/) train it and tiny_models/ tests it.
"""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def seed_chats(shared_data):
    from pipeline.train.data import seed_task_chats

    return seed_task_chats(shared_data / "seeds" / "self_instruct" / "seed_tasks.jsonl")


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory, seed_chats):
    from tiny_models.llama import build_tiny_model

    texts = [m["content"] for chat in seed_chats for m in chat]
    return build_tiny_model(tmp_path_factory.mktemp("tiny") / "model", texts, vocab_size=2000)
