"""Our SFT and DPO loops vs TRL's SFTTrainer and DPOTrainer: same model, data, order and hyperparameters.

Both sides start from the identical LoRA-wrapped tiny Llama (same seed), see the identical examples in
the identical order (TRL gets our micro-batch order with a sequential sampler), with the same optimizer
(AdamW), linear schedule, clipping, LoRA config and no gradient checkpointing, on CPU in fp32. SFT:
TRL gets our tokenized examples and labels (so the targets are the same tokens) and `padding_free=True`,
the layout our packing uses. DPO: TRL tokenizes the same conversations itself; the reference is the
base with the adapter disabled on both sides. Pairs and examples are chosen short enough that neither
side truncates. Each measurement runs in a fresh process (peak RSS is per process); sides alternate;
medians over repeats.

    python benchmarks/bench_trainer.py [--repeats 3] [--sft-steps 20] [--dpo-steps 10] [--only sft|dpo]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SHARED = Path(os.environ.get("PIPELINE_SHARED_DATA", ROOT.parent / "shared" / "data"))

MAX_LEN = 256
LORA = {"rank": 16, "alpha": 32.0, "dropout": 0.0}
SFT = {"micro_batch_size": 4, "grad_accum": 2, "learning_rate": 1e-3}
DPO = {"micro_batch_size": 2, "grad_accum": 2, "learning_rate": 5e-4, "beta": 0.1}
# Turns end at <|im_end|> with no newline after it, so the response TRL cuts out of "prompt + completion"
# is exactly the assistant content and end-of-turn token that we learn (TRL would also train the "\n").
BENCH_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def config(model: str, steps: int, phase: str):
    from pipeline.train.config import FinetuneConfig

    common = {"max_seq_len": MAX_LEN, "max_steps": steps, "warmup_ratio": 0.0, "schedule": "linear",
              "eval_fraction": 0.0, "checkpoint_every": 10**9, "max_grad_norm": 1.0}
    if phase == "sft":
        return FinetuneConfig(model=model, lora=LORA, sft={**common, **SFT, "sample_prompts": 0}, resume=False)
    return FinetuneConfig(model=model, lora=LORA, skip_sft=True, resume=False,
                          dpo={**common, **DPO, "enabled": True, "reference": "adapter_disabled", "loss": "sigmoid"})


def sft_data(model: str, steps: int):
    """(tokenizer, examples, order of example indices over all micro batches of the run)."""
    from pipeline.train.data import ChatEncoder, MicroBatchOrder, seed_task_chats
    from pipeline.train.model import load_tokenizer

    cfg = config(model, steps, "sft")
    tokenizer = load_tokenizer(cfg)
    encoder = ChatEncoder(tokenizer, MAX_LEN)
    examples = [encoder.encode(c) for c in seed_task_chats(SHARED / "seeds/self_instruct/seed_tasks.jsonl")]
    examples = [e for e in examples if not e.truncated]
    examples = examples[: len(examples) - len(examples) % SFT["micro_batch_size"]]  # full micro batches only
    order = MicroBatchOrder(len(examples), SFT["micro_batch_size"], cfg.seed)
    sequence = [i for k in range(steps * SFT["grad_accum"]) for i in order(k)]
    return cfg, tokenizer, examples, sequence


def dpo_data(model: str, steps: int):
    from pipeline.train.data import ChatEncoder, MicroBatchOrder, hh_rlhf_rows, preference_pairs
    from pipeline.train.dpo import encode_pairs
    from pipeline.train.model import load_tokenizer

    cfg = config(model, steps, "dpo")
    tokenizer = load_tokenizer(cfg)
    pairs = preference_pairs(hh_rlhf_rows(SHARED / "preferences/hh_rlhf_harmless/pairs.jsonl.gz", 400))
    encoded = encode_pairs(ChatEncoder(tokenizer, 10**6), pairs)
    keep = [i for i, (c, r) in enumerate(encoded) if max(len(c.input_ids), len(r.input_ids)) <= MAX_LEN][:64]
    pairs, encoded = [pairs[i] for i in keep], [encoded[i] for i in keep]
    order = MicroBatchOrder(len(pairs), DPO["micro_batch_size"], cfg.seed)
    sequence = [i for k in range(steps * DPO["grad_accum"]) for i in order(k)]
    return cfg, tokenizer, pairs, encoded, sequence


def fresh_model(cfg):
    from pipeline.train.model import load_model
    from pipeline.train.run import seed_everything

    seed_everything(0)  # identical LoRA initialisation on both sides
    return load_model(cfg)


def worker(side: str, phase: str, model: str, steps: int, out: Path) -> dict:
    import torch

    if phase == "sft":
        cfg, tokenizer, examples, sequence = sft_data(model, steps)
        tokens = sum(len(examples[i].input_ids) for i in sequence)
    else:
        cfg, tokenizer, pairs, encoded, sequence = dpo_data(model, steps)
        tokens = sum(len(encoded[i][0].input_ids) + len(encoded[i][1].input_ids) for i in sequence)
    net = fresh_model(cfg)
    before = rss_mb()
    if side == "ours":
        from pipeline.train.dpo import train_dpo
        from pipeline.train.output import Output
        from pipeline.train.sft import train_sft

        start, cpu = time.perf_counter(), time.process_time()
        if phase == "sft":
            history = train_sft(net, tokenizer, examples, [], [], cfg, Output(out))
        else:
            history = train_dpo(net, tokenizer, encoded, [], cfg, Output(out))
        seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
        losses = [h["loss"] for h in history]
    else:
        from datasets import Dataset

        common = dict(output_dir=str(out), max_steps=steps, learning_rate=cfg.sft.learning_rate if phase == "sft"
                      else cfg.dpo.learning_rate, lr_scheduler_type="linear", warmup_steps=0, weight_decay=0.0,
                      max_grad_norm=1.0, logging_steps=1, save_strategy="no", report_to=[], gradient_checkpointing=False,
                      use_cpu=True, seed=0, bf16=False, dataloader_num_workers=0, disable_tqdm=True, max_length=MAX_LEN)
        if phase == "sft":
            from trl import SFTConfig, SFTTrainer

            rows = [{"input_ids": examples[i].input_ids, "labels": [-100] + examples[i].targets[:-1]} for i in sequence]
            args = SFTConfig(per_device_train_batch_size=SFT["micro_batch_size"],
                             gradient_accumulation_steps=SFT["grad_accum"], padding_free=True,
                             **{**common, "max_length": None})  # our examples are already within MAX_LEN
            trainer = _sequential(SFTTrainer)(model=net, args=args, train_dataset=Dataset.from_list(rows),
                                              processing_class=tokenizer)
        else:
            from trl import DPOConfig, DPOTrainer

            rows = [{"prompt": pairs[i].prompt, "chosen": pairs[i].chosen, "rejected": pairs[i].rejected} for i in sequence]
            args = DPOConfig(per_device_train_batch_size=DPO["micro_batch_size"],
                             gradient_accumulation_steps=DPO["grad_accum"], beta=DPO["beta"], loss_type=["sigmoid"],
                             **common)
            trainer = _sequential(DPOTrainer)(model=net, args=args, train_dataset=Dataset.from_list(rows),
                                              processing_class=tokenizer)
        start, cpu = time.perf_counter(), time.process_time()
        trainer.train()
        seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
        losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    return {"side": side, "phase": phase, "seconds": seconds, "tokens": tokens, "tokens_per_s": tokens / seconds,
            "tokens_per_cpu_s": tokens / cpu,
            "peak_rss_mb": peak_rss_mb(), "training_rss_mb": peak_rss_mb() - before, "losses": losses,
            "threads": torch.get_num_threads()}


def _sequential(trainer_cls):
    """The TRL trainer reading the dataset in the given order (ours), instead of reshuffling it."""
    import torch

    class Sequential(trainer_cls):
        def _get_train_sampler(self, *args, **kwargs):
            return torch.utils.data.SequentialSampler(self.train_dataset)

    return Sequential


def build_model(directory: Path) -> str:
    from transformers import AutoTokenizer

    from pipeline.train.data import seed_task_chats
    from tiny_models.llama import build_tiny_model

    texts = [m["content"] for c in seed_task_chats(SHARED / "seeds/self_instruct/seed_tasks.jsonl") for m in c]
    path = build_tiny_model(directory, texts, vocab_size=3000, hidden_size=128, layers=2, heads=2)
    tokenizer = AutoTokenizer.from_pretrained(path)
    tokenizer.chat_template = BENCH_TEMPLATE
    tokenizer.save_pretrained(path)
    return str(path)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--sft-steps", type=int, default=20)
    p.add_argument("--dpo-steps", type=int, default=10)
    p.add_argument("--only", choices=["sft", "dpo"])
    p.add_argument("--worker", nargs=4, metavar=("SIDE", "PHASE", "MODEL", "STEPS"), help=argparse.SUPPRESS)
    p.add_argument("--json", help="also write all measurements here")
    args = p.parse_args()
    if args.worker:
        side, phase, model, steps = args.worker
        with tempfile.TemporaryDirectory() as out:
            print(json.dumps(worker(side, phase, model, int(steps), Path(out))))
        return

    results: dict[str, list[dict]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        model = build_model(Path(tmp) / "model")
        phases = [args.only] if args.only else ["sft", "dpo"]
        for phase in phases:
            steps = args.sft_steps if phase == "sft" else args.dpo_steps
            for repeat in range(args.repeats):
                for side in (["ours", "trl"] if repeat % 2 == 0 else ["trl", "ours"]):
                    cmd = [sys.executable, __file__, "--worker", side, phase, model, str(steps)]
                    done = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
                    if done.returncode:
                        sys.exit(f"{side} {phase} failed:\n{done.stderr[-3000:]}")
                    r = json.loads(done.stdout.strip().splitlines()[-1])
                    results.setdefault(f"{phase}/{side}", []).append(r)
                    print(f"{phase} {side} repeat {repeat}: {r['tokens_per_s']:.0f} tok/s, peak {r['peak_rss_mb']:.0f} MB, "
                          f"final loss {r['losses'][-1]:.4f}", flush=True)
    report(results)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))


def report(results: dict[str, list[dict]]) -> None:
    med = lambda rs, k: statistics.median(r[k] for r in rs)  # noqa: E731
    print("\n| phase | trainer | tokens/s (median) | tokens/CPU-s (median) | peak RSS MB | RSS growth in training MB "
          "| mean loss | final loss |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for key, rs in results.items():
        phase, side = key.split("/")
        losses = rs[0]["losses"]
        print(f"| {phase} | {side} | {med(rs, 'tokens_per_s'):.0f} | {med(rs, 'tokens_per_cpu_s'):.0f} | "
              f"{med(rs, 'peak_rss_mb'):.0f} | "
              f"{med(rs, 'training_rss_mb'):.0f} | {statistics.mean(losses):.4f} | {losses[-1]:.4f} |")
    for phase in ("sft", "dpo"):
        ours, trl = results.get(f"{phase}/ours"), results.get(f"{phase}/trl")
        if not ours or not trl:
            continue
        a, b = ours[0]["losses"], trl[0]["losses"]
        worst = max(abs(x - y) / abs(y) for x, y in zip(a, b))
        print(f"{phase}: speed ours/TRL = {med(ours, 'tokens_per_s') / med(trl, 'tokens_per_s'):.2f}x wall, "
              f"{med(ours, 'tokens_per_cpu_s') / med(trl, 'tokens_per_cpu_s'):.2f}x per CPU-second; "
              f"peak RSS ours/TRL = {med(ours, 'peak_rss_mb') / med(trl, 'peak_rss_mb'):.2f}; "
              f"largest per-step loss difference = {100 * worst:.3f}% over {len(a)} steps")
        print(f"{phase} loss curve ours: {[round(x, 4) for x in a]}")
        print(f"{phase} loss curve TRL:  {[round(x, 4) for x in b]}")


if __name__ == "__main__":
    main()
