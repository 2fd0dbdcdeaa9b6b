"""What a training run measures and watches: speed, memory, FLOPs utilisation, and divergence.

Everything here works from numbers the loop knows on the host (token counts of the encoded examples)
and from the one read of the device's metrics per logging step, so watching a run adds no
synchronisation with the GPU.
"""

from __future__ import annotations

import math
import resource
import sys
import time
from dataclasses import dataclass

import torch

from pipeline.errors import RunFailed
from pipeline.storage import Location
from pipeline.train.loop import checkpoints, rank_and_world

# A training loss below this for this many logged steps in a row has collapsed: the model predicts its
# targets with certainty, which real instruction data does not allow (memorised or leaked targets, a
# template that makes the answer a copy of the prompt, a runaway DPO margin).
COLLAPSE_LOSS = 1e-4
COLLAPSE_STEPS = 3

# Dense (no sparsity) 16-bit tensor-core peak per GPU, FLOP/s, from NVIDIA's product datasheets: bf16
# where the GPU has it, fp16 on T4 and V100. Matched by the words of torch.cuda.get_device_name(),
# most specific first ("NVIDIA H100 PCIe", "NVIDIA H200", "NVIDIA A100-SXM4-80GB", "Tesla T4").
PEAK_FLOPS = (
    ({"H100", "PCIe"}, 756e12),
    ({"H100", "NVL"}, 835e12),
    ({"H200", "NVL"}, 835e12),
    ({"H100"}, 989e12),  # SXM
    ({"H200"}, 989e12),  # SXM
    ({"A100"}, 312e12),
    ({"L4"}, 121e12),
    ({"T4"}, 65e12),
    ({"V100"}, 125e12),  # SXM2
)

# Keys of a log line that depend on the machine and the moment, not on the training: leave them out
# when comparing two runs' curves.
TIMING_KEYS = frozenset({"tokens_per_s", "mean_tokens_per_s", "mfu", "mean_mfu", "peak_mem_mb", "wall_s"})


def peak_flops(device: torch.device, precision: str) -> float | None:
    """The device's 16-bit peak in FLOP/s, or None (CPU, fp32, or a GPU not in the table)."""
    if device.type != "cuda" or precision not in ("bf16", "fp16"):
        return None
    words = set(torch.cuda.get_device_name(device).replace("-", " ").split())
    return next((flops for needed, flops in PEAK_FLOPS if needed <= words), None)


