"""Evol-Instruct (Xu et al., WizardLM, 2023): make instructions harder, round after round.

In each of M rounds every instruction of the pool is evolved once by an operation drawn at
random: one of five in-depth rewrites (add constraints, deepen, concretize, increase reasoning
steps, complicate the input) or in-breadth mutation (a new instruction on a rarer topic of the
same domain). The model answers each evolved instruction, and the evolution is eliminated when
  1. it brings no information gain over its parent (the model judges the two equal),
  2. the answer is short (< 80 words) and contains "sorry" (the model could not answer it),
  3. the answer is only punctuation and stop words,
  4. the instruction copies words of the evolving prompt ("given prompt", "#New Instruction#"...).
A failed evolution goes back to the pool: its parent is evolved again in the next round. A
success replaces its parent in the pool, so each seed grows one lineage of up to M evolutions.
"""

from __future__ import annotations

import dataclasses
import random
import re
from collections import Counter
from typing import Literal, Sequence

from pydantic import Field

from generators.client import LLMClient, Request, SamplingParams, request_seed
from generators.structured import StructuredOption
from generators.prompts import EVOL_EQUALITY, EVOL_GIVEN, EVOL_IN_BREADTH, EVOL_IN_DEPTH, EVOL_NEW, RESPOND, Prompt

OPERATIONS: tuple[str, ...] = (*EVOL_IN_DEPTH, "breadth")
Operation = Literal[OPERATIONS]

# The words of the evolving prompt that must not leak into an instruction: the paper's list and
# our own prompt's markers.
COPIED_PROMPT_WORDS = ("given prompt", "rewritten prompt", EVOL_GIVEN.lower(), EVOL_NEW.lower())

# English function words: an answer made only of these and punctuation says nothing.
STOP_WORDS = frozenset(
    """a about above after again against all am an and any are as at be because been before being below
    between both but by can cannot could did do does doing down during each few for from further had has
    have having he her here hers herself him himself his how i if in into is it its itself just let me
    more most my myself no nor not now of off on once only or other ought our ours ourselves out over own
    same she should so some such than that the their theirs them themselves then there these they this
    those through to too under until up very was we were what when where which while who whom why will
    with would you your yours yourself yourselves ok okay yes sure well oh""".split()
)


class EvolOptions(StructuredOption):
    """How instructions evolve and how answers are written: the `evol_instruct` stage's options."""

    rounds: int = Field(default=4, ge=1, description="evolution rounds (M)")
    operations: list[Operation] = Field(default_factory=lambda: list(OPERATIONS), min_length=1,
                                        description="drawn at random for each instruction and round")
    temperature: float = Field(default=0.7, ge=0)
    max_tokens: int = Field(default=1024, ge=16)
    response_temperature: float = Field(default=0.7, ge=0)
    response_max_tokens: int = Field(default=1024, ge=16)
    sorry_max_words: int = Field(default=80, ge=1, description="an answer with 'sorry' shorter than this eliminates")


class EvolConfig(EvolOptions):
    seed: int = 0  # the run's


@dataclasses.dataclass
class Evolution:
    """One evolution attempt. `reason` None: it succeeded and `response` answers `instruction`."""

    id: str
    parent_id: str
    root_id: str
    instruction: str
    operation: str
    round: int
    response: str = ""
    reason: str | None = None
    meta: dict = dataclasses.field(default_factory=dict)


# The formats parsed, for guided decoding (`structured`): a rewrite is text that starts with a letter,
# digit or quote and never writes the prompt's '#' markers; the verdict is one word.
REWRITE_FORMAT = r"[A-Za-z0-9\"'(][^#]{9,3000}"
EQUALITY_FORMAT = r"(Equal|Different)"


def evolve_prompt(operation: str) -> Prompt:
    return EVOL_IN_BREADTH if operation == "breadth" else EVOL_IN_DEPTH[operation]


def copies_prompt_words(instruction: str) -> bool:
    low = instruction.lower()
    return any(w in low for w in COPIED_PROMPT_WORDS)


def is_sorry(response: str, max_words: int = 80) -> bool:
    return "sorry" in response.lower() and len(response.split()) < max_words


def only_punctuation_and_stop_words(response: str) -> bool:
    return all(w in STOP_WORDS for w in re.findall(r"[^\W_]+", response.lower()))


