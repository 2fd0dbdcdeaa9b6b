"""`pipeline finetune` end to end: read the run's shards, check, SFT, optional DPO, export with a model card.

Layout of the output directory (default RUN_DIR/finetune):
    adapter/        the final LoRA adapter (adapter_config.json + adapter_model.safetensors) and the
                    tokenizer with its chat template; for method: full, the whole model
    sft_adapter/    the adapter after SFT, when DPO followed
    merged/         base with the adapter merged in (merge: true)
    tokenizer/      the tokenizer as saved before training (what the serving-template check reads)
    logs/           sft.jsonl, dpo.jsonl, sft_samples.jsonl, tensorboard/
    checkpoints/    resumable state; the latest two per phase
    dpo_reference.pt  DPO's precomputed reference log-probs and the key they were computed under
    README.md       the model card with data provenance

The run directory, the output and the base model may each be on local disk or in object storage
(`output.Output` says how the libraries that write only local files get there).
"""

from __future__ import annotations

import json
import random
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from pipeline import storage
from pipeline.errors import UserError
from pipeline.quiet import quiet_libraries
from pipeline.storage import Location
from pipeline.train.card import TRACKING, write_model_card
from pipeline.train.checks import check_all, check_pad_token, check_untrained_embeddings
from pipeline.train.config import FinetuneConfig
from pipeline.train.data import ChatEncoder, Encoded, conversations, preference_pairs, read_records, resolve_paths
from pipeline.train.documents import OBJECTIVE, DocumentEncoder, is_document, mix, require_text_column
from pipeline.train.dpo import encode_pairs, train_dpo
from pipeline.train.loop import barrier, distribute, rank_and_world, unwrap
from pipeline.train.model import load_model, load_tokenizer, local_model
from pipeline.train.output import Output
from pipeline.train.sft import train_sft
from pipeline.train.split import Split, split_by_lineage


def output_dir(cfg: FinetuneConfig, run_dir: Location | str | Path) -> Location:
    return storage.locate(cfg.output) if cfg.output else storage.locate(run_dir) / "finetune"


def read_files(patterns: list[str], default: list[Location]) -> list[tuple[Location, list[dict]]]:
    """Every data file of the given patterns, or of the run's default shard directories, with its rows."""
    files = resolve_paths(patterns) if patterns else resolve_paths([d.uri for d in default if d.is_dir()])
    return [(f, read_records([f])) for f in files]


def read_preferences(patterns: list[str], default: list[Location]) -> tuple[list[dict], list[str]]:
    """Preference rows from the given files or the run's default shard directories, and the files that had some."""
    rows, used = [], []
    for f, records in read_files(patterns, default):
        found = [r for r in records if r.get("chosen") and r.get("rejected")]
        rows += found
        used += [str(f)] if found else []
    if not rows:
        where = ", ".join(patterns) if patterns else ", ".join(str(d) for d in default)
        raise UserError(f"no preferences rows (with chosen and rejected) found in {where}")
    return rows, used


def same_item(messages: list[dict]) -> str:
    """What makes two conversations the same item: their prompt (every turn before the last answer)."""
    last = max((i for i, m in enumerate(messages) if m["role"] == "assistant"), default=len(messages))
    return json.dumps(messages[:last], sort_keys=True)


@dataclass
class SftData:
    """What the SFT phase trains on: conversations (with the chat encoder that rendered them) and documents."""

    train: list[Encoded]
    held_out: list[Encoded]
    prompts: list[list[dict]]  # held-out prompts for sample generations
    encoder: ChatEncoder | None = None
    chats: list[list[dict]] = field(default_factory=list)  # training conversations, for the checks
    chat_examples: list[Encoded] = field(default_factory=list)
    document_windows: list[Encoded] = field(default_factory=list)


