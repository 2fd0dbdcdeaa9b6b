"""Training on curated documents: the language-modelling objective, alone or mixed with conversations.

A web-curation run's shards hold documents (`text`, no `messages`); training on them continues the
base model's pretraining on the domain the pipeline curated. Every token of a document is a target.
A document longer than the sequence limit is cut into windows rather than truncated, so none of
its text is lost: consecutive windows share one token, which makes every token after the first
the target of exactly one position.

Mixed with instruction rows, the documents' share is set in target tokens (the tokens the loss
averages over: every token of a document, the assistant tokens of a conversation), since those
decide how much of each step's gradient comes from each kind of data.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from pipeline.errors import UserError
from pipeline.train.data import IGNORE, Encoded

OBJECTIVE = "language modelling (every token of a document is a target)"


def is_document(row: dict) -> bool:
    """A curated document row: text to learn, and no conversation."""
    return not row.get("messages") and isinstance(row.get("text"), str) and bool(row["text"].strip())


def require_text_column(file, rows: list[dict]) -> None:
    """A file given as documents must be document rows; anything else is a mistake in the config."""
    if not any("text" in row for row in rows):
        raise UserError(f"documents: {file} has no 'text' column (expected document rows, such as a "
                        "web-curation run's data/*.parquet)")


class DocumentEncoder:
    """A document as token windows of at most `max_seq_len`: BOS, the text, EOS, as the base was pretrained."""

    def __init__(self, tokenizer, max_seq_len: int):
        self.tokenizer = tokenizer
        self.max_seq_len = max_seq_len

    def encode(self, text: str) -> list[Encoded]:
        t = self.tokenizer
        ids = [t.bos_token_id] if t.bos_token_id is not None else []
        ids += t(text, add_special_tokens=False)["input_ids"]
        ids += [t.eos_token_id] if t.eos_token_id is not None else []
        stride = self.max_seq_len - 1
        return [
            Encoded(ids[start : start + self.max_seq_len], ids[start + 1 : start + self.max_seq_len] + [IGNORE])
            for start in range(0, max(len(ids) - 1, 1), stride)
        ]


@dataclass
class Mixture:
    """The document windows chosen for one side of the split, and what the model card says about them."""

    windows: list[Encoded]
    document_tokens: int
    instruction_tokens: int
    passes: float  # how many times the documents' tokens are seen per epoch (below 1: a sample)

    @property
    def share(self) -> float:
        return self.document_tokens / max(self.document_tokens + self.instruction_tokens, 1)


def mix(instructions: list[Encoded], windows: list[Encoded], ratio: float | None, seed: int) -> Mixture:
    """Windows to train beside `instructions` so that documents hold `ratio` of the target tokens.

    Without a ratio (or without instructions to mix with) every window is used once. With one, the
    windows are taken in a seeded order, repeated when more tokens are needed than the documents
    have, and the last one taken is cut to the exact number of tokens still missing.
    """
    instruction_tokens = sum(e.n_targets for e in instructions)
    available = sum(w.n_targets for w in windows)
    if ratio is None or not instructions or not windows:
        return Mixture(list(windows), available, instruction_tokens, 1.0 if windows else 0.0)
    wanted = round(ratio / (1 - ratio) * instruction_tokens)
    chosen, taken, epoch = [], 0, 0
    while taken < wanted:
        g = torch.Generator().manual_seed(seed + epoch)
        for i in torch.randperm(len(windows), generator=g).tolist():
            window, missing = windows[i], wanted - taken
            if window.n_targets > missing:
                window = _cut(window, missing)
            chosen.append(window)
            taken += window.n_targets
            if taken >= wanted:
                break
        epoch += 1
    return Mixture(chosen, taken, instruction_tokens, taken / max(available, 1))


def _cut(window: Encoded, n_targets: int) -> Encoded:
    """The first `n_targets` targets of a window (its inputs up to the last of them)."""
    return Encoded(window.input_ids[: n_targets + 1], window.targets[:n_targets] + [IGNORE])
