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

SAMPLE_TOKENS = 64


def train_sft(model, tokenizer, train: list[Encoded], held_out: list[Encoded], prompts: list[list[dict]],
              cfg: FinetuneConfig, out: Output) -> list[dict]:
    """Train in place; returns the per-step metrics. Resumes from the output's checkpoints when asked."""
    s = cfg.sft
    rank, world = rank_and_world()
    device = next(model.parameters()).device
    params = trainable_parameters(model)
    optimizer = make_optimizer(params, s.learning_rate, s.weight_decay)
    steps = total_steps(len(train), s.micro_batch_size, s.grad_accum, s.epochs, s.max_steps)
    schedule = make_schedule(optimizer, steps, s.warmup_ratio, s.schedule)
    order = MicroBatchOrder(len(train), s.micro_batch_size, cfg.seed)
    layout = data_layout(s.micro_batch_size, s.grad_accum)

    start = 0
    checkpoint = latest_checkpoint(out.checkpoints, "sft") if cfg.resume else None
    if checkpoint:
        start = load_checkpoint(checkpoint, model, optimizer, schedule, layout)["step"]
    log = Logbook(out, "sft", start)
    speed = Throughput()
    history = []

    model.train()
    for step in range(start, steps):
        # The data for this step: this worker's share of global micro batches step*accum*world ..
        # (step+1)*accum*world-1, every world-th from its rank on. So N workers x accumulation A read the
        # same examples per step as one worker x accumulation N*A: only the order of the sum differs.
        micro = [
            collate([train[i] for i in order((step * s.grad_accum + k) * world + rank)], s.packing, tokenizer.pad_token_id)
            for k in range(s.grad_accum)
        ]
        lr = schedule.get_last_lr()[0]
        loss, n_targets, n_tokens = accumulate_gradients(model, micro, cfg, device)
        grad_norm = torch.nn.utils.clip_grad_norm_(params, s.max_grad_norm).item() if s.max_grad_norm else None
        optimizer.step()
        schedule.step()
        optimizer.zero_grad(set_to_none=True)

        speed.add(n_tokens)
        metrics = {"loss": loss, "lr": lr, "grad_norm": grad_norm, "target_tokens": n_targets, "tokens_per_s": speed.rate()}
        done = step + 1
        if held_out and (done % s.eval_every == 0 or done == steps):
            metrics["eval_loss"] = eval_loss(model, held_out, cfg, tokenizer.pad_token_id, device)
        log.log(done, **metrics)
        history.append({"step": done, **metrics})
        if rank == 0 and prompts and s.sample_prompts and (done % s.sample_every == 0 or done == steps):
            for sample in generate_samples(model, tokenizer, prompts[: s.sample_prompts], device):
                log.sample({"step": done, **sample})
        if done % s.checkpoint_every == 0 or done == steps:
            log.publish()
            save_checkpoint(out.checkpoints, "sft", done, model, optimizer, schedule, layout)
        speed.restart()
    log.close()
    return history


def accumulate_gradients(model, micro: list[Batch], cfg: FinetuneConfig, device) -> tuple[float, int, int]:
    """Backward over one step's micro batches; returns the step's mean loss per target token, its target
    tokens and its input tokens, all summed over workers."""
    _, world = rank_and_world()
    n_targets, n_tokens = all_reduce_sum([sum(b.n_targets for b in micro), sum(b.input_ids.numel() for b in micro)],
                                         device)
    total = 0.0
    for k, batch in enumerate(micro):
        # DDP averages gradients over workers; multiplying by world turns that back into a global sum.
        sync = model.no_sync() if world > 1 and k < len(micro) - 1 else nullcontext()
        with sync, autocast(cfg, device):
            loss_sum = -token_logps(model, batch.to(device)).sum()
        (loss_sum * (world / n_targets)).backward()
        total += loss_sum.item()
    (total,) = all_reduce_sum([total], device)
    return total / n_targets, int(n_targets), int(n_tokens)


@torch.no_grad()
def eval_loss(model, examples: list[Encoded], cfg: FinetuneConfig, pad_id: int, device) -> float:
    """Mean loss per target token over the held-out examples."""
    model.eval()
    total, count = 0.0, 0
    size = cfg.sft.micro_batch_size
    for i in range(0, len(examples), size):
        batch = collate(examples[i : i + size], cfg.sft.packing, pad_id).to(device)
        with autocast(cfg, device):
            logps = token_logps(model, batch)
        total -= logps.sum().item()
        count += logps.numel()
    model.train()
    return total / max(count, 1)


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
