"""Teach the tiny local Llama the shapes of our generation prompts, from the Self-Instruct seed tasks.

A random-weight model writes byte soup until `max_tokens`, so a run against it rejects every
proposal and evolution, and the paths that accept them never run. A few minutes of full
fine-tuning with our own SFT loop fixes that. Every training prompt is rendered by the generators'
own code (the exact text a run sends) and answered with a plausible completion made of other seed
tasks: the next items of a numbered task list, Yes/No, Input/Output instances, a rewritten
instruction, Equal/Different, a seed's answer. Each completion ends with the model's stop token.
The model's text is then word-like and in the right shape, and the real rules decide what
survives (a proposal that copies a seed is still dropped as `rouge_similar`).

Raw-completion prompts (Self-Instruct's) are few-shot text in the very format the model must
write, so their whole text is learned, as in pretraining: each prompt shows the format several
times over, and the completion and EOS once more. The prompt is tokenized apart from its
completion, as a server tokenizes a prompt and then generates. Chats go through `ChatEncoder` and
the saved template, and only the assistant turn is learned.
"""

from __future__ import annotations

import dataclasses
import random
import tempfile
from collections import Counter
from pathlib import Path
from typing import Sequence

from generators.evol_instruct import OPERATIONS, evolve_prompt
from generators.prompts import EVOL_EQUALITY, RESPOND
from generators.self_instruct import SeedTask, SelfInstruct, SelfInstructConfig, format_instances, numbered_list, one_line
from pipeline.train.data import IGNORE, ChatEncoder, Encoded

# What an in-depth rewrite appends to the original (our own words, 5 to 20 of them, as the prompt asks).
EVOLVED_ADDITIONS = {
    "add_constraints": (
        "Answer in no more than 50 words.", "Use a numbered list in your answer.",
        "Do not use any technical terms.", "Give exactly three options and explain each one.",
    ),
    "deepen": (
        "Also explain why this matters and give one example.", "Discuss the causes as well as the effects.",
        "Compare it with at least one alternative.",
    ),
    "concretize": (
        "Use the example of a small bakery that opened last year.", "Focus on students in their first year of college.",
        "Think of a family of four living in a large city.",
    ),
    "increase_reasoning": (
        "Reason step by step and show each step before the final answer.",
        "First list the facts you need, then combine them to reach a conclusion.",
    ),
    "complicate_input": (
        "Use this table: | item | price |, | apple | 2 |, | pear | 3 |.",
        'Work with this JSON object: {"name": "Ada", "age": 36, "city": "London"}.',
    ),
}  # fmt: skip


# Instances longer than this are left out: they cost the most to learn and teach no format.
MAX_INSTANCES_CHARS = 600
# The final loss reported is the mean over this many last steps (one step's loss is too noisy).
LOSS_WINDOW = 100
# Few-shot examples for the classification and instance prompts come from this many random seeds.
FEW_SHOT_POOL = 24


@dataclasses.dataclass
class Example:
    """One training example: a raw `prompt` and its `completion`, or a chat whose last turn is learned."""

    kind: str
    prompt: str | None = None
    completion: str | None = None
    messages: list[dict] | None = None


def user_turn(task: SeedTask, instance: dict) -> str:
    """An instance as a user message, as the self_instruct stage writes its rows."""
    return task.instruction + (f"\n\n{instance['input']}" if instance.get("input") else "")


def evolve(task: SeedTask, operation: str, others: Sequence[SeedTask], rng: random.Random) -> str:
    if operation == "breadth":
        return rng.choice([t for t in others if t is not task]).instruction
    return f"{task.instruction} {rng.choice(EVOLVED_ADDITIONS[operation])}"


