"""Responses for instructions: one or several samples per conversation, in one batch of requests.

A conversation is answered from its messages up to (not including) its last assistant turn, so an
instruction that already has an answer can be answered again by another model or temperature.
Past its first answer, a conversation can go on for `turns` exchanges: a user simulator (an LLM
given the transcript) writes each next user turn and the model answers it, so the rows hold real
multi-turn chats rather than single exchanges. The conversations advance together, one request
batch per step, and one whose simulated turn or answer fails stops there with the reason.
"""

from __future__ import annotations

import dataclasses
import hashlib
from typing import Sequence

from pydantic import Field, field_validator

from generators.client import Choice, LLMClient, Request, Response, SamplingParams
from generators.options import Options
from generators.prompts import RESPOND, USER_SIMULATOR, Prompt


class RespondOptions(Options):
    """How answers are sampled: the `respond` stage's options."""

    samples: int = Field(default=1, ge=1, description="answers per instruction (one row each when > 1)")
    temperature: float = Field(default=0.7, ge=0)
    top_p: float = Field(default=1.0, gt=0, le=1)
    max_tokens: int = Field(default=1024, ge=1)
    system_prompt: str | None = Field(default=None, description="system turn added to conversations that have none")
    turns: int = Field(default=1, ge=1, description="user/assistant exchanges a conversation ends with; a user simulator writes the user turns past the input's")
    simulator_prompt: str | None = Field(
        default=None, description="the user simulator's prompt, with $conversation for the transcript (default: respond.user_simulator@1)"
    )
    simulator_temperature: float = Field(default=0.7, ge=0)
    simulator_max_tokens: int = Field(default=256, ge=1, description="tokens per simulated user turn")

    @field_validator("simulator_prompt")
    @classmethod
    def _has_conversation(cls, text: str | None) -> str | None:
        if text is not None and "$conversation" not in text and "${conversation}" not in text:
            raise ValueError("the simulator prompt must contain $conversation, where the transcript goes")
        return text


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


def respond(client: LLMClient, conversations: Sequence[Sequence[dict]], config: RespondConfig, samples: int | None = None) -> list[Response]:
    """One response per conversation, each with `samples` choices (default `config.samples`)."""
    params = SamplingParams(
        temperature=config.temperature, top_p=config.top_p, max_tokens=config.max_tokens, n=samples or config.samples, seed=config.seed
    )
    requests = [Request(messages=prompt_messages(c, config.system_prompt), params=params) for c in conversations]
    return client.generate(requests) if requests else []


def answer_problem(choice: Choice) -> str | None:
    """Why an answer is not kept: cut by `max_tokens` (worse than none), or empty."""
    return "response_truncated" if choice.finish_reason == "length" else None if choice.text.strip() else "empty_response"


def exchanges(messages: Sequence[dict]) -> int:
    """The finished user/assistant exchanges of a conversation: its answers."""
    return sum(m["role"] == "assistant" for m in messages)


def simulator_prompt(config: RespondConfig) -> Prompt:
    """The user simulator's template; a custom one is versioned by its text's hash."""
    if config.simulator_prompt is None:
        return USER_SIMULATOR
    digest = hashlib.sha256(config.simulator_prompt.encode()).hexdigest()[:12]
    return Prompt(f"{USER_SIMULATOR.name}.custom-{digest}", 1, config.simulator_prompt)


def transcript(messages: Sequence[dict]) -> str:
    """The conversation as the simulator reads it; a system turn is the assistant's, not the user's, to see."""
    heads = {"user": "[User]", "assistant": "[Assistant]"}
    return "\n\n".join(f"{heads[m['role']]}\n{m['content']}" for m in messages if m["role"] in heads)


@dataclasses.dataclass
class Continued:
    """A conversation after its simulated turns: `reason` None means it reached `turns` exchanges."""

    messages: list[dict]
    turns: int
    reason: str | None = None
    error: str | None = None
    simulator: str | None = None
    responder: str | None = None


def continue_conversations(client: LLMClient, simulator: LLMClient, conversations: Sequence[Sequence[dict]],
                           config: RespondConfig) -> list[Continued]:  # fmt: skip
    """Each conversation (ending with an answer) continued to `config.turns` exchanges, in order."""
    template = simulator_prompt(config)
    sim_params = SamplingParams(temperature=config.simulator_temperature, max_tokens=config.simulator_max_tokens,
                                stop=("\n[Assistant]", "\n[User]"), seed=config.seed)  # fmt: skip
    out = [Continued([dict(m) for m in c], exchanges(c)) for c in conversations]
    while active := [c for c in out if c.reason is None and c.turns < config.turns]:
        requests = [Request(messages=({"role": "user", "content": template.render(conversation=transcript(c.messages))},), params=sim_params)
                    for c in active]  # fmt: skip
        for c, r in zip(active, simulator.generate(requests)):
            c.simulator, c.error, text = r.model, r.error, r.text.strip()
            failure = r.failure()
            c.reason = f"simulator_{failure}" if failure else None if text else "empty_user_turn"
            if c.reason is None:
                c.messages.append({"role": "user", "content": text})
        asking = [c for c in active if c.reason is None]
        for c, r in zip(asking, respond(client, [c.messages for c in asking], config, samples=1)):
            c.responder, c.error = r.model, r.error
            c.reason = "llm_error" if r.error else answer_problem(r.choices[0])
            if c.reason is None:
                c.messages.append({"role": "assistant", "content": r.text.strip()})
                c.turns += 1
    return out


PROMPT_VERSION = RESPOND.id
