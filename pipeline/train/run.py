"""`pipeline finetune` end to end: read the run's shards, check, SFT, optional DPO, export with a model card.

Layout of the output directory (default RUN_DIR/finetune):
    adapter/        the final LoRA adapter (adapter_config.json + adapter_model.safetensors) and the
                    tokenizer with its chat template; for method: full, the whole model
    sft_adapter/    the adapter after SFT, when DPO followed
    merged/         base with the adapter merged in (merge: true)
    tokenizer/      the tokenizer as saved before training (what the serving-template check reads)
    logs/           sft.jsonl, dpo.jsonl, sft_samples.jsonl, tensorboard/
    checkpoints/    resumable state; the latest two per phase
    README.md       the model card with data provenance

The run directory, the output and the base model may each be on local disk or in object storage
(`output.Output` says how the libraries that write only local files get there).
"""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import torch

from pipeline import storage
from pipeline.errors import UserError
from pipeline.storage import Location
from pipeline.train.card import write_model_card
from pipeline.train.checks import check_all, check_pad_token
from pipeline.train.config import FinetuneConfig
from pipeline.train.data import ChatEncoder, conversations, preference_pairs, read_records, resolve_paths
from pipeline.train.dpo import encode_pairs, train_dpo
from pipeline.train.loop import barrier, distribute, rank_and_world, unwrap
from pipeline.train.model import load_model, load_tokenizer, local_model
from pipeline.train.output import Output
from pipeline.train.sft import train_sft


def output_dir(cfg: FinetuneConfig, run_dir: Location | str | Path) -> Location:
    return storage.locate(cfg.output) if cfg.output else storage.locate(run_dir) / "finetune"


def split_held_out(items: list, fraction: float, seed: int) -> tuple[list, list]:
    """(train, held_out) by a seeded shuffle; at least one held-out item when a fraction is asked and possible."""
    if fraction <= 0 or len(items) < 2:
        return list(items), []
    g = torch.Generator().manual_seed(seed)
    perm = torch.randperm(len(items), generator=g).tolist()
    n = min(len(items) - 1, max(1, round(fraction * len(items))))
    return [items[i] for i in perm[n:]], [items[i] for i in perm[:n]]


def read_sources(patterns: list[str], default: list[Location], kind: str) -> tuple[list[dict], list[str]]:
    """Rows of `kind` from the given files or the run's default shard directories, and the files that had some."""
    if patterns:
        files = resolve_paths(patterns)
    else:
        files = resolve_paths([d.uri for d in default if d.is_dir()])
    wanted = ("messages",) if kind == "instructions" else ("chosen", "rejected")
    rows, used = [], []
    for f in files:
        found = [r for r in read_records([f]) if all(r.get(k) for k in wanted)]
        rows += found
        used += [str(f)] if found else []
    if not rows:
        where = ", ".join(patterns) if patterns else ", ".join(str(d) for d in default)
        raise UserError(f"no {kind} rows (with {' and '.join(wanted)}) found in {where}")
    return rows, used


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def finetune(cfg: FinetuneConfig, run_dir: Location | str | Path) -> Location:
    """Run SFT then (optionally) DPO as configured; returns the output directory."""
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
    sft_data = dpo_data = None
    if not cfg.skip_sft:
        rows, files = read_sources(cfg.data, defaults, "instructions")
        chats = conversations(rows)
        train_chats, held_chats = split_held_out(chats, cfg.sft.eval_fraction, cfg.seed)
        encoder = ChatEncoder(tokenizer, cfg.sft.max_seq_len)
        train, held = [encoder.encode(c) for c in train_chats], [encoder.encode(c) for c in held_chats]
        sft_data = (encoder, train_chats, train, held, [c[:-1] for c in held_chats])
        provenance["instructions"] = {"rows": len(rows), "files": files, "train": len(train), "held_out": len(held),
                                      "truncated": sum(e.truncated for e in train + held)}
    if cfg.dpo.enabled:
        rows, files = read_sources(cfg.preferences, defaults, "preferences")
        pairs = preference_pairs(rows)
        train_pairs, held_pairs = split_held_out(pairs, cfg.dpo.eval_fraction, cfg.seed)
        encoder = ChatEncoder(tokenizer, cfg.dpo.max_seq_len)
        train, held = encode_pairs(encoder, train_pairs), encode_pairs(encoder, held_pairs)
        dpo_data = (encoder, [p.prompt + p.chosen for p in train_pairs], train, held)
        provenance["preferences"] = {"rows": len(rows), "files": files, "train": len(train), "held_out": len(held),
                                     "truncated": sum(c.truncated or r.truncated for c, r in train + held)}

    model = distribute(load_model(cfg, source=model_path))
    results: dict = {}
    if sft_data:
        encoder, chats, train, held, prompts = sft_data
        _check(encoder, model, chats, train, out)
        history = train_sft(model, tokenizer, train, held, prompts, cfg, out)
        results.update(_final("sft", history))
        if dpo_data and cfg.method != "full":
            save(model, tokenizer, out, "sft_adapter")
    if dpo_data:
        encoder, chats, train, held = dpo_data
        _check(encoder, model, chats, [e for pair in train for e in pair], out)
        history = train_dpo(model, tokenizer, train, held, cfg, out, after_sft=sft_data is not None)
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
                                                  "eval_reward_accuracy"}}
    return {f"{phase}_{k}": round(v, 4) if isinstance(v, float) else v for k, v in keep.items()}
