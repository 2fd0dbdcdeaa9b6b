"""What the SFT and DPO loops share: optimizer and schedule, logs, exact-resume checkpoints, workers.

Kept out of sft.py/dpo.py so each loop reads as the algorithm, top to bottom.
"""

from __future__ import annotations

import json
import math
import random

import numpy as np
import torch
import torch.distributed as dist

from pipeline.errors import UserError
from pipeline.storage import Location
from pipeline.train.console import StepLines
from pipeline.train.output import Output

KEEP_CHECKPOINTS = 2


def rank_and_world() -> tuple[int, int]:
    """(rank, world size): (0, 1) in a single process; set by Ray Train's process group otherwise."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def unwrap(model):
    """The model under a DDP wrapper: where generate() and peft's adapter switch live."""
    return getattr(model, "module", model)


def distribute(model):
    """DDP across the workers Ray Train started; the model itself in a single process."""
    if rank_and_world()[1] == 1:
        return model
    device = next(model.parameters()).device
    return torch.nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)


def read_metrics(summed: torch.Tensor, same: torch.Tensor) -> list[float]:
    """A logging step's metrics on the host, in one read of the device: `summed` (losses and counts of
    this worker's share) added over workers in one collective, `same` (what DDP already made equal on
    every worker, such as the gradient norm) as it is. Nothing else in a step waits for the device."""
    if rank_and_world()[1] > 1:
        dist.all_reduce(summed)
    return torch.cat([summed.float(), same.float()]).tolist()


def step_examples(order, step: int, grad_accum: int) -> tuple[list[list[int]], list[int]]:
    """(this worker's micro batches, every example of the step on all workers) of an optimizer step.

    Step s covers global micro batches s*A*N .. (s+1)*A*N-1 of the seeded order (A = grad_accum, N
    workers), every N-th from rank r on for worker r: N workers x accumulation A read the examples one
    worker reads with accumulation N*A. Every worker holds all the examples, so each counts the step's
    target tokens of all workers on the host, with no collective and no read of the device.
    """
    rank, world = rank_and_world()
    first = step * grad_accum * world
    everyone = [order(first + j) for j in range(grad_accum * world)]
    return everyone[rank::world], [i for ix in everyone for i in ix]


def barrier() -> None:
    """Wait for every worker: after rank 0 writes a file that all of them read."""
    if rank_and_world()[1] > 1:
        dist.barrier()


def data_layout(micro_batch_size: int, grad_accum: int) -> dict:
    """What decides which examples each optimizer step reads; a checkpoint resumes only under the same layout."""
    return {"workers": rank_and_world()[1], "grad_accum": grad_accum, "micro_batch_size": micro_batch_size}


def make_optimizer(params, lr: float, weight_decay: float = 0.0) -> torch.optim.Optimizer:
    """AdamW as one fused kernel (transformers' default too): it keeps its step counts on the device and
    takes fp16 loss scaling's overflow flag there, where the unfused one reads both back to the host."""
    return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay, betas=(0.9, 0.999), eps=1e-8, fused=True)


def make_schedule(optimizer, total_steps: int, warmup_ratio: float, kind: str) -> torch.optim.lr_scheduler.LambdaLR:
    """Linear warmup from 0, then cosine or linear decay to 0 (the schedules transformers' Trainer uses)."""
    warmup = math.ceil(warmup_ratio * total_steps)

    def factor(step: int) -> float:
        if step < warmup:
            return step / max(1, warmup)
        progress = (step - warmup) / max(1, total_steps - warmup)
        if kind == "cosine":
            return max(0.0, 0.5 * (1.0 + math.cos(math.pi * progress)))
        if kind == "linear":
            return max(0.0, 1.0 - progress)
        return 1.0

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def total_steps(n_examples: int, micro_batch_size: int, grad_accum: int, epochs: float, max_steps: int | None) -> int:
    if max_steps:
        return max_steps
    world = rank_and_world()[1]
    micro_batches = math.ceil(n_examples / micro_batch_size)
    return max(1, math.ceil(epochs * micro_batches / (grad_accum * world)))


