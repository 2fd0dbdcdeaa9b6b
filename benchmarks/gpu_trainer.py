"""Our SFT and DPO against TRL's SFTTrainer and DPOTrainer on one GPU, with a ~1B Llama built here.

The CPU benchmark (bench_trainer.py) runs a 5M-parameter model, where none of what decides speed and memory
on a GPU shows: 16-bit weights, attention kernels, the size of the logits. This one runs a Llama-architecture
model of 1.1B parameters (random weights from a config, no Hub) with bf16 weights, LoRA r16 on every linear
layer of the blocks, sequences up to 2048 tokens, packed / padding-free, on both sides, and prints tokens/s, peak
`torch.cuda.max_memory_allocated`, the step-1 loss and MFU of each, and the ratios against the targets
(>= 1.5x TRL's tokens/s, <= 0.8x its peak memory, equal step-1 loss).

Same work on both sides: the same rows in the same order (TRL reads our micro-batch order through a
sequential sampler), AdamW with a linear schedule, no warmup, clipping at 1.0, no gradient checkpointing.
SFT: multi-turn chats of 256 to 2048 tokens joined from the Self-Instruct seed tasks and HH-RLHF dialogues;
TRL gets our tokens and labels and `padding_free=True` (the one-row layout of our packing). DPO: HH-RLHF
pairs, reference = the base with the adapter disabled on both sides, sigmoid loss; TRL tokenizes the
conversations itself (bench_trainer's template makes its completion tokens exactly our targets); TRL 1.16's
DPOTrainer has no padding-free mode (it disabled it), so it pads. Each side builds its model as its users do:
ours with `load_model`, TRL from the path with `model_init_kwargs` and `peft_config`. Attention: TRL runs
SDPA (transformers keeps packed examples apart with a dense block-diagonal mask); ours runs its default,
`attention: auto`, which on a GPU is torch's variable-length flash kernel (flash-attn is not installed on
either side); `--ours-attention sdpa` pins ours to transformers' SDPA as well.

Each trainer runs in its own process, so peak memory is its own. Speed is read at the optimizer steps
(a global step hook with one device sync), over steps 2..N, so start-up and the first step's kernel
selection count for neither side; the whole `train()` call is reported too.

    benchmarks/gpu_trainer.sh prepare                     # here: wheels the GPU image lacks + the rows
    bash benchmarks/gpu_trainer.sh                        # on the GPU machine, carrying .gpu-wheels
    python benchmarks/gpu_trainer.py --cpu --tiny --data .gpu-wheels/gpu_trainer_rows.json.gz   # CPU trial
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_trainer import BENCH_TEMPLATE, ROOT, SHARED, _sequential  # noqa: E402

ROWS_FILE = "gpu_trainer_rows.json.gz"
LORA = {"rank": 16, "alpha": 32.0, "dropout": 0.0, "target_modules": "all-linear"}
TARGETS = {"speed": 1.5, "memory": 0.8, "loss_rel": 0.01}  # step-1 losses within 1% count as equal (bf16)


@dataclass
class Size:
    """Everything that differs between the GPU run and the CPU trial: the code path is the same."""

    hidden: int
    layers: int
    heads: int
    kv_heads: int
    intermediate: int
    vocab: int
    max_len: int
    min_chat: int  # SFT chats are spread over [min_chat, max_len] tokens
    sft_micro: int
    sft_accum: int
    sft_steps: int
    dpo_micro: int
    dpo_accum: int
    dpo_steps: int


# ~1.1B parameters: 16 x 60.8M in the blocks + 2 x 65.5M embeddings and head (untied).
GPU_SIZE = Size(hidden=2048, layers=16, heads=32, kv_heads=8, intermediate=8192, vocab=32000, max_len=2048,
                min_chat=256, sft_micro=8, sft_accum=2, sft_steps=40, dpo_micro=8, dpo_accum=2, dpo_steps=40)
TINY_SIZE = Size(hidden=64, layers=2, heads=4, kv_heads=2, intermediate=128, vocab=2000, max_len=256,
                 min_chat=32, sft_micro=4, sft_accum=2, sft_steps=6, dpo_micro=2, dpo_accum=2, dpo_steps=4)


class Refused(Exception):
    """A user's mistake: one line on stderr, exit 2."""


