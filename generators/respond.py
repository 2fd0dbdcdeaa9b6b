"""Responses for instructions: one or several samples per conversation, in one batch of requests.

A conversation is answered from its messages up to (not including) its last assistant turn, so an
instruction that already has an answer can be answered again by another model or temperature.
"""

from __future__ import annotations

from typing import Sequence

from pydantic import Field

from generators.client import LLMClient, Request, Response, SamplingParams
from generators.options import Options
from generators.prompts import RESPOND


class RespondOptions(Options):
    """How answers are sampled: the `respond` stage's options."""

    samples: int = Field(default=1, ge=1, description="answers per instruction (one row each when > 1)")
    temperature: float = Field(default=0.7, ge=0)
    top_p: float = Field(default=1.0, gt=0, le=1)
    max_tokens: int = Field(default=1024, ge=1)
    system_prompt: str | None = Field(default=None, description="system turn added to conversations that have none")


class RespondConfig(RespondOptions):
    seed: int | None = None  # the run's


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