def teaching_examples(seeds: Sequence[SeedTask], copies: int = 3, seed: int = 0) -> list[Example]:
    """`copies` passes over the seeds, each with its own draws of shown tasks, few-shot examples and operations."""
    rng = random.Random(seed)
    out: list[Example] = []
    for copy in range(copies):
        algo = SelfInstruct(None, seeds, SelfInstructConfig(seed=seed + copy))
        for n, task in enumerate(seeds):
            # Self-Instruct: continue the numbered list with 1-4 tasks not shown, then stop.
            prompt = algo.propose_prompt()
            unseen = [t.instruction for t in seeds if one_line(t.instruction) not in prompt]
            more = rng.sample(unseen, rng.choice((1, 2, 2, 3, 4)))
            next_number = prompt.rsplit("\n", 1)[1]  # the prompt ends with the next item's "N."
            out.append(Example("propose", prompt, numbered_list(more, int(next_number[:-1]))[len(next_number):]))
            # Few-shot examples as a run with any seed set and seed would pick them, so the model reads
            # the format rather than learning one fixed prefix.
            shots = SelfInstruct(None, rng.sample(seeds, FEW_SHOT_POOL), SelfInstructConfig(seed=rng.randrange(2**31)))
            if task.is_classification is not None and rng.random() < 0.3:  # long prompts, one-token answers
                out.append(Example("classify", shots.classification_prompt(task.instruction), " Yes" if task.is_classification else " No"))
            instances = format_instances(task.instances[:2], bool(task.is_classification))
            if task.instances and len(instances) <= MAX_INSTANCES_CHARS:
                out.append(Example("instances", shots.instances_prompt(task.instruction, bool(task.is_classification)), instances))
            # Evol-Instruct: a rewrite, the equality verdict on it (sometimes on an unchanged copy), an answer.
            op = OPERATIONS[(n + copy) % len(OPERATIONS)]
            evolved = evolve(task, op, seeds, rng)
            out.append(_chat("evolve", evolve_prompt(op).render(instruction=task.instruction), evolved))
            same = rng.random() < 0.2
            verdict = EVOL_EQUALITY.render(first=task.instruction, second=task.instruction if same else evolved)
            out.append(_chat("equality", verdict, "Equal" if same else "Different"))
            if task.instances:
                instance = rng.choice(task.instances)
                out.append(_chat("respond", RESPOND.render(instruction=user_turn(task, instance)), instance["output"]))
                if op != "breadth" and rng.random() < 0.5:
                    out.append(_chat("respond", RESPOND.render(instruction=evolved), instance["output"]))
    rng.shuffle(out)
    return out


def _chat(kind: str, user: str, assistant: str) -> Example:
    return Example(kind, messages=[{"role": "user", "content": user}, {"role": "assistant", "content": assistant}])


def encode(examples: Sequence[Example], tokenizer, max_seq_len: int) -> list[Encoded]:
    """Chats through the chat template (the assistant turn learned); raw prompt + completion + EOS learned whole."""
    chat = ChatEncoder(tokenizer, max_seq_len)
    out = []
    for ex in examples:
        if ex.messages is not None:
            out.append(chat.encode(ex.messages))
            continue
        ids = tokenizer.encode(ex.prompt, add_special_tokens=False) + tokenizer.encode(ex.completion, add_special_tokens=False)
        ids.append(tokenizer.eos_token_id)
        out.append(Encoded(ids[:max_seq_len], (ids[1:] + [IGNORE])[:max_seq_len], len(ids) > max_seq_len))
    return out


def teach(model_dir: Path, seeds: Sequence[SeedTask], steps: int = 1200, seed: int = 0, copies: int = 3,
          learning_rate: float = 2e-3, micro_batch_size: int = 4, max_seq_len: int = 1024) -> dict:
    """Fully fine-tune the model saved in `model_dir` in place on the teaching examples; returns a summary."""
    import torch

    from pipeline.train.config import FinetuneConfig
    from pipeline.train.model import load_model, load_tokenizer
    from pipeline.train.output import Output
    from pipeline.train.run import seed_everything
    from pipeline.train.sft import train_sft

    cfg = FinetuneConfig(
        model=str(model_dir), method="full", seed=seed, resume=False,
        sft={"max_steps": steps, "micro_batch_size": micro_batch_size, "grad_accum": 1, "learning_rate": learning_rate,
             "warmup_ratio": 0.05, "schedule": "cosine", "max_seq_len": max_seq_len, "packing": True,
             "eval_fraction": 0.0, "sample_prompts": 0, "checkpoint_every": steps},
    )  # fmt: skip
    # One thread: the same float sums on any machine, and on a shared, busy CPU it runs faster than two.
    torch.set_num_threads(1)
    seed_everything(seed)
    tokenizer = load_tokenizer(cfg)
    examples = teaching_examples(seeds, copies, seed)
    train = encode(examples, tokenizer, max_seq_len)
    model = load_model(cfg)
    with tempfile.TemporaryDirectory(prefix="tiny-teacher-") as work:
        history = train_sft(model, tokenizer, train, [], [], cfg, Output(work))
    model.save_pretrained(model_dir, safe_serialization=True)  # the tokenizer and its template stay as built
    return {
        "steps": steps, "seed": seed, "copies": copies, "learning_rate": learning_rate,
        "examples": dict(Counter(e.kind for e in examples)), "truncated": sum(e.truncated for e in train),
        "first_loss": round(history[0]["loss"], 4),
        "final_loss": round(sum(h["loss"] for h in history[-LOSS_WINDOW:]) / len(history[-LOSS_WINDOW:]), 4),
    }  # fmt: skip