def parse_equality(text: str) -> bool | None:
    """True for 'Equal', False for 'Different'/'Not equal', None when the judge said neither."""
    low = text.strip().lower()
    if re.match(r"\W*(not\s+equal|different|unequal)\b", low):
        return False
    if re.match(r"\W*(equal|same)\b", low):
        return True
    return None


def choose_operation(seed: int, node_id: str, round_no: int, operations: Sequence[str]) -> str:
    """Seeded per instruction and round, so the draw does not depend on batching or workers."""
    return random.Random(f"{seed}:{node_id}:{round_no}").choice(list(operations))


class EvolInstruct:
    def __init__(self, client: LLMClient, config: EvolConfig, responder: LLMClient | None = None):
        self.client = client
        self.responder = responder or client
        self.config = config

    def run(self, items: Sequence[tuple[str, str]]) -> list[Evolution]:
        """Evolve (id, instruction) pairs for the configured rounds; every attempt is returned."""
        pool = {root: (root, text) for root, text in items}  # lineage root -> its current node
        attempts: list[Evolution] = []
        for round_no in range(1, self.config.rounds + 1):
            evolutions = self.evolve_round(pool, round_no)
            for e in evolutions:
                if e.reason is None:
                    pool[e.root_id] = (e.id, e.instruction)
            attempts += evolutions
        return attempts

    def evolve_round(self, pool: dict[str, tuple[str, str]], round_no: int) -> list[Evolution]:
        cfg = self.config
        attempts, requests = [], []
        for root, (node_id, text) in pool.items():
            op = choose_operation(cfg.seed, node_id, round_no, cfg.operations)
            template = evolve_prompt(op)
            attempts.append(
                Evolution(f"{root}.e{round_no}", node_id, root, "", op, round_no, meta={"prompt_version": template.id, "parent": text})
            )
            params = SamplingParams(temperature=cfg.temperature, max_tokens=cfg.max_tokens, seed=request_seed(cfg.seed, node_id, round_no),
                                    guide=cfg.guide(REWRITE_FORMAT))
            requests.append(Request(messages=({"role": "user", "content": template.render(instruction=text)},), params=params))

        for e, r in zip(attempts, self.client.generate(requests)):
            e.meta["model"] = r.model
            e.instruction = r.text.strip()
            e.reason = r.failure() or ("empty" if not e.instruction else None)
            if r.error:
                e.meta["error"] = r.error
            if e.reason is None and copies_prompt_words(e.instruction):
                e.reason = "copied_prompt_words"
        self.judge(a for a in attempts if a.reason is None)
        return attempts

    def judge(self, attempts) -> None:
        """Rules 1-3 need the model: the equality verdict and the answer, requested in one batch each."""
        attempts = list(attempts)
        if not attempts:
            return
        cfg = self.config
        equal_params = SamplingParams(temperature=0.0, max_tokens=8, guide=cfg.guide(EQUALITY_FORMAT))
        eq_requests = [
            Request(messages=({"role": "user", "content": EVOL_EQUALITY.render(first=e.meta["parent"], second=e.instruction)},), params=equal_params)
            for e in attempts
        ]
        answer_requests = [
            Request(
                messages=({"role": "user", "content": RESPOND.render(instruction=e.instruction)},),
                params=SamplingParams(temperature=cfg.response_temperature, max_tokens=cfg.response_max_tokens, seed=request_seed(cfg.seed, e.id, 0)),
            )
            for e in attempts
        ]
        verdicts = self.client.generate(eq_requests)
        answers = self.responder.generate(answer_requests)
        for e, verdict, answer in zip(attempts, verdicts, answers):
            e.meta.update(prompt_version_equality=EVOL_EQUALITY.id, prompt_version_response=RESPOND.id, responder=answer.model)
            e.reason = verdict.failure() or answer.failure("response_truncated")
            if e.reason:
                if verdict.error or answer.error:
                    e.meta["error"] = verdict.error or answer.error
                continue
            equal = parse_equality(verdict.text)
            e.meta["equality_verdict"] = verdict.text.strip()[:100]
            e.response = answer.text.strip()
            if equal:
                e.reason = "no_information_gain"
            elif is_sorry(e.response, cfg.sorry_max_words):
                e.reason = "sorry_response"
            elif only_punctuation_and_stop_words(e.response):
                e.reason = "stop_words_response"


def elimination_counts(attempts: Sequence[Evolution]) -> Counter:
    return Counter(e.reason or "evolved" for e in attempts)
