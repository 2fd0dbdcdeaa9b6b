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
from pipeline.train.data import (
    Batch,
    ChatEncoder,
    Encoded,
    MicroBatchOrder,
    PreferencePair,
    collate,
    to_device,
    token_logps,
)
from pipeline.train.loop import (
    Logbook,
    Updater,
    data_layout,
    latest_checkpoint,
    load_checkpoint,
    rank_and_world,
    read_metrics,
    save_checkpoint,
    step_examples,
    total_steps,
    unwrap,
)
from pipeline.train.model import autocast, resolve_precision, trainable_parameters
from pipeline.train.output import Output
from pipeline.train.tracking import DivergenceGuard, Tracker

# What `_pair_losses` sums over a micro batch's pairs, in the order the loop stacks them.
PAIR_METRICS = ("loss", "reward_accuracy", "margin", "chosen_reward", "rejected_reward", "chosen_logps", "rejected_logps")


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
              cfg: FinetuneConfig, out: Output) -> list[dict]:
    """Train in place; returns per-step metrics (the log lines). Resumes from the output's checkpoints when
    asked; stops with RunFailed, keeping the last checkpoint, if the loss diverges."""
    d = cfg.dpo
    rank, world = rank_and_world()
    device = next(model.parameters()).device
    pad = tokenizer.pad_token_id
    precomputed = d.reference != "adapter_disabled"
    if not precomputed and cfg.method == "full":
        raise UserError("dpo.reference: adapter_disabled needs a LoRA adapter; use precomputed with method: full")
    precision = resolve_precision(cfg, device)
    steps = total_steps(len(train), d.micro_batch_size, d.grad_accum, d.epochs, d.max_steps)
    updater = Updater(trainable_parameters(model), d.learning_rate, 0.0, d.max_grad_norm, steps, d.warmup_ratio,
                      d.schedule, precision, device)
    order = MicroBatchOrder(len(train), d.micro_batch_size, cfg.seed)
    layout = data_layout(d.micro_batch_size, d.grad_accum)

    start, reference, held_out_reference, state = 0, None, None, {}
    checkpoint = latest_checkpoint(out.checkpoints, "dpo") if cfg.resume else None
    if checkpoint:
        state = load_checkpoint(checkpoint, model, updater.optimizer, updater.schedule, layout)
        start, reference, held_out_reference = state["step"], state["reference"], state["held_out_reference"]
        updater.load_state_dict(state)
    elif precomputed:  # the policy as DPO starts, i.e. the SFT model when SFT ran first
        reference, held_out_reference = precomputed_references(model, train, held_out, cfg, pad, device, out)
    log = Logbook(out, "dpo", steps, start)
    tracker = Tracker(model, device, precision, state.get("tracking"))
    guard = DivergenceGuard("dpo", out.checkpoints, check_collapse=d.loss == "sigmoid", loss_scaling=updater.loss_scaling,
                            skipped=state.get("skipped_steps", 0))
    history = []

    model.train()
    for step in range(start, steps):
        mine, everyone = step_examples(order, step, d.grad_accum)  # as in SFT
        sequences = [e for i in everyone for e in train[i]]
        lengths = [len(e.input_ids) for e in sequences]
        n_pairs, n_targets = len(everyone), sum(e.n_targets for e in sequences)
        lr = updater.lr
        sums = torch.zeros(len(PAIR_METRICS), device=device)
        for k, ix in enumerate(mine):
            batch = pair_batch([train[i] for i in ix], pad, d.packing).to(device)
            ref = to_device(reference[ix], device) if precomputed else None
            sync = model.no_sync() if world > 1 and k < len(mine) - 1 else nullcontext()
            with sync:
                losses, stats = _pair_losses(model, batch, ref, cfg, device)
                updater.backward(losses.sum() * (world / n_pairs))
            sums += torch.stack([stats[name] for name in PAIR_METRICS])
        update = updater.step()
        tokens, squares = sum(lengths), sum(n * n for n in lengths)
        flops = tracker.flops.train(tokens, n_targets, squares)
        if not precomputed:  # the reference pass with the adapter off runs in the step too
            flops += tracker.flops.frozen_forward(tokens, n_targets, squares)
        tracker.add(tokens, flops)

        # The step's one read of the device.
        values = read_metrics(sums, update)
        metrics = {name: value / n_pairs for name, value in zip(PAIR_METRICS, values)}
        grad_norm, *scale = values[len(PAIR_METRICS):]
        metrics.update(lr=lr, grad_norm=grad_norm, tokens=tokens, **tracker.lap())
        done = step + 1
        guard.settle(done, metrics, grad_norm, scale, log)
        if held_out and (done % d.eval_every == 0 or done == steps):
            metrics.update({f"eval_{k}": v for k, v in evaluate(model, held_out, held_out_reference, cfg, pad, device).items()})
        log.log(done, **metrics)
        history.append({"step": done, **metrics})
        if done % d.checkpoint_every == 0 or done == steps:
            log.publish()
            save_checkpoint(out.checkpoints, "dpo", done, model, updater.optimizer, updater.schedule, layout,
                            {"reference": reference, "held_out_reference": held_out_reference,
                             **updater.state_dict(), "tracking": tracker.state(), "skipped_steps": guard.skipped})
        tracker.restart()
    log.close()
    return history


def _pair_losses(model, batch: Batch, ref: torch.Tensor | None, cfg: FinetuneConfig, device):
    """Per-pair losses with grad, and the micro batch's PAIR_METRICS summed over its pairs (not averaged),
    left on the device."""
    d = cfg.dpo
    normalised = d.loss == "ipo"
    if ref is None:
        with torch.no_grad(), unwrap(model).disable_adapter(), autocast(cfg, device):
            ref = sequence_logps(model, batch, normalised).float().view(-1, 2)
    with autocast(cfg, device):
        policy = sequence_logps(model, batch, normalised).float().view(-1, 2)
    losses, chosen_reward, rejected_reward = dpo_loss(policy[:, 0], policy[:, 1], ref[:, 0], ref[:, 1], d.beta, d.loss)
    stats = {
        "loss": losses.detach().sum(),
        "reward_accuracy": (chosen_reward > rejected_reward).float().sum(),
        "margin": (chosen_reward - rejected_reward).sum(),
        "chosen_reward": chosen_reward.sum(),
        "rejected_reward": rejected_reward.sum(),
        "chosen_logps": policy[:, 0].detach().sum(),
        "rejected_logps": policy[:, 1].detach().sum(),
    }
    return losses, stats


@torch.no_grad()
def evaluate(model, pairs, reference, cfg: FinetuneConfig, pad_id: int, device) -> dict:
    """Mean PAIR_METRICS over the held-out pairs (read from the device once, at the end)."""
    model.eval()
    sums = torch.zeros(len(PAIR_METRICS), device=device)
    size = cfg.dpo.micro_batch_size
    for i in range(0, len(pairs), size):
        ref = reference[i : i + size].to(device) if reference is not None else None
        _, stats = _pair_losses(model, pair_batch(pairs[i : i + size], pad_id, cfg.dpo.packing).to(device), ref, cfg, device)
        sums += torch.stack([stats[name] for name in PAIR_METRICS])
    model.train()
    return {name: value / len(pairs) for name, value in zip(PAIR_METRICS, sums.tolist())}
