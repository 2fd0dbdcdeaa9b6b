"""Magpie (Xu et al., 2024): instructions sampled from an aligned model with no prompt of ours.

An aligned model has learned what follows its chat template's user header, so sending only the
text a conversation has before a user message (the pre-query prefix) to the completion endpoint
makes it write a user's request, which it then answers through the chat endpoint. The prefix is
read from the model's own tokenizer: a conversation ending in a sentinel user message is rendered
and cut at the sentinel, so every template family works without a hard-coded string per family,
and a template the cut cannot handle is a reason on the row, never a wrong prompt. The same cut
after a finished exchange gives the prefix of the next user turn, so conversations of N turns
alternate sampled user turns and chat answers.
"""

from __future__ import annotations

import dataclasses
import hashlib
from typing import Sequence

from pydantic import Field

from generators.client import LLMClient, Request, SamplingParams, request_seed
from generators.options import Options
from generators.prompts import RESPOND

# How the pre-query prefix is cut from the template; rows record it, and it changes when the cut does.
PRE_QUERY_VERSION = "magpie.pre_query@1"

# Two user messages no template rewrites and no conversation contains: the text around one must
# be the text around the other, or the template's cut depends on what the user wrote.
SENTINEL = "MAGPIESENTINELq7Zx"
SECOND_SENTINEL = "MAGPIE SENTINEL two k3Wv"  # another length and a space, so a template reading either shows


class TemplateUnsplittable(ValueError):
    """The chat template has no clean point where a user message starts."""


@dataclasses.dataclass(frozen=True)
class PreQuery:
    prefix: str  # the text sent to the completion endpoint
    stop: str  # what the template writes after a user message: the end of the sampled instruction
    stop_token_ids: tuple[int, ...]  # its id when `stop` is one special token (a server strips it from text)


def render(tokenizer, messages: Sequence[dict], add_generation_prompt: bool = False) -> str:
    return tokenizer.apply_chat_template(list(messages), tokenize=False, add_generation_prompt=add_generation_prompt)


def pre_query(tokenizer, history: Sequence[dict]) -> PreQuery:
    """The prefix after which the model writes the next user message of `history` (system and
    earlier turns, or nothing), and the end-of-turn text that stops it.

    A leading BOS is dropped when the tokenizer adds one itself, as the completion endpoint does
    when it tokenizes a prompt: kept, the model would see two and read an input it never saw.
    """
    try:
        text = render(tokenizer, [*history, {"role": "user", "content": SENTINEL}])
        other = render(tokenizer, [*history, {"role": "user", "content": SECOND_SENTINEL}])
    except Exception as e:  # a template refuses a conversation (e.g. a system turn) by raising
        raise TemplateUnsplittable(f"the chat template refuses the conversation: {e}") from None
    if text.count(SENTINEL) != 1:
        raise TemplateUnsplittable("the chat template does not write a user message once, verbatim")
    prefix, suffix = text.split(SENTINEL)
    if other != prefix + SECOND_SENTINEL + suffix:
        raise TemplateUnsplittable("the text the chat template writes around a user message depends on the message")
    stop = end_of_turn(tokenizer, suffix)
    return PreQuery(_without_added_bos(tokenizer, prefix), stop, _special_token_ids(tokenizer, stop))


def end_of_turn(tokenizer, suffix: str) -> str:
    """What closes a user message: the special token it starts with (`<|eot_id|>`, `<|im_end|>`),
    or else its first word (`[/INST]` where that is plain text)."""
    rest = suffix.lstrip()
    if not rest:
        raise TemplateUnsplittable("the chat template writes nothing after a user message to end its turn")
    special = [t for t in tokenizer.all_special_tokens if t and rest.startswith(t)]
    return max(special, key=len) if special else rest.split()[0]


def _special_token_ids(tokenizer, text: str) -> tuple[int, ...]:
    """The id of `text` when it is one special token: the server stops on the token itself, which the
    text of a completion never shows; a plain-text end of turn (`[/INST]`) is matched as text."""
    if text not in tokenizer.all_special_tokens:
        return ()
    token_id = tokenizer.convert_tokens_to_ids(text)
    return (token_id,) if isinstance(token_id, int) and token_id != tokenizer.unk_token_id else ()


def _without_added_bos(tokenizer, prefix: str) -> str:
    bos = tokenizer.bos_token
    if not bos or not prefix.startswith(bos):
        return prefix
    ids = tokenizer("x")["input_ids"]
    return prefix[len(bos) :] if ids and ids[0] == tokenizer.bos_token_id else prefix