def peak_memory_mb(device: torch.device) -> float:
    """Peak GPU memory allocated by tensors on a GPU; on a CPU, the peak resident memory of the process."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux, bytes on macOS
    return rss / (2**20 if sys.platform == "darwin" else 2**10)


@dataclass(frozen=True)
class Flops:
    """Matmul FLOPs of training steps, counted from the model's linear layers (LoRA's included).

    A token costs 2 FLOPs per weight forward and 2 more backward for the gradient of the activations;
    only trainable weights cost the 2 more of their own gradient. So full fine-tuning gives the usual
    6 x parameters per token, and LoRA 4 x frozen + 6 x adapter parameters: counting 6 x all of them
    would credit LoRA with weight gradients it never computes. The LM head runs only where there is a
    target (`token_logps`). Attention within an example of L tokens costs 4 x L^2 x width per layer
    forward and twice that backward (PaLM's 12 x layers x width x L per token, not halved for causality).
    Recomputation under gradient checkpointing is not counted (model FLOPs, not hardware FLOPs).
    """

    body: int  # weights of every linear layer but the LM head
    body_trainable: int
    head: int
    head_trainable: int
    attention: int  # layers x query width (heads x head dim)

    @classmethod
    def of(cls, model) -> Flops:
        base = getattr(model, "module", model)  # under DDP
        head = base.get_output_embeddings()
        body = body_trainable = n_head = head_trainable = 0
        for module in base.modules():
            if not isinstance(module, torch.nn.Linear):
                continue
            n = module.in_features * module.out_features  # not weight.numel(): 4-bit weights are packed
            trainable = module.weight.requires_grad
            if module is head:
                n_head, head_trainable = n, n if trainable else 0
            else:
                body += n
                body_trainable += n if trainable else 0
        config = base.config
        width = config.num_attention_heads * (getattr(config, "head_dim", None)
                                              or config.hidden_size // config.num_attention_heads)
        return cls(body, body_trainable, n_head, head_trainable, config.num_hidden_layers * width)

    def train(self, tokens: int, targets: int, squares: int) -> int:
        """Forward and backward over `tokens` input tokens with `targets` targets, `squares` the sum of
        the squared example lengths."""
        return (tokens * (4 * self.body + 2 * self.body_trainable) + targets * (4 * self.head + 2 * self.head_trainable)
                + 12 * self.attention * squares)

    def frozen_forward(self, tokens: int, targets: int, squares: int) -> int:
        """A forward pass with the adapter switched off (DPO's reference)."""
        return 2 * (self.body - self.body_trainable) * tokens + 2 * self.head * targets + 4 * self.attention * squares


class Tracker:
    """Wall time, trained tokens per second, peak memory and FLOPs utilisation of one phase.

    Rates cover training alone: `restart()` after evals, samples and checkpoints. Totals continue
    across a resume through `state()` saved in the checkpoint. Each `lap()` follows the logging
    step's read of the device, so the GPU has finished the work being timed.
    """

    def __init__(self, model, device: torch.device, precision: str, state: dict | None = None):
        self.device = device
        self.flops = Flops.of(model)
        self.peak = peak_flops(device, precision)
        if self.peak is not None:  # the token counts are of all workers, one GPU each
            self.peak *= rank_and_world()[1]
        if device.type == "cuda":  # this phase's peak, not an earlier phase's
            torch.cuda.reset_peak_memory_stats(device)
        totals = state or {}
        self.wall = totals.get("wall_s", 0.0)
        self.train_s = totals.get("train_s", 0.0)
        self.tokens = totals.get("tokens", 0)
        self.done_flops = totals.get("flops", 0)
        self.started = time.perf_counter()
        self.restart()

    def restart(self) -> None:
        self.lap_start, self.lap_tokens, self.lap_flops = time.perf_counter(), 0, 0

    def add(self, tokens: int, flops: int) -> None:
        self.lap_tokens += tokens
        self.lap_flops += flops

    def lap(self) -> dict:
        seconds = max(time.perf_counter() - self.lap_start, 1e-9)
        self.train_s += seconds
        self.tokens += self.lap_tokens
        self.done_flops += self.lap_flops
        return {
            "tokens_per_s": self.lap_tokens / seconds,
            "mean_tokens_per_s": self.tokens / self.train_s,
            "mfu": self.lap_flops / seconds / self.peak if self.peak else None,
            "mean_mfu": self.done_flops / self.train_s / self.peak if self.peak else None,
            "peak_mem_mb": peak_memory_mb(self.device),
            "wall_s": self.wall + time.perf_counter() - self.started,
        }

    def state(self) -> dict:
        return {"wall_s": self.wall + time.perf_counter() - self.started, "train_s": self.train_s,
                "tokens": self.tokens, "flops": self.done_flops}


class DivergenceGuard:
    """Stops a phase whose loss is no longer a number, or has collapsed to zero, before it checkpoints.

    Checked on the values of the logging step's one read. A non-finite gradient norm counts too, except
    with fp16 loss scaling, where it is an overflow the scaler handles by skipping the step. The
    collapse check is for losses that reach zero only at an infinite margin (cross-entropy, DPO's
    sigmoid); hinge and IPO reach their minimum at a finite margin by design.
    """

    def __init__(self, phase: str, checkpoints: Location, check_collapse: bool, loss_scaling: bool, skipped: int = 0):
        self.phase, self.checkpoints = phase, checkpoints
        self.check_collapse, self.loss_scaling = check_collapse, loss_scaling
        self.low = 0  # logged steps in a row below COLLAPSE_LOSS
        self.skipped = skipped  # fp16 steps the scaler skipped, this run and the runs it resumes

    def settle(self, step: int, metrics: dict, grad_norm: float, scale: list[float], log) -> None:
        """A step's fp16 bookkeeping, then `check`: a diverged step is logged, never checkpointed."""
        if scale:  # fp16: an overflowed step was skipped by the scaler
            self.skipped += not math.isfinite(grad_norm)
            metrics.update(loss_scale=scale[0], skipped_steps=self.skipped)
        try:
            self.check(step, metrics["loss"], grad_norm)
        except RunFailed:
            log.log(step, **metrics)
            log.close()
            raise

    def check(self, step: int, loss: float, grad_norm: float) -> None:
        if not math.isfinite(loss):
            # This loss is of the weights the previous step left; a checkpoint of them is the diverged state.
            self._stop(step, f"loss {loss}", diverged_weights=step - 1)
        if not self.loss_scaling and not math.isfinite(grad_norm):
            self._stop(step, f"gradient norm {grad_norm} (loss {loss:.4g})")
        self.low = self.low + 1 if self.check_collapse and loss < COLLAPSE_LOSS else 0
        if self.low >= COLLAPSE_STEPS:
            self._stop(step, f"loss collapsed to {loss:.3g} (below {COLLAPSE_LOSS:g} for {COLLAPSE_STEPS} logged steps "
                       "in a row)")

    def _stop(self, step: int, what: str, diverged_weights: int | None = None) -> None:
        found = checkpoints(self.checkpoints, self.phase)
        removed = ""
        if diverged_weights is not None and found and found[-1].parent.name == f"{self.phase}-{diverged_weights:08d}":
            if rank_and_world()[0] == 0:  # one writer, as for every checkpoint
                found[-1].parent.remove()
            removed = f"the checkpoint of step {diverged_weights}, which holds those weights, is removed; "
            found = found[:-1]
        kept = (f"the last good checkpoint, {found[-1].parent}, is kept: resume from it with a lower "
                f"{self.phase}.learning_rate" if found else
                f"no good {self.phase} checkpoint was written before it: start over with a lower {self.phase}.learning_rate")
        raise RunFailed(f"{self.phase} diverged at step {step}: {what}; {removed}{kept}")
