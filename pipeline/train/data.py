"""From shards to tensors: read conversations, render them with the chat template, mark the tokens to learn.

The one rule that matters: the text is rendered by the tokenizer's chat template exactly as a server
renders it, then tokenized once as a whole, and the labels are found by character offsets. Tokenizing
pieces separately would train on token boundaries that serving never produces.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.utils.checkpoint

from pipeline import storage
from pipeline.errors import UserError

IGNORE = -100


DATA_FILES = (".parquet", ".jsonl", ".jsonl.gz")


def resolve_paths(patterns: list[str]) -> list[storage.Location]:
    """Files as named, and the Parquet and JSONL files of folders and globs (a run's shard folders hold
    other files too, such as a dataset card), on any storage, in a stable order."""
    files = []
    for pattern in patterns:
        found = storage.expand([pattern], "data")
        if found != [storage.locate(pattern)]:
            found = [f for f in found if f.name.endswith(DATA_FILES)]
        if not found:
            raise UserError(f"data: no Parquet or JSONL file in '{pattern}'")
        files.extend(found)
    return files


def read_records(paths: list[storage.Location | str | Path]) -> list[dict]:
    """Rows of Parquet or JSONL(.gz) files as dicts, from local disk or object storage."""
    rows: list[dict] = []
    for location in map(storage.locate, paths):
        try:
            if location.suffix == ".parquet":
                import pyarrow.parquet as pq

                rows.extend(pq.read_table(location.path, filesystem=location.fs).to_pylist())
            elif location.name.endswith((".jsonl", ".jsonl.gz", ".json")):
                with storage.open_text(location) as f:
                    rows.extend(json.loads(line) for line in f if line.strip())
            else:
                raise UserError(f"{location}: unsupported data file (expected .parquet, .jsonl or .jsonl.gz)")
        except OSError as e:
            raise UserError(f"{location}: {storage.first_line(e)}") from None
    return rows


def conversations(rows: list[dict], source: str = "data") -> list[list[dict]]:
    """The `messages` of instruction rows, checked for the fields the template needs."""
    chats = []
    for i, row in enumerate(rows):
        messages = row.get("messages")
        if not messages:
            raise UserError(f"{source}: row {i} has no 'messages' list (expected instruction records)")
        if not any(m.get("role") == "assistant" for m in messages):
            raise UserError(f"{source}: row {i} ({row.get('id', '?')}) has no assistant turn to learn from")
        chats.append([{"role": m["role"], "content": m["content"] or ""} for m in messages])
    return chats


@dataclass
class PreferencePair:
    prompt: list[dict]
    chosen: list[dict]
    rejected: list[dict]


def preference_pairs(rows: list[dict], source: str = "preferences") -> list[PreferencePair]:
    """Preference rows (`prompt`, `chosen`, `rejected` message lists) with the shared prompt split off.

    `chosen`/`rejected` may hold the continuation only or the whole conversation; a repeated prompt
    prefix is removed. A row without `prompt` (whole dialogues only) gets the common prefix as prompt.
    """
    pairs = []
    for i, row in enumerate(rows):
        chosen, rejected = row.get("chosen"), row.get("rejected")
        if not chosen or not rejected:
            raise UserError(f"{source}: row {i} needs non-empty 'chosen' and 'rejected' message lists")
        prompt = row.get("prompt")
        if prompt is None:
            n = 0
            while n < min(len(chosen), len(rejected)) - 1 and chosen[n] == rejected[n]:
                n += 1
            prompt = chosen[:n]
        if chosen[: len(prompt)] == prompt:
            chosen = chosen[len(prompt) :]
        if rejected[: len(prompt)] == prompt:
            rejected = rejected[len(prompt) :]
        if not prompt or not chosen or not rejected:
            raise UserError(f"{source}: row {i} has an empty prompt or response after splitting off the prompt")
        pairs.append(PreferencePair(list(prompt), list(chosen), list(rejected)))
    return pairs


_HH_TURN = re.compile(r"\n\n(Human|Assistant): ")


def hh_dialogue_to_messages(dialogue: str) -> list[dict]:
    """Anthropic HH-RLHF's `\\n\\nHuman: ... \\n\\nAssistant: ...` text as chat messages."""
    parts = _HH_TURN.split(dialogue)
    roles = {"Human": "user", "Assistant": "assistant"}
    return [{"role": roles[who], "content": text.strip()} for who, text in zip(parts[1::2], parts[2::2])]


