"""DPO's precomputed reference log-probs, kept in the fine-tune's output so their forward pass is paid once.

A precomputed reference is the policy as DPO starts (the SFT model, or the model before full
fine-tuning): a no-grad forward pass over every training and held-out pair, as much compute as
the forward passes of a whole epoch. Its numbers depend only on the weights, the tokens
and a few settings, so they are stored under a key made of exactly those, and a later run into the
same output (the same command again, a run with another beta or learning rate, a run resumed after
being stopped before its first DPO checkpoint) reads them back. A change to anything in the key
computes them anew and says what changed. The parts of the key:

- base model: the frozen weights, each tensor by name, shape, dtype and its values (tensors over a
  million values by 65,536 of them spread evenly over the tensor: two checkpoints of one
  architecture differ everywhere, so a strided sample tells them apart without hashing gigabytes),
  and the model's config with its attention implementation;
- adapter: the trainable weights as DPO starts (a LoRA adapter whole) and the LoRA settings;
- data: every pair's token ids and targets, in order (tokenizer, chat template and truncation all
  show there);
- precision (as resolved on this device), length normalisation (IPO's mean log-probs) and max_seq_len.

Beta, the loss kind otherwise, learning rate, batch sizes and packing are not in it: they do not
change the reference (packing only within float rounding, which the tests bound).
"""

from __future__ import annotations

import hashlib
import io
import sys

import numpy as np
import torch

from pipeline.checkpoint import fingerprint
from pipeline.storage import Location, first_line
from pipeline.train.config import FinetuneConfig
from pipeline.train.data import Encoded
from pipeline.train.loop import rank_and_world, unwrap
from pipeline.train.model import resolve_precision

FILE = "dpo_reference.pt"
WHOLE = 1 << 20  # tensors up to this many values are hashed whole
SAMPLE = 1 << 16  # values hashed of a larger tensor

Pairs = list[tuple[Encoded, Encoded]]


def key_parts(model, train: Pairs, held_out: Pairs, cfg: FinetuneConfig, device: torch.device) -> dict:
    """What decides the reference log-probs, part by part (so a miss can say which part changed)."""
    net = unwrap(model)
    config = {k: v for k, v in net.config.to_dict().items() if k not in ("_name_or_path", "transformers_version")}
    config["attention"] = getattr(net.config, "_attn_implementation", None)
    return {
        "base model": fingerprint(config, _weights_digest(net, trainable=False)),
        "adapter": fingerprint(cfg.method, cfg.lora.model_dump(mode="json"), _weights_digest(net, trainable=True)),
        "data": _pairs_digest(train, held_out),
        "precision": resolve_precision(cfg, device),
        "length normalisation": cfg.dpo.loss == "ipo",
        "max_seq_len": cfg.dpo.max_seq_len,
    }


def _weights_digest(net, trainable: bool) -> str:
    h = hashlib.sha256()
    with torch.no_grad():
        for name, p in net.named_parameters():
            if p.requires_grad != trainable:
                continue
            h.update(f"{name}:{tuple(p.shape)}:{p.dtype}".encode())
            flat = p.detach().reshape(-1)
            if flat.numel() > WHOLE:
                flat = flat[:: flat.numel() // SAMPLE][:SAMPLE]
            h.update(flat.contiguous().cpu().view(torch.uint8).numpy().tobytes())
    return h.hexdigest()[:32]


def _pairs_digest(train: Pairs, held_out: Pairs) -> str:
    h = hashlib.sha256()
    for split in (train, held_out):
        h.update(f"{len(split)} pairs".encode())
        for pair in split:
            for e in pair:
                h.update(np.asarray([len(e.input_ids), *e.input_ids, *e.targets], dtype=np.int64).tobytes())
    return h.hexdigest()[:32]


def read(location: Location, parts: dict):
    """((train, held_out) references, "") stored under these key parts, or (None, why they are not usable)."""
    if not location.exists():
        return None, "none cached"
    data = location.read_bytes()  # a store that cannot be read is an error of the run, not a cache miss
    try:
        stored = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
        kept, train, held_out = stored["parts"], stored["train"], stored["held_out"]
    except Exception as e:  # noqa: BLE001  a damaged cache only costs computing it again
        return None, f"the kept file is unreadable: {first_line(e)}"
    changed = [name for name in parts if kept.get(name) != parts[name]]
    if changed:
        return None, " and ".join(changed) + " changed"
    return (train, held_out), ""


def write(location: Location, parts: dict, train: torch.Tensor, held_out: torch.Tensor | None) -> None:
    """All at once or not at all (storage's open_write), on disk and in object storage."""
    with location.open_write() as f:
        torch.save({"parts": parts, "train": train, "held_out": held_out}, f)


def references(out_location: Location, model, train: Pairs, held_out: Pairs, cfg: FinetuneConfig, device, compute):
    """(train, held_out) reference log-probs from the output's cache when its key matches; else `compute()`d
    and stored (by rank 0; every worker computes its own copy, as without the cache)."""
    location = out_location / FILE
    parts = key_parts(model, train, held_out, cfg, device)
    found, why = read(location, parts)
    counts = f"{len(train)} pairs" + (f" (+{len(held_out)} held out)" if held_out else "")
    if found:
        _say(f"DPO reference log-probs of {counts} read from {location} (same base model, adapter, data and settings)")
        return found
    train_ref, held_ref = compute()
    if rank_and_world()[0] == 0:
        write(location, parts, train_ref, held_ref)
    _say(f"DPO reference log-probs computed for {counts} ({why}), kept in {location}")
    return train_ref, held_ref


def _say(line: str) -> None:
    if rank_and_world()[0] == 0:
        print(f"finetune: {line}", file=sys.stderr, flush=True)
