"""What a fine-tune prints while it trains: where each phase stands, now and then, from rank 0.

A phase of hours with nothing on the console looks hung, and a line per step floods a log. So a phase
prints its first step, then a step at most every `EVERY_S` seconds, each step with a held-out
evaluation and its last step: the loss (and DPO's reward accuracy and margin), the speed and the time
left. Plain lines, in a terminal as in a log file or a Ray worker's forwarded output; the JSONL log and
TensorBoard keep every step.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO

EVERY_S = 30.0
SHOWN = ("loss", "reward_accuracy", "margin", "eval_loss", "eval_reward_accuracy")  # in this order, where present


class StepLines:
    def __init__(self, phase: str, steps: int, start: int, enabled: bool, every_s: float = EVERY_S,
                 stream: TextIO | None = None):
        self.phase, self.steps, self.start = phase, steps, start
        self.enabled, self.every_s = enabled, every_s
        self.stream = stream
        self.started = time.monotonic()
        self.printed: float | None = None

    def step(self, step: int, metrics: dict) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        due = (self.printed is None or step == self.steps or "eval_loss" in metrics
               or now - self.printed >= self.every_s)
        if not due:
            return
        self.printed = now
        shown = ", ".join(f"{key.replace('_', ' ')} {metrics[key]:.4g}" for key in SHOWN
                          if isinstance(metrics.get(key), (int, float)))
        speed = metrics.get("tokens_per_s")
        parts = [shown] + ([f"{speed:,.0f} tokens/s"] if speed else [])
        if step < self.steps:
            per_step = (now - self.started) / max(step - self.start, 1)
            parts.append(f"{duration(per_step * (self.steps - step))} left")
        resumed = f" (resumed at step {self.start})" if self.start and step == self.start + 1 else ""
        print(f"finetune: {self.phase} step {step}/{self.steps}{resumed}: {', '.join(p for p in parts if p)}",
              file=self.stream or sys.stderr, flush=True)


def duration(seconds: float) -> str:
    """3h05m, 4m12s, 9s: the two largest units."""
    s = int(round(seconds))
    if s >= 3600:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    if s >= 60:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s}s"