def seed_task_chats(path: str | Path) -> list[list[dict]]:
    """Self-Instruct seed tasks as single-turn chats (instruction + input -> output), one per instance."""
    from generators.self_instruct import load_seed_tasks

    return [
        [{"role": "user", "content": task.instruction + (f"\n\n{inst['input']}" if inst.get("input") else "")},
         {"role": "assistant", "content": inst["output"]}]
        for task in load_seed_tasks(path)
        for inst in task.instances
    ]


def hh_rlhf_rows(path: str | Path, limit: int | None = None) -> list[dict]:
    """HH-RLHF's pairs.jsonl(.gz) rows as {chosen, rejected} message lists (preference_pairs splits the prompt)."""
    rows = []
    for pair in read_records([Path(path)]):
        rows.append({k: hh_dialogue_to_messages(pair[k]) for k in ("chosen", "rejected")})
        if len(rows) == limit:
            break
    return rows


@dataclass
class Encoded:
    """One tokenized example. `targets[t]` is the token to predict after position t, or IGNORE.

    Shifting per example (not per packed row) keeps the last token of one example from being
    trained to predict the first token of the next.
    """

    input_ids: list[int]
    targets: list[int]
    truncated: bool = False
    missing_end_of_turn: bool = False

    @property
    def n_targets(self) -> int:
        return sum(t != IGNORE for t in self.targets)


class ChatEncoder:
    """Renders conversations with one chat template and labels the assistant turns, end-of-turn included."""

    def __init__(self, tokenizer, max_seq_len: int):
        if not tokenizer.chat_template:
            raise UserError("the tokenizer has no chat template; pass one with --chat-template or finetune.chat_template")
        self.tokenizer = tokenizer
        self.max_seq_len = max_seq_len
        self.end_of_turn_id = self._find_end_of_turn()

    def render(self, messages: list[dict], add_generation_prompt: bool = False) -> str:
        return self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=add_generation_prompt)

    def _find_end_of_turn(self) -> int | None:
        """The first special token the template puts after an assistant message's content."""
        marker = "Zq7 marker reply"
        text = self.render([{"role": "user", "content": "hi"}, {"role": "assistant", "content": marker}])
        tail = text[text.rindex(marker) + len(marker) :]
        special = set(self.tokenizer.all_special_ids)
        return next((t for t in self.tokenizer.encode(tail, add_special_tokens=False) if t in special), None)

    def assistant_spans(self, messages: list[dict]) -> tuple[str, list[tuple[int, int]]]:
        """The rendered text and the character span of every assistant turn (after its header)."""
        text = self.render(messages)
        spans = []
        for i, message in enumerate(messages):
            if message["role"] != "assistant":
                continue
            before = self.render(messages[:i], add_generation_prompt=True)
            through = self.render(messages[: i + 1])
            if not (text.startswith(before) and text.startswith(through)):
                raise UserError(
                    "the chat template renders a conversation's prefix differently from the whole "
                    "(e.g. it rewrites earlier turns); assistant tokens cannot be located"
                )
            spans.append((len(before), len(through)))
        return text, spans

    def encode(self, messages: list[dict], first_labelled_turn: int = 0) -> Encoded:
        """Tokens and targets; only assistant turns from `first_labelled_turn` on are learned (DPO: the responses)."""
        text, spans = self.assistant_spans(messages)
        assistant_turns = [i for i, m in enumerate(messages) if m["role"] == "assistant"]
        spans = [s for s, i in zip(spans, assistant_turns) if i >= first_labelled_turn]
        enc = self.tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
        ids, offsets = enc["input_ids"], enc["offset_mapping"]
        labels = [IGNORE] * len(ids)
        missing = False
        t = 0
        for start, end in spans:
            while t < len(ids) and offsets[t][0] < start:
                t += 1
            closed = False
            while t < len(ids) and offsets[t][0] < end and not closed:
                labels[t] = ids[t]
                closed = ids[t] == self.end_of_turn_id
                t += 1
            missing |= not closed
        truncated = len(ids) > self.max_seq_len
        ids, labels = ids[: self.max_seq_len], labels[: self.max_seq_len]
        return Encoded(ids, labels[1:] + [IGNORE], truncated, missing)