# ---- data -------------------------------------------------------------------------------------------------


def prepare(out: Path) -> None:
    """The benchmark's raw rows in one small file to carry to the GPU machine (the shared data does not go)."""
    from pipeline.train.data import hh_rlhf_rows, seed_task_chats

    seeds = SHARED / "seeds/self_instruct/seed_tasks.jsonl"
    hh = SHARED / "preferences/hh_rlhf_harmless/pairs.jsonl.gz"
    for path in (seeds, hh):
        if not path.exists():
            raise Refused(f"{path} is missing: set PIPELINE_SHARED_DATA to the shared data folder")
    rows = {"seed_chats": seed_task_chats(seeds), "hh_pairs": hh_rlhf_rows(hh)}
    out.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(out, "wt") as f:
        json.dump(rows, f)
    print(f"wrote {out}: {len(rows['seed_chats'])} seed chats, {len(rows['hh_pairs'])} preference pairs")


def sft_chats(pool: list[list[dict]], lengths: list[int], n: int, size: Size, seed: int = 0) -> list[list[dict]]:
    """`n` multi-turn chats of up to max_len tokens: the exchanges of the pool in a seeded order, joined until
    the next would pass a length drawn for each chat from [min_chat, max_len] (so a few are shorter).

    A chat's length is at most the sum of its exchanges' lengths (the template renders message by message, and
    its turn markers are special tokens, so nothing merges across a join), so none is truncated.
    """
    rng = random.Random(seed)
    usable = [i for i, n_tokens in enumerate(lengths) if n_tokens <= size.max_len]
    stream = []
    chats: list[list[dict]] = []
    messages, total, target = [], 0, rng.randint(size.min_chat, size.max_len)
    while len(chats) < n:
        if not stream:
            stream = rng.sample(usable, len(usable))
        i = stream.pop()
        if messages and total + lengths[i] > target:
            chats.append(messages)
            messages, total, target = [], 0, rng.randint(size.min_chat, size.max_len)
        messages = messages + pool[i]
        total += lengths[i]
    return chats


def build_data(rows: dict, tokenizer, size: Size) -> dict:
    """The SFT chats and DPO pairs both sides train on, and the order in which they read them."""
    from pipeline.train.data import ChatEncoder, MicroBatchOrder, preference_pairs
    from pipeline.train.dpo import encode_pairs

    encoder = ChatEncoder(tokenizer, 10**6)
    pairs = preference_pairs(rows["hh_pairs"])
    pool = rows["seed_chats"] + [[{"role": m["role"], "content": m["content"]} for m in p["chosen"]]
                                 for p in rows["hh_pairs"]]
    lengths = [len(encoder.encode(chat).input_ids) for chat in pool]
    n_sft = size.sft_steps * size.sft_accum * size.sft_micro
    chats = sft_chats(pool, lengths, n_sft, size)

    encoded = encode_pairs(encoder, pairs)
    fits = [i for i, (c, r) in enumerate(encoded) if max(len(c.input_ids), len(r.input_ids)) <= size.max_len]
    pairs = [pairs[i] for i in fits][: size.dpo_steps * size.dpo_accum * size.dpo_micro]
    sft_order = MicroBatchOrder(len(chats), size.sft_micro, 0)
    dpo_order = MicroBatchOrder(len(pairs), size.dpo_micro, 0)
    return {
        "sft_chats": chats,
        "sft_sequence": [sft_order(k) for k in range(size.sft_steps * size.sft_accum)],
        "dpo_pairs": [asdict(p) for p in pairs],
        "dpo_sequence": [dpo_order(k) for k in range(size.dpo_steps * size.dpo_accum)],
    }


# ---- model ------------------------------------------------------------------------------------------------