class Logbook:
    """Metrics as JSONL (one object per line, `step` first), sample generations, and TensorBoard scalars,
    written by rank 0 only into the output's local folder, and now and then a line on the console
    (`console.StepLines`). The JSONL files continue those in the output
    (fetched first, when it is in object storage) and are uploaded by `publish`, before each checkpoint,
    so a resumed run finds every line up to its checkpoint wherever it runs, and by `close`."""

    def __init__(self, output: Output, phase: str, steps: int, resume_step: int = 0):
        self.phase = phase
        self.output = output
        self.enabled = rank_and_world()[0] == 0
        self.console = StepLines(phase, steps, resume_step, self.enabled)
        directory = output.local / "logs"
        self.path = directory / f"{phase}.jsonl"
        self.samples = directory / f"{phase}_samples.jsonl"
        self._tb = None
        if not self.enabled:
            return
        for path in (self.path, self.samples):
            output.fetch(f"logs/{path.name}")
        directory.mkdir(parents=True, exist_ok=True)
        if self.path.exists():  # a resumed run continues the curve: forget what came after the checkpoint
            kept = [line for line in self.path.read_text().splitlines() if json.loads(line)["step"] <= resume_step]
            self.path.write_text("".join(line + "\n" for line in kept))
        try:
            from torch.utils.tensorboard import SummaryWriter

            self._tb = SummaryWriter(str(directory / "tensorboard"), purge_step=resume_step + 1 if resume_step else None)
        except ImportError:  # tensorboard is a dependency; without it the JSONL log still has everything
            self._tb = None

    def log(self, step: int, **metrics) -> None:
        if not self.enabled:
            return
        self.console.step(step, metrics)
        with self.path.open("a") as f:
            f.write(json.dumps({"step": step, **metrics}) + "\n")
        if self._tb is not None:
            for name, value in metrics.items():
                if isinstance(value, (int, float)):
                    self._tb.add_scalar(f"{self.phase}/{name}", value, step)

    def sample(self, record: dict) -> None:
        """A sample generation, in the phase's samples file."""
        if self.enabled:
            with self.samples.open("a") as f:
                f.write(json.dumps(record) + "\n")

    def publish(self) -> None:
        if not self.enabled:
            return
        if self._tb is not None:
            self._tb.flush()
        self.output.publish("logs")

    def close(self) -> None:
        if self._tb is not None:
            self._tb.close()
        if self.enabled:
            self.output.publish("logs")