def sft_data(cfg: FinetuneConfig, tokenizer, defaults: list[Location], provenance: dict) -> SftData:
    """Conversations and documents for SFT, each split by lineage, documents mixed in at the asked token share.

    Rows with `messages` are conversations; rows with `text` and no `messages` (a web-curation run's
    shards) are documents, as is every row of `documents:`. Other rows are skipped and counted.
    """
    s = cfg.sft
    chat_rows, doc_rows, chat_files, doc_files, skipped = [], [], [], [], 0
    for f, records in read_files(cfg.data, defaults):
        chats_here = [r for r in records if r.get("messages")]
        docs_here = [r for r in records if is_document(r)]
        chat_rows += chats_here
        doc_rows += docs_here
        skipped += len(records) - len(chats_here) - len(docs_here)
        chat_files += [str(f)] if chats_here else []
        doc_files += [str(f)] if docs_here else []
    for f, records in read_files(cfg.documents, []):
        require_text_column(f, records)
        docs_here = [r for r in records if is_document(r)]
        doc_rows += docs_here
        skipped += len(records) - len(docs_here)
        doc_files += [str(f)] if docs_here else []
    if not chat_rows and not doc_rows:
        where = ", ".join(cfg.data + cfg.documents) or ", ".join(str(d) for d in defaults)
        raise UserError(f"no instruction rows (with messages) or documents (with text) found in {where}")
    if cfg.document_token_ratio is not None and not (chat_rows and doc_rows):
        have = "instruction rows" if chat_rows else "documents"
        raise UserError(f"document_token_ratio mixes documents with instruction rows, but the data has only {have}")

    data = SftData([], [], [])
    if chat_rows:
        chats = conversations(chat_rows)
        split = split_by_lineage(chat_rows, [same_item(c) for c in chats], s.eval_fraction, cfg.seed)
        data.encoder = ChatEncoder(tokenizer, s.max_seq_len)
        encoded = [data.encoder.encode(c) for c in chats]
        train, held = answered(encoded, split.train), answered(encoded, split.held_out)
        if not train:
            raise UserError(f"none of the {len(split.train)} training conversations has an answer token within "
                            f"sft.max_seq_len = {s.max_seq_len} tokens: raise it (--max-seq-len)")
        data.chats = [chats[i] for i in train]
        data.chat_examples = [encoded[i] for i in train]
        data.prompts = [chats[i][:-1] for i in held]
        data.train, data.held_out = list(data.chat_examples), [encoded[i] for i in held]
        provenance["instructions"] = {
            "rows": len(chat_rows), "files": chat_files, **_sides(split),
            "truncated": sum(encoded[i].truncated for i in split.train + split.held_out),
            "left_out": len(split.train) + len(split.held_out) - len(train) - len(held),
        }  # fmt: skip
        say_left_out("conversations", provenance["instructions"], f"sft.max_seq_len = {s.max_seq_len}")
    if doc_rows:
        encoder = DocumentEncoder(tokenizer, s.max_seq_len)
        texts = [r["text"] for r in doc_rows]
        split = split_by_lineage(doc_rows, texts, s.eval_fraction, cfg.seed)
        windows = [w for i in split.train for w in encoder.encode(texts[i])]
        held_windows = [w for i in split.held_out for w in encoder.encode(texts[i])]
        train_mix = mix(data.train, windows, cfg.document_token_ratio, cfg.seed)
        held_mix = mix(data.held_out, held_windows, cfg.document_token_ratio, cfg.seed)
        data.document_windows = train_mix.windows
        data.train += train_mix.windows
        data.held_out += held_mix.windows
        provenance["documents"] = {
            "rows": len(doc_rows), "files": doc_files, **_sides(split), "objective": OBJECTIVE,
            "windows": len(windows), "max_seq_len": s.max_seq_len, "asked_token_ratio": cfg.document_token_ratio,
            "document_target_tokens": train_mix.document_tokens, "instruction_target_tokens": train_mix.instruction_tokens,
            "token_share": round(train_mix.share, 4), "passes": round(train_mix.passes, 3),
        }  # fmt: skip
    if skipped:
        provenance["skipped_rows"] = skipped
    return data


def answered(examples: list[Encoded], indices: list[int]) -> list[int]:
    """The examples that keep a target token: one cut at the length limit before its answer began
    would cost a forward pass and teach nothing (a run of only those trained on a loss of 0)."""
    return [i for i in indices if examples[i].n_targets]


def say_left_out(kind: str, info: dict, limit: str) -> None:
    if info["left_out"] and rank_and_world()[0] == 0:
        print(f"finetune: {info['left_out']} of {info['train'] + info['held_out']} {kind} left out: "
              f"cut at {limit} tokens before an answer", file=sys.stderr)


def _sides(split: Split) -> dict:
    return {"train": len(split.train), "held_out": len(split.held_out), **split.summary()}


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def finetune(cfg: FinetuneConfig, run_dir: Location | str | Path) -> Location:
    """Run SFT then (optionally) DPO as configured; returns the output directory."""
    quiet_libraries()  # in every worker: the step lines say what matters
    run_dir = storage.locate(run_dir)
    with Output(output_dir(cfg, run_dir)) as out, local_model(cfg.model) as model:
        _finetune(cfg, model, run_dir, out)
    return out.location