def build_model(directory: Path, rows: dict, size: Size, device: str) -> dict:
    """A random-weight Llama saved in bf16 with a BPE tokenizer trained on the rows; returns its description."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from tiny_models.llama import build_tiny_tokenizer

    texts = [m["content"] for chat in rows["seed_chats"] for m in chat]
    texts += [m["content"] for pair in rows["hh_pairs"] for side in ("chosen", "rejected") for m in pair[side]]
    tokenizer = build_tiny_tokenizer(texts, size.vocab)
    tokenizer.chat_template = BENCH_TEMPLATE
    config = LlamaConfig(
        vocab_size=max(size.vocab, len(tokenizer)), hidden_size=size.hidden, intermediate_size=size.intermediate,
        num_hidden_layers=size.layers, num_attention_heads=size.heads, num_key_value_heads=size.kv_heads,
        head_dim=size.hidden // size.heads, max_position_embeddings=size.max_len, tie_word_embeddings=False,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(0)
    with torch.device(device):
        model = LlamaForCausalLM(config).to(torch.bfloat16)
    model.save_pretrained(directory, safe_serialization=True)
    tokenizer.save_pretrained(directory)
    n_params = sum(p.numel() for p in model.parameters())
    del model
    if device == "cuda":
        torch.cuda.empty_cache()  # the trainers' processes get the memory
    return {"parameters": n_params, "tokenizer_vocab": len(tokenizer), **config.to_diff_dict()}


# ---- one trainer, in its own process ----------------------------------------------------------------------


class StepClock:
    """Time at the end of every optimizer step, whoever steps: a global post-step hook with one device sync."""

    def __init__(self, cuda: bool):
        from torch.optim.optimizer import register_optimizer_step_post_hook

        self.times: list[float] = []
        self._cuda = cuda
        register_optimizer_step_post_hook(self._tick)

    def _tick(self, *_):
        import torch

        if self._cuda:
            torch.cuda.synchronize()
        self.times.append(time.perf_counter())


def worker(side: str, phase: str, work: Path, attention: str) -> dict:
    """Train one side on one phase; `attention` is ours only (TRL's is sdpa, the best it has without flash-attn)."""
    import torch

    spec = json.loads((work / "spec.json").read_text())
    size, cuda, model = Size(**spec["size"]), spec["device"] == "cuda", str(work / "model")
    data = json.loads((work / "data.json").read_text())
    from pipeline.train.config import FinetuneConfig
    from pipeline.train.data import ChatEncoder, PreferencePair
    from pipeline.train.dpo import encode_pairs
    from pipeline.train.model import load_tokenizer
    from pipeline.train.tracking import Flops

    common = {"max_seq_len": size.max_len, "warmup_ratio": 0.0, "schedule": "linear", "max_grad_norm": 1.0,
              "eval_fraction": 0.0, "checkpoint_every": 10**9}
    if phase == "sft":
        s = {**common, "max_steps": size.sft_steps, "micro_batch_size": size.sft_micro, "grad_accum": size.sft_accum,
             "learning_rate": 2e-4, "sample_prompts": 0}
        cfg = FinetuneConfig(model=model, lora=LORA, sft=s, precision="bf16", attention=attention, use_gpu=cuda,
                             resume=False)
        lr, micro, accum, steps = s["learning_rate"], size.sft_micro, size.sft_accum, size.sft_steps
    else:
        s = {**common, "max_steps": size.dpo_steps, "micro_batch_size": size.dpo_micro, "grad_accum": size.dpo_accum,
             "learning_rate": 5e-6, "enabled": True, "reference": "adapter_disabled", "loss": "sigmoid", "beta": 0.1}
        cfg = FinetuneConfig(model=model, lora=LORA, dpo=s, skip_sft=True, precision="bf16", attention=attention,
                             use_gpu=cuda, resume=False)
        lr, micro, accum, steps = s["learning_rate"], size.dpo_micro, size.dpo_accum, size.dpo_steps
    tokenizer = load_tokenizer(cfg)
    encoder = ChatEncoder(tokenizer, size.max_len)
    sequence = data[f"{phase}_sequence"]
    if phase == "sft":
        examples = [encoder.encode(chat) for chat in data["sft_chats"]]
        per_step = [[examples[i] for k in range(step * accum, (step + 1) * accum) for i in sequence[k]]
                    for step in range(steps)]
    else:
        pairs = [PreferencePair(**p) for p in data["dpo_pairs"]]
        encoded = encode_pairs(encoder, pairs)
        per_step = [[e for k in range(step * accum, (step + 1) * accum) for i in sequence[k] for e in encoded[i]]
                    for step in range(steps)]
    if any(e.truncated for e in (examples if phase == "sft" else [e for p in encoded for e in p])):
        raise RuntimeError("an example is longer than max_len: the sides would truncate differently")

    clock = StepClock(cuda)
    with tempfile.TemporaryDirectory() as out:
        if side == "ours":
            from pipeline.train.dpo import train_dpo
            from pipeline.train.model import load_model
            from pipeline.train.output import Output
            from pipeline.train.run import seed_everything
            from pipeline.train.sft import train_sft

            seed_everything(0)
            net = load_model(cfg)
            reset_peak_memory(cuda)
            start = time.perf_counter()
            if phase == "sft":
                history = train_sft(net, tokenizer, examples, [], [], cfg, Output(out))
            else:
                history = train_dpo(net, tokenizer, encoded, [], cfg, Output(out))
            whole = time.perf_counter() - start
            losses = [h["loss"] for h in history]
        else:
            from datasets import Dataset
            from peft import LoraConfig

            peft_config = LoraConfig(r=LORA["rank"], lora_alpha=LORA["alpha"], lora_dropout=LORA["dropout"],
                                     target_modules=LORA["target_modules"], task_type="CAUSAL_LM")
            args = dict(output_dir=out, max_steps=steps, learning_rate=lr, lr_scheduler_type="linear", warmup_steps=0,
                        weight_decay=0.0, max_grad_norm=1.0, logging_steps=1, save_strategy="no", report_to=[],
                        gradient_checkpointing=False, use_cpu=not cuda, seed=0, bf16=True, dataloader_num_workers=0,
                        disable_tqdm=True, per_device_train_batch_size=micro, gradient_accumulation_steps=accum,
                        model_init_kwargs={"dtype": "bfloat16", "attn_implementation": "sdpa"})
            flat = [i for ix in sequence for i in ix]
            if phase == "sft":
                from trl import SFTConfig, SFTTrainer

                rows = [{"input_ids": examples[i].input_ids, "labels": [-100] + examples[i].targets[:-1]} for i in flat]
                trainer = _sequential(SFTTrainer)(
                    model=model, args=SFTConfig(padding_free=True, max_length=None, **args),
                    train_dataset=Dataset.from_list(rows), processing_class=tokenizer, peft_config=peft_config)
            else:
                from trl import DPOConfig, DPOTrainer

                rows = [{"prompt": pairs[i].prompt, "chosen": pairs[i].chosen, "rejected": pairs[i].rejected}
                        for i in flat]
                trainer = _sequential(DPOTrainer)(
                    model=model, args=DPOConfig(beta=0.1, loss_type=["sigmoid"], max_length=size.max_len,
                                                padding_free=False, precompute_ref_log_probs=False, **args),
                    train_dataset=Dataset.from_list(rows), processing_class=tokenizer, peft_config=peft_config)
            net = trainer.model
            reset_peak_memory(cuda)
            start = time.perf_counter()
            trainer.train()
            whole = time.perf_counter() - start
            losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]

    if len(clock.times) != steps:
        raise RuntimeError(f"{len(clock.times)} optimizer steps timed, {steps} expected")
    tokens = [sum(len(e.input_ids) for e in step) for step in per_step]
    model_flops = Flops.of(net)
    flops = [step_flops(model_flops, step, with_reference=phase == "dpo") for step in per_step]
    steady = clock.times[-1] - clock.times[0]
    base = next(p for name, p in net.named_parameters() if name.endswith("q_proj.base_layer.weight"))
    lora = next(p for name, p in net.named_parameters() if "lora_A" in name)
    return {
        "side": side, "phase": phase, "steps": steps, "tokens": sum(tokens),
        "target_tokens": sum(e.n_targets for step in per_step for e in step),
        "tokens_per_s": sum(tokens[1:]) / steady, "tokens_per_s_whole": sum(tokens) / whole,
        "seconds_steps_2_on": steady, "seconds_whole": whole, "flops_per_s": sum(flops[1:]) / steady,
        "peak_memory_gib": (torch.cuda.max_memory_allocated() if cuda else peak_rss_bytes()) / 2**30,
        "memory_measure": "torch.cuda.max_memory_allocated" if cuda else "peak RSS of the process",
        "losses": losses, "base_dtype": str(base.dtype).removeprefix("torch."),
        "lora_dtype": str(lora.dtype).removeprefix("torch."),
        "attention": getattr(net.config, "_attn_implementation", None),
    }