def _rng_states() -> list[dict]:
    """Every worker's RNG streams, in rank order: dropout draws differ per worker, so each resumes its own."""
    state = {"torch": torch.get_rng_state(), "python": random.getstate(), "numpy": np.random.get_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    world = rank_and_world()[1]
    if world == 1:
        return [state]
    states: list = [None] * world
    dist.all_gather_object(states, state)
    return states


def _set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def trainable_state(model) -> dict[str, torch.Tensor]:
    """Named by the model under any DDP wrapper, so a state is the same whatever the number of workers."""
    return {name: p.detach().cpu().clone() for name, p in unwrap(model).named_parameters() if p.requires_grad}


def save_checkpoint(directory: Location, phase: str, step: int, model, optimizer, schedule, layout: dict,
                    extra: dict | None = None) -> Location:
    """Everything exact resume needs: trainable weights, optimizer, schedule, RNG streams, data position.

    Every worker must call it (their RNG states are gathered); rank 0 alone writes. `state.pt` appears
    whole or not at all, on disk and in object storage, so a checkpoint folder without it is unfinished.
    """
    rng = _rng_states()
    if rank_and_world()[0] != 0:
        return directory
    target = directory / f"{phase}-{step:08d}"
    state = {
        "step": step,
        "layout": layout,
        "model": trainable_state(model),
        "optimizer": optimizer.state_dict(),
        "schedule": schedule.state_dict(),
        "rng": rng,
        **(extra or {}),
    }
    with (target / "state.pt").open_write() as f:
        torch.save(state, f)
    for old in [c for c in directory.children() if c.name.startswith(f"{phase}-")][:-KEEP_CHECKPOINTS]:
        old.remove()
    return target


def checkpoints(directory: Location, phase: str) -> list[Location]:
    """The `state.pt` of every finished checkpoint of the phase, oldest first."""
    return [f for f in directory.files() if f.name == "state.pt" and f.parent.name.startswith(f"{phase}-")]


def latest_checkpoint(directory: Location, phase: str) -> Location | None:
    found = checkpoints(directory, phase)
    return found[-1] if found else None


def load_checkpoint(path: Location, model, optimizer, schedule, layout: dict) -> dict:
    """Restore a checkpoint in place; returns the whole state (step and any extra the loop saved).

    The step says where the data stands only under the layout that wrote it (workers, accumulation,
    micro batch size), so another layout is refused rather than resumed on different examples.
    """
    with path.open_read() as f:
        state = torch.load(f, map_location="cpu", weights_only=False)
    if state["layout"] != layout:
        raise UserError(
            f"{path.parent} was written with {_describe_layout(state['layout'])}, this run has "
            f"{_describe_layout(layout)}; resume with the same settings, or start over with --no-resume"
        )
    params = dict(unwrap(model).named_parameters())
    with torch.no_grad():
        for name, value in state["model"].items():
            params[name].copy_(value)
    optimizer.load_state_dict(state["optimizer"])
    schedule.load_state_dict(state["schedule"])
    _set_rng_state(state["rng"][rank_and_world()[0]])
    return state


def _describe_layout(layout: dict) -> str:
    return ", ".join(f"{key} {value}" for key, value in layout.items())


class Updater:
    """One optimizer step from the accumulated gradients: fp16 loss scaling, clipping, AdamW, the schedule.

    With fp16, `torch.amp.GradScaler` scales the loss before backward and unscales the gradients before
    clipping; a step whose gradients overflowed is skipped by the fused optimizer on the device and the
    scale halves (it doubles again after 2000 clean steps). The schedule advances on skipped steps too,
    so the learning rate and the data stay functions of the step alone, as exact resume needs.
    """

    def __init__(self, params: list[torch.nn.Parameter], lr: float, weight_decay: float, max_grad_norm: float | None,
                 total_steps: int, warmup_ratio: float, schedule: str, precision: str, device: torch.device):
        self.params, self.max_grad_norm, self.base_lr = params, max_grad_norm, lr
        self.optimizer = make_optimizer(params, lr, weight_decay)
        self.schedule = make_schedule(self.optimizer, total_steps, warmup_ratio, schedule)
        self.scaler = torch.amp.GradScaler(device.type, enabled=precision == "fp16")

    @property
    def loss_scaling(self) -> bool:
        return self.scaler.is_enabled()

    @property
    def lr(self) -> float:
        """The learning rate of the next step."""
        return self.optimizer.param_groups[0]["lr"]

    def backward(self, loss: torch.Tensor) -> None:
        self.scaler.scale(loss).backward()

    def step(self) -> torch.Tensor:
        """Update the weights; returns, on the device, the gradient norm before clipping (inf or nan when
        an fp16 step overflowed and was skipped) and, with loss scaling, the scale of the next step."""
        self.scaler.unscale_(self.optimizer)
        norm = torch.nn.utils.get_total_norm([p.grad for p in self.params if p.grad is not None])
        if self.max_grad_norm:
            torch.nn.utils.clip_grads_with_norm_(self.params, self.max_grad_norm, norm)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.schedule.step()
        self.optimizer.zero_grad(set_to_none=True)
        if not self.loss_scaling:
            return norm.reshape(1)
        # The scale tensor itself (get_scale() would be a second read of the device).
        return torch.cat([norm.reshape(1).to(self.scaler._scale), self.scaler._scale.reshape(1)])

    def state_dict(self) -> dict:
        """What a checkpoint needs beyond the optimizer and the schedule: the loss scale and its growth count."""
        return {"scaler": self.scaler.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        """After `load_checkpoint`: the loss scale, and this run's learning rate rather than the checkpoint's
        (unchanged settings give the same rates; a run that diverged resumes with a lower one)."""
        if state.get("scaler"):  # a checkpoint of a run without loss scaling has none
            self.scaler.load_state_dict(state["scaler"])
        self.schedule.base_lrs = [self.base_lr] * len(self.optimizer.param_groups)
        factor = self.schedule.lr_lambdas[0](self.schedule.last_epoch)
        for group in self.optimizer.param_groups:
            group["initial_lr"], group["lr"] = self.base_lr, self.base_lr * factor