def to_device(tensor: torch.Tensor, device: torch.device) -> torch.Tensor:
    """A host tensor on the device without waiting for the device: a plain copy to a GPU synchronises the
    stream first (torch's copy without non_blocking), a copy from pinned memory does not."""
    if torch.device(device).type != "cuda":
        return tensor.to(device)
    return tensor.pin_memory().to(device, non_blocking=True)


@dataclass
class Batch:
    """A micro batch on its way to the model. Packed: one row, position ids restart per example.

    A packed row has no attention mask; `cu_seqlens` (each example's start, then the row's end) and
    `longest` travel to the attention instead, which keeps the examples apart: variable-length kernels
    read them as they are (no device sync to find them), sdpa and eager get a block-diagonal mask that
    transformers builds from the restarting position ids.
    """

    input_ids: torch.Tensor
    position_ids: torch.Tensor
    attention_mask: torch.Tensor | None
    targets: torch.Tensor
    example_index: torch.Tensor  # for every target token, which example of the batch it belongs to
    n_examples: int
    target_positions: torch.Tensor  # flat index (row * width + column) of every target token, in order
    cu_seqlens: torch.Tensor | None = None  # packed only: int32 [n_examples + 1]
    longest: int = 0  # packed only: the longest example's length

    @property
    def n_targets(self) -> int:
        return self.target_positions.numel()

    def to(self, device) -> Batch:
        move = lambda t: None if t is None else to_device(t, device)  # noqa: E731
        return Batch(move(self.input_ids), move(self.position_ids), move(self.attention_mask), move(self.targets),
                     move(self.example_index), self.n_examples, move(self.target_positions), move(self.cu_seqlens),
                     self.longest)


def collate(examples: list[Encoded], packing: bool, pad_id: int) -> Batch:
    """Concatenate (packing) or right-pad a list of encoded examples into one micro batch."""
    cu_seqlens, longest = None, 0
    if packing:
        ids = torch.tensor([t for e in examples for t in e.input_ids]).unsqueeze(0)
        pos = torch.cat([torch.arange(len(e.input_ids)) for e in examples]).unsqueeze(0)
        targets = torch.tensor([t for e in examples for t in e.targets]).unsqueeze(0)
        owner = torch.cat([torch.full((len(e.input_ids),), i) for i, e in enumerate(examples)]).unsqueeze(0)
        mask = None
        lengths = [len(e.input_ids) for e in examples]
        cu_seqlens = torch.tensor([0, *lengths], dtype=torch.int32).cumsum(0, dtype=torch.int32)
        longest = max(lengths)
    else:
        width = max(len(e.input_ids) for e in examples)
        pad = lambda seq, value: seq + [value] * (width - len(seq))  # noqa: E731
        ids = torch.tensor([pad(e.input_ids, pad_id) for e in examples])
        targets = torch.tensor([pad(e.targets, IGNORE) for e in examples])
        mask = torch.tensor([pad([1] * len(e.input_ids), 0) for e in examples])
        pos = torch.arange(width).expand(len(examples), -1).contiguous()
        owner = torch.arange(len(examples)).unsqueeze(1).expand(-1, width)
    keep = targets != IGNORE
    return Batch(ids, pos, mask, targets, owner[keep], len(examples), keep.reshape(-1).nonzero().reshape(-1),
                 cu_seqlens, longest)