def step_flops(flops, examples: list, with_reference: bool) -> int:
    """A step's FLOPs as our trainer's logs count them (tracking.Flops: no weight gradients of frozen
    weights, the LM head on target tokens only), plus the reference's forward pass for DPO; the same
    count on both sides, so MFU compares as tokens/s does."""
    tokens, targets = sum(len(e.input_ids) for e in examples), sum(e.n_targets for e in examples)
    squares = sum(len(e.input_ids) ** 2 for e in examples)
    reference = flops.frozen_forward(tokens, targets, squares) if with_reference else 0
    return flops.train(tokens, targets, squares) + reference


def reset_peak_memory(cuda: bool) -> None:
    """Both sides' peak from the start of training, weights included (our trainer resets it there too)."""
    if cuda:
        import torch

        torch.cuda.reset_peak_memory_stats()


def peak_rss_bytes() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


# ---- the whole run ----------------------------------------------------------------------------------------


def environment(cuda: bool) -> dict:
    import importlib.metadata

    import torch

    versions = {}
    for name in ("torch", "transformers", "peft", "accelerate", "trl", "datasets", "pyarrow", "pydantic"):
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    device = torch.cuda.get_device_name() if cuda else "CPU"
    return {"device": device, "versions": versions, "python": sys.version.split()[0]}


