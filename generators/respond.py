"""Responses for instructions: one or several samples per conversation, in one batch of requests.

A conversation is answered from its messages up to (not including) its last assistant turn, so an
instruction that already has an answer can be answered again by another model or temperature.
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

from generators.client import LLMClient, Request, Response, SamplingParams
from generators.prompts import RESPOND


@dataclasses.dataclass
class RespondConfig:
    samples: int = 1
    temperature: float = 0.7
    top_p: float = 1.0
    max_tokens: int = 1024
    system_prompt: str | None = None
    seed: int | None = None


def prompt_messages(messages: Sequence[dict], system_prompt: str | None = None) -> tuple[dict, ...]:
    """The turns a response continues: everything before the trailing assistant turn(s)."""
    turns = list(messages)
    while turns and turns[-1]["role"] == "assistant":
        turns.pop()
    if system_prompt and not any(m["role"] == "system" for m in turns):
        turns.insert(0, {"role": "system", "content": system_prompt})
    return tuple({"role": m["role"], "content": m["content"]} for m in turns)


def respond(client: LLMClient, conversations: Sequence[Sequence[dict]], config: RespondConfig) -> list[Response]:
    """One response per conversation, each with `config.samples` choices."""
    params = SamplingParams(
        temperature=config.temperature, top_p=config.top_p, max_tokens=config.max_tokens, n=config.samples, seed=config.seed
    )
    requests = [Request(messages=prompt_messages(c, config.system_prompt), params=params) for c in conversations]
    return client.generate(requests) if requests else []


PROMPT_VERSION = RESPOND.id