class MicroBatchOrder:
    """Which examples form the k-th micro batch: a fresh seeded shuffle per epoch, so any position is replayable.

    Resuming needs only the micro batch counter; the order never depends on what ran before.
    """

    def __init__(self, n_examples: int, micro_batch_size: int, seed: int):
        if n_examples == 0:
            raise UserError("no training examples")
        self.n, self.size, self.seed = n_examples, micro_batch_size, seed
        self.per_epoch = -(-n_examples // micro_batch_size)
        self._epoch, self._perm = -1, None

    def __call__(self, k: int) -> list[int]:
        epoch, i = divmod(k, self.per_epoch)
        if epoch != self._epoch:
            g = torch.Generator().manual_seed(self.seed + epoch)
            self._epoch, self._perm = epoch, torch.randperm(self.n, generator=g).tolist()
        return self._perm[i * self.size : (i + 1) * self.size]


# The log-probabilities of target tokens are computed over the vocabulary this many logits at a time
# (2^26 fp32 = 256 MiB: 512 tokens of a 128k vocabulary), never as one [tokens, vocab] tensor.
CHUNK_LOGITS = 1 << 26

# Causal LMs whose logits are exactly lm_head(final hidden state), nothing after it (no soft-capping or
# logit scaling as in Gemma 2, Cohere or Granite): the chunked loss may apply the head itself.
PLAIN_HEAD_MODELS = frozenset({"llama", "mistral", "mixtral", "qwen2", "qwen2_moe", "qwen3", "qwen3_moe", "phi3",
                               "gemma", "olmo", "olmo2", "smollm3", "starcoder2"})


def token_logps(model, batch: Batch, chunk_logits: int = CHUNK_LOGITS) -> torch.Tensor:
    """Log-probability of every target token (flattened, in order), the one computation every loss goes through.

    The model runs up to its final hidden states only (its LM head is asked for no position); the head
    and the log-softmax then run over chunks of target tokens, each chunk's logits recomputed in the
    backward pass instead of kept, so memory holds one chunk of [tokens, vocab] logits at a time.
    Small batches are one chunk, computed exactly as a plain forward would.
    """
    core = _causal_lm(model)
    kwargs = {}
    if batch.cu_seqlens is not None:  # the names transformers' flash attention reads; others ignore them
        kwargs = {"cu_seq_lens_q": batch.cu_seqlens, "cu_seq_lens_k": batch.cu_seqlens,
                  "max_length_q": batch.longest, "max_length_k": batch.longest}
    targets = batch.targets.reshape(-1).index_select(0, batch.target_positions)
    if getattr(core.config, "model_type", None) not in PLAIN_HEAD_MODELS:
        # The model's own logits; of the target positions only when they are columns of a single row.
        one_row = batch.input_ids.shape[0] == 1
        out = model(input_ids=batch.input_ids, position_ids=batch.position_ids, attention_mask=batch.attention_mask,
                    logits_to_keep=batch.target_positions if one_row else 0, use_cache=False, **kwargs)
        logits = out.logits.reshape(-1, out.logits.shape[-1])
        logits = logits if one_row else logits.index_select(0, batch.target_positions)
        return -torch.nn.functional.cross_entropy(logits.float(), targets, reduction="none")
    captured = []
    hook = core.get_decoder().register_forward_hook(lambda module, args, out: captured.append(out[0]))
    try:
        model(input_ids=batch.input_ids, position_ids=batch.position_ids, attention_mask=batch.attention_mask,
              logits_to_keep=batch.target_positions[:0], use_cache=False, **kwargs)
    finally:
        hook.remove()
    hidden = captured[-1].reshape(-1, captured[-1].shape[-1]).index_select(0, batch.target_positions)
    return _chunked_logps(core.get_output_embeddings(), hidden, targets, chunk_logits)


def _causal_lm(model):
    """The transformers model under a DDP or peft wrapper (peft's LoRA layers live inside it)."""
    model = getattr(model, "module", model)
    return model.get_base_model() if hasattr(model, "get_base_model") else model


def _chunked_logps(head, hidden: torch.Tensor, targets: torch.Tensor, chunk_logits: int) -> torch.Tensor:
    rows = max(1, chunk_logits // head.weight.shape[0])
    if hidden.shape[0] <= rows:
        return _logps(head, hidden, targets)
    recompute = torch.is_grad_enabled()
    pieces = []
    for start in range(0, hidden.shape[0], rows):
        h, t = hidden[start : start + rows], targets[start : start + rows]
        if recompute:
            pieces.append(torch.utils.checkpoint.checkpoint(_logps, head, h, t, use_reentrant=False))
        else:
            pieces.append(_logps(head, h, t))
    return torch.cat(pieces)


def _logps(head, hidden: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    return -torch.nn.functional.cross_entropy(head(hidden).float(), targets, reduction="none")