def device_peak_flops(cuda: bool, override: float | None) -> float | None:
    """MFU's denominator: the dense bf16 peak our trainer's logs use for this GPU, or the one given."""
    import torch

    from pipeline.train.tracking import peak_flops

    if override:
        return override * 1e12
    return peak_flops(torch.device("cuda"), "bf16") if cuda else None


def compare(phase: str, ours: dict, trl: dict) -> dict:
    loss_rel = abs(ours["losses"][0] - trl["losses"][0]) / abs(trl["losses"][0])
    return {
        "speed": ours["tokens_per_s"] / trl["tokens_per_s"],
        "speed_whole": ours["tokens_per_s_whole"] / trl["tokens_per_s_whole"],
        "memory": ours["peak_memory_gib"] / trl["peak_memory_gib"],
        "step1_loss_rel_diff": loss_rel,
        "met": {"speed": ours["tokens_per_s"] >= TARGETS["speed"] * trl["tokens_per_s"],
                "memory": ours["peak_memory_gib"] <= TARGETS["memory"] * trl["peak_memory_gib"],
                "step1_loss": loss_rel <= TARGETS["loss_rel"]},
    }


def report(result: dict) -> None:
    peak = result["peak_flops"]
    print("\n| phase | trainer | tokens/s (steps 2-N) | tokens/s (whole train call) | peak memory GiB | step-1 loss "
          "| final loss | MFU | base weights | LoRA | attention |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---|---|---|")
    for phase, sides in result["phases"].items():
        for side in ("ours", "trl"):
            r = sides.get(side)
            if not r or "error" in r:
                print(f"| {phase} | {side} | failed: {(r or {}).get('error', 'not run')} |")
                continue
            mfu = f"{100 * r['flops_per_s'] / peak:.1f}%" if peak else "n/a"
            print(f"| {phase} | {side} | {r['tokens_per_s']:,.0f} | {r['tokens_per_s_whole']:,.0f} | "
                  f"{r['peak_memory_gib']:.2f} | {r['losses'][0]:.4f} | {r['losses'][-1]:.4f} | {mfu} | "
                  f"{r['base_dtype']} | {r['lora_dtype']} | {r['attention']} |")
    for phase, sides in result["phases"].items():
        if "attention_auto_failed" in sides.get("ours", {}):
            print(f"{phase} ours: attention auto failed ({sides['ours']['attention_auto_failed']}); "
                  f"its figures are with sdpa")
        c = sides.get("ratios")
        if not c:
            continue
        yes = lambda ok: "met" if ok else "MISSED"  # noqa: E731
        print(f"{phase}: ours/TRL tokens/s {c['speed']:.2f}x (target >= {TARGETS['speed']}x: {yes(c['met']['speed'])}; "
              f"whole call {c['speed_whole']:.2f}x), peak memory {c['memory']:.2f}x (target <= {TARGETS['memory']}x: "
              f"{yes(c['met']['memory'])}), step-1 loss differs by {100 * c['step1_loss_rel_diff']:.3f}% "
              f"({'equal' if c['met']['step1_loss'] else 'NOT equal'})")