def _finetune(cfg: FinetuneConfig, model_path: str, run_dir: Location, out: Output) -> None:
    """The run, with the base model readable at `model_path` (cfg.model itself unless it was downloaded)."""
    seed_everything(cfg.seed)
    tokenizer = load_tokenizer(cfg, model_path)
    check_pad_token(tokenizer)
    if rank_and_world()[0] == 0:  # one writer; every worker's serving-template check reads it back
        tokenizer.save_pretrained(out.local / "tokenizer")
        out.publish("tokenizer")
    barrier()
    defaults = [run_dir / "data", run_dir / "preferences"]

    # Read and check all the data before spending time on training.
    provenance: dict = {}
    sft = dpo_data = None
    if not cfg.skip_sft:
        sft = sft_data(cfg, tokenizer, defaults, provenance)
    if cfg.dpo.enabled:
        rows, files = read_preferences(cfg.preferences, defaults)
        pairs = preference_pairs(rows)
        split = split_by_lineage(rows, [json.dumps(p.prompt, sort_keys=True) for p in pairs], cfg.dpo.eval_fraction, cfg.seed)
        encoder = ChatEncoder(tokenizer, cfg.dpo.max_seq_len)
        train_pairs, held_pairs = [pairs[i] for i in split.train], [pairs[i] for i in split.held_out]
        train, held = encode_pairs(encoder, train_pairs), encode_pairs(encoder, held_pairs)
        truncated = sum(c.truncated or r.truncated for c, r in train + held)
        keep = [k for k, (c, r) in enumerate(train) if c.n_targets and r.n_targets]  # both responses reach the model
        held = [(c, r) for c, r in held if c.n_targets and r.n_targets]
        if not keep:
            raise UserError(f"none of the {len(train)} training preference pairs has both responses within "
                            f"dpo.max_seq_len = {cfg.dpo.max_seq_len} tokens: raise it (--set dpo.max_seq_len=N)")
        left_out = len(train) + len(split.held_out) - len(keep) - len(held)
        train, train_pairs = [train[k] for k in keep], [train_pairs[k] for k in keep]
        dpo_data = (encoder, [p.prompt + p.chosen for p in train_pairs], train, held)
        provenance["preferences"] = {"rows": len(rows), "files": files, **_sides(split), "truncated": truncated,
                                     "left_out": left_out}
        say_left_out("preference pairs", provenance["preferences"], f"dpo.max_seq_len = {cfg.dpo.max_seq_len}")

    model = distribute(load_model(cfg, source=model_path))
    results: dict = {}
    if sft:
        if sft.encoder:
            _check(sft.encoder, model, sft.chats, sft.chat_examples, out)
        if sft.document_windows:
            check_untrained_embeddings(unwrap(model), tokenizer, sft.document_windows)
        history = train_sft(model, tokenizer, sft.train, sft.held_out, sft.prompts, cfg, out)
        results.update(_final("sft", history))
        if dpo_data and cfg.method != "full":
            save(model, tokenizer, out, "sft_adapter")
    if dpo_data:
        encoder, chats, train, held = dpo_data
        _check(encoder, model, chats, [e for pair in train for e in pair], out)
        history = train_dpo(model, tokenizer, train, held, cfg, out)
        results.update(_final("dpo", history))

    save(model, tokenizer, out, "adapter")
    if cfg.merge and cfg.method != "full" and rank_and_world()[0] == 0:
        save(unwrap(model).merge_and_unload(), tokenizer, out, "merged")
    if rank_and_world()[0] == 0:
        write_model_card(out.location / "adapter", cfg, run_dir, provenance, results)


def _check(encoder: ChatEncoder, model, chats: list, examples: list, out: Output) -> None:
    """The checks before training, with the tokenizer as saved in the output, as a server would load it."""
    with storage.local_copy(out.location / "tokenizer") as saved_tokenizer:
        check_all(encoder, unwrap(model), chats, examples, saved_tokenizer)


def save(model, tokenizer, out: Output, name: str) -> None:
    """Adapter (or full model) as safetensors, with the tokenizer and its chat template beside it."""
    if rank_and_world()[0] != 0:
        return
    unwrap(model).save_pretrained(out.local / name, safe_serialization=True)
    tokenizer.save_pretrained(out.local / name)
    out.publish(name)


def _final(phase: str, history: list[dict]) -> dict:
    if not history:
        return {}
    last = history[-1]
    keep = {k: v for k, v in last.items() if k in {"step", "loss", "eval_loss", "reward_accuracy", "margin",
                                                  "eval_reward_accuracy", *TRACKING} and v is not None}
    return {f"{phase}_{k}": round(v, 4) if isinstance(v, float) else v for k, v in keep.items()}
