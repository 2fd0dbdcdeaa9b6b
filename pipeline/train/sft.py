"""Supervised fine-tuning: next-token loss on the assistant tokens, in plain PyTorch, top to bottom.

One optimizer step = `grad_accum` micro batches. The loss of every micro batch is divided by the number
of target tokens in the WHOLE accumulated batch (summed over workers), so a step's gradient is exactly
the gradient of the mean loss over all its target tokens, however the examples fall into micro batches
or how long each is. (Averaging per-micro-batch means instead over-weights tokens of short examples.)
"""

from __future__ import annotations

from contextlib import nullcontext

import torch

from pipeline.train.config import FinetuneConfig
from pipeline.train.data import Batch, Encoded, MicroBatchOrder, collate, token_logps
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

SAMPLE_TOKENS = 64


def train_sft(model, tokenizer, train: list[Encoded], held_out: list[Encoded], prompts: list[list[dict]],
              cfg: FinetuneConfig, out: Output) -> list[dict]:
    """Train in place; returns the per-step metrics (the log lines). Resumes from the output's checkpoints
    when asked; stops with RunFailed, keeping the last checkpoint, if the loss diverges."""
    s = cfg.sft
    rank, world = rank_and_world()
    device = next(model.parameters()).device
    precision = resolve_precision(cfg, device)
    steps = total_steps(len(train), s.micro_batch_size, s.grad_accum, s.epochs, s.max_steps)
    updater = Updater(trainable_parameters(model), s.learning_rate, s.weight_decay, s.max_grad_norm, steps,
                      s.warmup_ratio, s.schedule, precision, device)
    order = MicroBatchOrder(len(train), s.micro_batch_size, cfg.seed)
    layout = data_layout(s.micro_batch_size, s.grad_accum)

    start, state = 0, {}
    checkpoint = latest_checkpoint(out.checkpoints, "sft") if cfg.resume else None
    if checkpoint:
        state = load_checkpoint(checkpoint, model, updater.optimizer, updater.schedule, layout)
        start = state["step"]
        updater.load_state_dict(state)
    log = Logbook(out, "sft", steps, start)
    tracker = Tracker(model, device, precision, state.get("tracking"))
    guard = DivergenceGuard("sft", out.checkpoints, check_collapse=True, loss_scaling=updater.loss_scaling,
                            skipped=state.get("skipped_steps", 0))
    history = []

    model.train()
    for step in range(start, steps):
        mine, everyone = step_examples(order, step, s.grad_accum)
        n_targets = sum(train[i].n_targets for i in everyone)
        lengths = [len(train[i].input_ids) for i in everyone]
        micro = [collate([train[i] for i in ix], s.packing, tokenizer.pad_token_id) for ix in mine]
        lr = updater.lr
        # max: guards the division; every example has a target (run.answered left out those cut before their answer)
        loss_sum = accumulate_gradients(model, micro, max(n_targets, 1), cfg, device, updater.backward)
        update = updater.step()
        tracker.add(sum(lengths), tracker.flops.train(sum(lengths), n_targets, sum(n * n for n in lengths)))

        # The step's one read of the device.
        total, grad_norm, *scale = read_metrics(loss_sum.reshape(1), update)
        metrics = {"loss": total / max(n_targets, 1), "lr": lr, "grad_norm": grad_norm, "target_tokens": n_targets,
                   "tokens": sum(lengths), **tracker.lap()}
        done = step + 1
        guard.settle(done, metrics, grad_norm, scale, log)
        if held_out and (done % s.eval_every == 0 or done == steps):
            metrics["eval_loss"] = eval_loss(model, held_out, cfg, tokenizer.pad_token_id, device)
        log.log(done, **metrics)
        history.append({"step": done, **metrics})
        if rank == 0 and prompts and s.sample_prompts and (done % s.sample_every == 0 or done == steps):
            for sample in generate_samples(model, tokenizer, prompts[: s.sample_prompts], device):
                log.sample({"step": done, **sample})
        if done % s.checkpoint_every == 0 or done == steps:
            log.publish()
            save_checkpoint(out.checkpoints, "sft", done, model, updater.optimizer, updater.schedule, layout,
                            {**updater.state_dict(), "tracking": tracker.state(), "skipped_steps": guard.skipped})
        tracker.restart()
    log.close()
    return history


def accumulate_gradients(model, micro: list[Batch], n_targets: int, cfg: FinetuneConfig, device,
                         backward=torch.Tensor.backward) -> torch.Tensor:
    """Backward over one step's micro batches, `n_targets` being the target tokens of the whole step on
    all workers (counted on the host); returns this worker's summed loss, left on the device."""
    _, world = rank_and_world()
    total = torch.zeros((), device=device)
    for k, batch in enumerate(micro):
        # DDP averages gradients over workers; multiplying by world turns that back into a global sum.
        sync = model.no_sync() if world > 1 and k < len(micro) - 1 else nullcontext()
        with sync, autocast(cfg, device):
            loss_sum = -token_logps(model, batch.to(device)).sum()
        backward(loss_sum * (world / n_targets))
        total += loss_sum.detach().float()
    return total


@torch.no_grad()
def eval_loss(model, examples: list[Encoded], cfg: FinetuneConfig, pad_id: int, device) -> float:
    """Mean loss per target token over the held-out examples (read from the device once, at the end)."""
    model.eval()
    total = torch.zeros((), device=device)
    size = cfg.sft.micro_batch_size
    for i in range(0, len(examples), size):
        batch = collate(examples[i : i + size], cfg.sft.packing, pad_id).to(device)
        with autocast(cfg, device):
            total -= token_logps(model, batch).sum().float()
    model.train()
    return total.item() / max(sum(e.n_targets for e in examples), 1)


@torch.no_grad()
def generate_samples(model, tokenizer, prompts: list[list[dict]], device) -> list[dict]:
    """Greedy completions of held-out prompts, to read along the loss curve (consumes no RNG)."""
    model = unwrap(model)
    model.eval()
    samples = []
    for prompt in prompts:
        text = tokenizer.apply_chat_template(prompt, tokenize=False, add_generation_prompt=True)
        ids = tokenizer(text, add_special_tokens=False, return_tensors="pt")["input_ids"].to(device)
        out = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=SAMPLE_TOKENS,
                             do_sample=False, pad_token_id=tokenizer.pad_token_id)
        samples.append({"prompt": prompt[-1]["content"], "completion": tokenizer.decode(out[0, ids.shape[1]:], skip_special_tokens=False)})
    model.train()
    return samples