def run(args, size: Size) -> int:
    import torch

    cuda = not args.cpu
    if cuda and not torch.cuda.is_available():
        raise Refused("no CUDA GPU here: run on the GPU machine, or try the CPU mode with --cpu --tiny")
    data_file = Path(args.data)
    if not data_file.exists():
        raise Refused(f"{data_file} is missing: make it with `benchmarks/gpu_trainer.sh prepare` "
                      f"(or gpu_trainer.py --prepare {data_file})")
    deadline = time.monotonic() + args.budget_s
    env = environment(cuda)
    print(f"GPU trainer benchmark on {env['device']}: " + ", ".join(f"{k} {v}" for k, v in env["versions"].items()),
          flush=True)
    with gzip.open(data_file, "rt") as f:
        rows = json.load(f)
    phases = [args.only] if args.only else ["sft", "dpo"]
    result: dict = {"environment": env, "size": asdict(size), "targets": TARGETS,
                    "peak_flops": device_peak_flops(cuda, args.peak_tflops), "phases": {}}
    with tempfile.TemporaryDirectory(prefix="gpu-trainer-") as tmp:
        work = Path(tmp)
        start = time.perf_counter()
        result["model"] = build_model(work / "model", rows, size, "cuda" if cuda else "cpu")
        from transformers import AutoTokenizer

        data = build_data(rows, AutoTokenizer.from_pretrained(work / "model"), size)
        (work / "data.json").write_text(json.dumps(data))
        (work / "spec.json").write_text(json.dumps({"size": asdict(size), "device": "cuda" if cuda else "cpu"}))
        m = result["model"]
        print(f"model: Llama, {m['parameters'] / 1e6:,.1f}M parameters (hidden {size.hidden}, {size.layers} layers, "
              f"{size.heads} heads / {size.kv_heads} KV, MLP {size.intermediate}, vocab {m['vocab_size']}), "
              f"built and data ready in {time.perf_counter() - start:.0f} s; SFT {len(data['sft_chats'])} chats, "
              f"DPO {len(data['dpo_pairs'])} pairs", flush=True)
        jobs = [(phase, side) for phase in phases for side in ("ours", "trl")]
        for n, (phase, side) in enumerate(jobs):
            left = deadline - time.monotonic()
            timeout = max(1.0, min(left, 2 * left / (len(jobs) - n)))
            r = run_worker(side, phase, work, timeout, args.ours_attention)
            if "error" in r and side == "ours" and args.ours_attention == "auto" and deadline - time.monotonic() > 60:
                # One run on the GPU should give figures: ours again on transformers' SDPA, the failure kept.
                print(f"{phase} ours: again with attention sdpa", file=sys.stderr, flush=True)
                left = deadline - time.monotonic()
                r = {**run_worker(side, phase, work, min(left, 2 * left / (len(jobs) - n)), "sdpa"),
                     "attention_auto_failed": r["error"]}
            result["phases"].setdefault(phase, {})[side] = r
            save(result, args.json)  # what is done survives the shell script's time limit
            if "error" not in r:
                print(f"{phase} {side}: {r['tokens_per_s']:,.0f} tokens/s, peak {r['peak_memory_gib']:.2f} GiB, "
                      f"step-1 loss {r['losses'][0]:.4f}, {r['seconds_whole']:.1f} s in train", flush=True)
    for phase, sides in result["phases"].items():
        if all("error" not in sides[s] for s in ("ours", "trl")):
            sides["ratios"] = compare(phase, sides["ours"], sides["trl"])
    report(result)
    for target in save(result, args.json):
        print(f"figures written to {target}")
    failed = [f"{p} {s}" for p, sides in result["phases"].items() for s in ("ours", "trl") if "error" in sides[s]]
    return 1 if failed else 0


