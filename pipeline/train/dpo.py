"""Direct Preference Optimization: push the policy's log-prob margin of chosen over rejected past the reference's.

A pair's chosen and rejected responses are encoded as two examples and packed with the rest of the
micro batch into one row (`dpo.packing`, as SFT packs), so a DPO step is one forward pass with no
padding. The reference is either the same network with the LoRA adapter switched off (one model in
memory) or log-probs computed once before training (after SFT, where the reference must be the SFT
model, and for full fine-tuning), kept in the output and reused while their key holds (`reference_cache`).
"""

from __future__ import annotations

from contextlib import nullcontext

import torch
import torch.nn.functional as F

from pipeline.errors import UserError
from pipeline.train import reference_cache
from pipeline.train.config import FinetuneConfig
from pipeline.train.data import Batch, ChatEncoder, Encoded, MicroBatchOrder, PreferencePair, collate, token_logps
from pipeline.train.loop import (
    Logbook,
    Throughput,
    all_reduce_sum,
    data_layout,
    latest_checkpoint,
    load_checkpoint,
    make_optimizer,
    make_schedule,
    rank_and_world,
    save_checkpoint,
    total_steps,
    unwrap,
)
from pipeline.train.model import autocast, trainable_parameters
from pipeline.train.output import Output


def dpo_loss(policy_chosen, policy_rejected, ref_chosen, ref_rejected, beta: float, kind: str = "sigmoid"):
    """Per-pair losses and the implicit rewards beta * (log pi - log pi_ref) of chosen and rejected.

    sigmoid: -log sigmoid(beta * h) (Rafailov et al. 2023); ipo: (h - 1/(2 beta))^2 (Azar et al. 2023);
    hinge: max(0, 1 - beta * h) (SLiC); h is the policy's log-ratio margin minus the reference's.
    """
    h = (policy_chosen - policy_rejected) - (ref_chosen - ref_rejected)
    if kind == "sigmoid":
        losses = -F.logsigmoid(beta * h)
    elif kind == "ipo":
        losses = (h - 1 / (2 * beta)) ** 2
    elif kind == "hinge":
        losses = torch.relu(1 - beta * h)
    else:
        raise ValueError(f"unknown DPO loss {kind!r}")
    return losses, beta * (policy_chosen - ref_chosen).detach(), beta * (policy_rejected - ref_rejected).detach()


def encode_pairs(encoder: ChatEncoder, pairs: list[PreferencePair]) -> list[tuple[Encoded, Encoded]]:
    """Each pair as (chosen, rejected) examples whose targets are the response turns only."""
    return [
        (encoder.encode(p.prompt + p.chosen, first_labelled_turn=len(p.prompt)),
         encoder.encode(p.prompt + p.rejected, first_labelled_turn=len(p.prompt)))
        for p in pairs
    ]


def sequence_logps(model, batch: Batch, length_normalised: bool = False) -> torch.Tensor:
    """Sum (or mean, for IPO) of the target-token log-probs of every example in the batch.

    Per-example sums go by the batch's `example_index`, so a packed row and a padded batch give the
    same numbers; the counts are summed the same way (not `bincount`, which reads its input's
    maximum back to the host on a GPU).
    """
    logps = token_logps(model, batch)
    sums = torch.zeros(batch.n_examples, device=logps.device, dtype=logps.dtype).index_add(0, batch.example_index, logps)
    if length_normalised:
        counts = torch.zeros_like(sums).index_add(0, batch.example_index, torch.ones_like(logps))
        sums = sums / counts.clamp(min=1)
    return sums


def pair_batch(pairs: list[tuple[Encoded, Encoded]], pad_id: int, packing: bool) -> Batch:
    """chosen_0, rejected_0, chosen_1, ... packed into one row (position ids restarting per sequence),
    or right-padded one per row."""
    return collate([e for pair in pairs for e in pair], packing=packing, pad_id=pad_id)


@torch.no_grad()
def reference_logps(model, pairs: list[tuple[Encoded, Encoded]], cfg: FinetuneConfig, pad_id: int, device) -> torch.Tensor:
    """[n_pairs, 2] log-probs (chosen, rejected) of the model as it is, in eval mode: the precomputed reference."""
    was_training = model.training
    model.eval()
    out = []
    size = cfg.dpo.micro_batch_size
    for i in range(0, len(pairs), size):
        batch = pair_batch(pairs[i : i + size], pad_id, cfg.dpo.packing).to(device)
        with autocast(cfg, device):
            out.append(sequence_logps(model, batch, cfg.dpo.loss == "ipo").float())
    model.train(was_training)
    return torch.cat(out).view(-1, 2).cpu()


def precomputed_references(model, train: list[tuple[Encoded, Encoded]], held_out: list[tuple[Encoded, Encoded]],
                           cfg: FinetuneConfig, pad_id: int, device, out: Output):
    """(train, held_out or None) reference log-probs of the policy as DPO starts, read from the output's
    cache when nothing that decides them changed (`reference_cache`), else computed and cached."""
    def compute():
        reference = reference_logps(model, train, cfg, pad_id, device)
        return reference, reference_logps(model, held_out, cfg, pad_id, device) if held_out else None

    return reference_cache.references(out.location, model, train, held_out, cfg, device, compute)