def template_digest(tokenizer) -> str:
    """A short hash of the chat template: rows made through different templates can be told apart."""
    return hashlib.sha256((tokenizer.chat_template or "").encode()).hexdigest()[:12]


class MagpieOptions(Options):
    """How conversations are sampled: the `magpie` stage's options."""

    count: int = Field(default=100, ge=1, description="conversations to generate")
    turns: int = Field(default=1, ge=1, description="user/assistant exchanges per conversation")
    system_prompts: list[str | None] = Field(
        default_factory=lambda: [None], min_length=1,
        description="system prompt variants, taken in turn by the conversations (null: no system turn)",
    )  # fmt: skip
    temperature: float = Field(default=1.0, ge=0, description="instruction sampling (the paper samples at 1.0)")
    top_p: float = Field(default=1.0, gt=0, le=1)
    max_tokens: int = Field(default=256, ge=1, description="tokens per sampled user turn")
    response_temperature: float = Field(default=0.7, ge=0)
    response_max_tokens: int = Field(default=1024, ge=1)
    batch_size: int = Field(default=64, ge=1, description="conversations generated together, one request batch per turn")


class MagpieConfig(MagpieOptions):
    seed: int = 0  # the run's


@dataclasses.dataclass
class Conversation:
    """One conversation and its fate: `reason` None means it reached `turns` exchanges."""

    index: int
    system_prompt: int  # which variant of `system_prompts`
    messages: list[dict]
    reason: str | None = None
    turns: int = 0  # finished exchanges
    model: str | None = None  # that wrote the user turns
    responder: str | None = None
    error: str | None = None


class Magpie:
    def __init__(self, tokenizer, client: LLMClient, config: MagpieConfig, responder: LLMClient | None = None):
        self.tokenizer = tokenizer
        self.client = client
        self.responder = responder or client
        self.config = config

    def run(self, indices: Sequence[int]) -> list[Conversation]:
        """Conversations number `indices` (their system prompt and seeds follow from the number)."""
        cfg = self.config
        conversations = []
        for i in indices:
            variant = i % len(cfg.system_prompts)
            system = cfg.system_prompts[variant]
            conversations.append(Conversation(i, variant, [{"role": "system", "content": system}] if system else []))
        for turn in range(1, cfg.turns + 1):
            self.ask([c for c in conversations if c.reason is None], turn)
            self.answer([c for c in conversations if c.reason is None], turn)
        return conversations

    def ask(self, conversations: list[Conversation], turn: int) -> None:
        """Sample each conversation's next user turn from its pre-query prefix."""
        cfg = self.config
        asking, requests = [], []
        for c in conversations:
            try:
                query = pre_query(self.tokenizer, c.messages)
            except TemplateUnsplittable as e:
                c.reason, c.error = "template_unsplittable", str(e)
                continue
            params = SamplingParams(temperature=cfg.temperature, top_p=cfg.top_p, max_tokens=cfg.max_tokens,
                                    stop=(query.stop,), stop_token_ids=query.stop_token_ids, seed=request_seed(cfg.seed, f"magpie.{c.index}.query", turn))  # fmt: skip
            asking.append(c)
            requests.append(Request(prompt=query.prefix, params=params))
        for c, r in zip(asking, self.client.generate(requests) if requests else []):
            c.model, c.error = r.model, r.error
            text = r.text.strip()
            c.reason = r.failure("instruction_truncated") or (None if text else "empty_instruction")
            if c.reason is None:
                c.messages.append({"role": "user", "content": text})

    def answer(self, conversations: list[Conversation], turn: int) -> None:
        cfg = self.config
        requests = [
            Request(messages=tuple(_answer_prompt(c.messages)),
                    params=SamplingParams(temperature=cfg.response_temperature, max_tokens=cfg.response_max_tokens,
                                          seed=request_seed(cfg.seed, f"magpie.{c.index}.response", turn)))
            for c in conversations
        ]  # fmt: skip
        for c, r in zip(conversations, self.responder.generate(requests) if requests else []):
            c.responder, c.error = r.model, r.error
            text = r.text.strip()
            c.reason = r.failure("response_truncated") or (None if text else "empty_response")
            if c.reason is None:
                c.messages.append({"role": "assistant", "content": text})
                c.turns = turn


def _answer_prompt(messages: list[dict]) -> list[dict]:
    """The conversation as the responder sees it, its last user turn through the `respond` template."""
    *before, last = messages
    return [*before, {"role": "user", "content": RESPOND.render(instruction=last["content"])}]