def save(result: dict, path: str | None) -> list[str]:
    """The figures as JSON at `path` and at $OUT/gpu_trainer.json (the device tool brings $OUT back)."""
    out = os.environ.get("OUT")
    targets = list(filter(None, [path, out and str(Path(out) / "gpu_trainer.json")]))
    for target in targets:
        Path(target).write_text(json.dumps(result, indent=1))
    return targets


def run_worker(side: str, phase: str, work: Path, timeout: float, attention: str) -> dict:
    """One trainer in a fresh process; its result, or {"error": ...} with the end of its stderr printed."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    cmd = [sys.executable, __file__, "--worker", side, phase, str(work), attention]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout)
    except subprocess.TimeoutExpired:
        print(f"{phase} {side}: stopped after {timeout:.0f} s (the time budget)", file=sys.stderr, flush=True)
        return {"error": f"timed out after {timeout:.0f} s"}
    if done.returncode:
        print(f"{phase} {side} failed (exit {done.returncode}):\n{done.stderr[-4000:]}", file=sys.stderr, flush=True)
        return {"error": f"exit {done.returncode}: {(done.stderr.strip().splitlines() or ['?'])[-1][:200]}"}
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--prepare", metavar="FILE", help="write the rows the benchmark needs to FILE and stop")
    p.add_argument("--data", default=str(ROOT / ".gpu-wheels" / ROWS_FILE), help="the rows file --prepare wrote")
    p.add_argument("--cpu", action="store_true", help="run on the CPU (a trial of the GPU run)")
    p.add_argument("--tiny", action="store_true", help="a tiny model and a few short steps")
    p.add_argument("--only", choices=["sft", "dpo"])
    p.add_argument("--ours-attention", default="auto", choices=["auto", "varlen", "sdpa", "flash_attention_2", "eager"],
                   help="our trainer's `attention` (TRL runs sdpa); auto is our default: torch's varlen kernel on a "
                   "GPU, retried as sdpa if it fails")
    p.add_argument("--sft-steps", type=int)
    p.add_argument("--dpo-steps", type=int)
    p.add_argument("--budget-s", type=float, default=440.0, help="stop starting trainers after this many seconds")
    p.add_argument("--peak-tflops", type=float, help="the device's dense bf16 peak, for MFU (default: our trainer's "
                   "table, by name)")
    p.add_argument("--json", help="also write the figures here (and to $OUT/gpu_trainer.json when OUT is set)")
    p.add_argument("--worker", nargs=4, metavar=("SIDE", "PHASE", "WORK", "ATTENTION"), help=argparse.SUPPRESS)
    args = p.parse_args()
    try:
        if args.worker:
            side, phase, work, attention = args.worker
            print(json.dumps(worker(side, phase, Path(work), attention)))
            return 0
        if args.prepare:
            prepare(Path(args.prepare))
            return 0
        size = TINY_SIZE if args.tiny else GPU_SIZE
        size = Size(**{**asdict(size), **{k: v for k, v in (("sft_steps", args.sft_steps),
                                                            ("dpo_steps", args.dpo_steps)) if v}})
        if min(size.sft_steps, size.dpo_steps) < 2:
            raise Refused("--sft-steps and --dpo-steps must be at least 2 (speed is read over steps 2..N)")
        return run(args, size)
    except Refused as e:
        print(f"gpu_trainer: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