def train_dpo(model, tokenizer, train: list[tuple[Encoded, Encoded]], held_out: list[tuple[Encoded, Encoded]],
              cfg: FinetuneConfig, out: Output, after_sft: bool) -> list[dict]:
    """Train in place; returns per-step metrics. Resumes from the output's checkpoints when asked."""
    d = cfg.dpo
    rank, world = rank_and_world()
    device = next(model.parameters()).device
    pad = tokenizer.pad_token_id
    precomputed = d.reference == "precomputed" or (d.reference == "auto" and (after_sft or cfg.method == "full"))
    if not precomputed and cfg.method == "full":
        raise UserError("dpo.reference: adapter_disabled needs a LoRA adapter; use precomputed with method: full")
    params = trainable_parameters(model)
    optimizer = make_optimizer(params, d.learning_rate)
    steps = total_steps(len(train), d.micro_batch_size, d.grad_accum, d.epochs, d.max_steps)
    schedule = make_schedule(optimizer, steps, d.warmup_ratio, d.schedule)
    order = MicroBatchOrder(len(train), d.micro_batch_size, cfg.seed)
    layout = data_layout(d.micro_batch_size, d.grad_accum)

    start, reference, held_out_reference = 0, None, None
    checkpoint = latest_checkpoint(out.checkpoints, "dpo") if cfg.resume else None
    if checkpoint:
        state = load_checkpoint(checkpoint, model, optimizer, schedule, layout)
        start, reference, held_out_reference = state["step"], state["reference"], state["held_out_reference"]
    elif precomputed:  # the policy as DPO starts, i.e. the SFT model when SFT ran first
        reference, held_out_reference = precomputed_references(model, train, held_out, cfg, pad, device, out)
    log = Logbook(out, "dpo", start)
    speed = Throughput()
    history = []

    model.train()
    for step in range(start, steps):
        # This worker's share of the step's global micro batches, as in SFT.
        indices = [order((step * d.grad_accum + k) * world + rank) for k in range(d.grad_accum)]
        (n_pairs,) = all_reduce_sum([sum(len(ix) for ix in indices)], device)
        lr = schedule.get_last_lr()[0]
        sums = {"loss": 0.0, "reward_accuracy": 0.0, "margin": 0.0, "chosen_reward": 0.0, "rejected_reward": 0.0,
                "chosen_logps": 0.0, "rejected_logps": 0.0, "tokens": 0.0}
        for k, ix in enumerate(indices):
            batch = pair_batch([train[i] for i in ix], pad, d.packing).to(device)
            ref = reference[ix].to(device) if precomputed else None
            sync = model.no_sync() if world > 1 and k < len(indices) - 1 else nullcontext()
            with sync:
                losses, stats = _pair_losses(model, batch, ref, cfg, device)
                (losses.sum() * (world / n_pairs)).backward()
            for name, value in stats.items():
                sums[name] += value
            sums["tokens"] += batch.input_ids.numel()
        grad_norm = torch.nn.utils.clip_grad_norm_(params, d.max_grad_norm).item() if d.max_grad_norm else None
        optimizer.step()
        schedule.step()
        optimizer.zero_grad(set_to_none=True)

        totals = dict(zip(sums, all_reduce_sum(list(sums.values()), device)))
        speed.add(totals.pop("tokens"))
        metrics = {name: value / n_pairs for name, value in totals.items()}
        metrics.update(lr=lr, grad_norm=grad_norm, tokens_per_s=speed.rate())
        done = step + 1
        if held_out and (done % d.eval_every == 0 or done == steps):
            metrics.update({f"eval_{k}": v for k, v in evaluate(model, held_out, held_out_reference, cfg, pad, device).items()})
        log.log(done, **metrics)
        history.append({"step": done, **metrics})
        if done % d.checkpoint_every == 0 or done == steps:
            log.publish()
            save_checkpoint(out.checkpoints, "dpo", done, model, optimizer, schedule, layout,
                            {"reference": reference, "held_out_reference": held_out_reference})
        speed.restart()
    log.close()
    return history


def _pair_losses(model, batch: Batch, ref: torch.Tensor | None, cfg: FinetuneConfig, device):
    """Per-pair losses with grad, and summed (not averaged) metrics of the micro batch."""
    d = cfg.dpo
    normalised = d.loss == "ipo"
    if ref is None:
        with torch.no_grad(), unwrap(model).disable_adapter(), autocast(cfg, device):
            ref = sequence_logps(model, batch, normalised).float().view(-1, 2)
    with autocast(cfg, device):
        policy = sequence_logps(model, batch, normalised).float().view(-1, 2)
    losses, chosen_reward, rejected_reward = dpo_loss(policy[:, 0], policy[:, 1], ref[:, 0], ref[:, 1], d.beta, d.loss)
    stats = {
        "loss": losses.sum().item(),
        "reward_accuracy": (chosen_reward > rejected_reward).float().sum().item(),
        "margin": (chosen_reward - rejected_reward).sum().item(),
        "chosen_reward": chosen_reward.sum().item(),
        "rejected_reward": rejected_reward.sum().item(),
        "chosen_logps": policy[:, 0].detach().sum().item(),
        "rejected_logps": policy[:, 1].detach().sum().item(),
    }
    return losses, stats


@torch.no_grad()
def evaluate(model, pairs, reference, cfg: FinetuneConfig, pad_id: int, device) -> dict:
    model.eval()
    sums: dict[str, float] = {}
    size = cfg.dpo.micro_batch_size
    for i in range(0, len(pairs), size):
        ref = reference[i : i + size].to(device) if reference is not None else None
        _, stats = _pair_losses(model, pair_batch(pairs[i : i + size], pad_id, cfg.dpo.packing).to(device), ref, cfg, device)
        for name, value in stats.items():
            sums[name] = sums.get(name, 0.0) + value
    model.train()
    return {name: value / len(pairs) for name, value in sums.items()}
