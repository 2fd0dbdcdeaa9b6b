"""The lines a fine-tune prints while it trains: enough to see it move, never a line per step."""

import io

from pipeline.train import console
from pipeline.train.console import StepLines, duration


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def lines(every_s=30.0, steps=100, start=0, enabled=True, monkeypatch=None):
    clock = Clock()
    monkeypatch.setattr(console.time, "monotonic", clock)
    out = io.StringIO()
    return StepLines("sft", steps, start, enabled, every_s, out), clock, out


def test_first_step_then_every_interval_each_evaluation_and_the_last(monkeypatch):
    shown, clock, out = lines(monkeypatch=monkeypatch)
    for step in range(1, 101):
        clock.now += 1.0  # a step a second
        metrics = {"loss": 2.0 - step / 100, "tokens_per_s": 5000.0}
        if step == 50:
            metrics["eval_loss"] = 1.6
        shown.step(step, metrics)
    printed = out.getvalue().splitlines()
    assert [line.split(":")[1].strip() for line in printed] == [
        "sft step 1/100", "sft step 31/100", "sft step 50/100", "sft step 80/100", "sft step 100/100"]
    assert printed[0] == "finetune: sft step 1/100: loss 1.99, 5,000 tokens/s, 1m39s left"
    assert printed[2] == "finetune: sft step 50/100: loss 1.5, eval loss 1.6, 5,000 tokens/s, 50s left"
    assert printed[-1] == "finetune: sft step 100/100: loss 1, 5,000 tokens/s"  # done: no time left to say


def test_a_resumed_phase_says_so_and_counts_its_time_from_where_it_resumed(monkeypatch):
    shown, clock, out = lines(steps=10, start=6, monkeypatch=monkeypatch)
    clock.now += 2.0
    shown.step(7, {"loss": 0.5, "reward_accuracy": 0.75, "margin": 0.25, "tokens_per_s": None})
    assert out.getvalue() == "finetune: sft step 7/10 (resumed at step 6): loss 0.5, reward accuracy 0.75, margin 0.25, 6s left\n"


def test_only_rank_zero_prints(monkeypatch):
    shown, clock, out = lines(enabled=False, monkeypatch=monkeypatch)
    shown.step(1, {"loss": 1.0})
    assert out.getvalue() == ""


def test_durations_read_at_a_glance():
    assert [duration(s) for s in (0.4, 9, 61, 3599, 3600, 11_100)] == ["0s", "9s", "1m01s", "59m59s", "1h00m", "3h05m"]
