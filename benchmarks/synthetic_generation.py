"""Self-Instruct and Evol-Instruct through a real vLLM CPU server: our batched client vs a sequential loop.

Both sides run the same algorithm code against the same server in the same run; the only
difference is that the sequential side sends one request at a time (what a plain loop over the
`openai` client does), while ours sends each round's requests concurrently. The model is the
tiny local Llama taught our prompts' formats from the seed tasks (scripts/make_tiny_model.py
--train-on-seeds, cached in models/), so generations end with EOS at their natural length and the
rules accept some of them: the script also prints what happened to every proposal and evolution
(accepted, or the rule that dropped it), summed over our side's repeats. Medians over repeats.

    PIPELINE_VLLM_VENV=.venv-vllm python benchmarks/synthetic_generation.py [--model DIR] [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from generators.evol_instruct import EvolConfig, EvolInstruct, elimination_counts  # noqa: E402
from generators.factory import make_client, parse_llm_config, server_process  # noqa: E402
from generators.self_instruct import SelfInstruct, SelfInstructConfig, load_seed_tasks  # noqa: E402

DATA = Path(os.environ.get("PIPELINE_SHARED_DATA", ROOT.parent / "shared" / "data"))


class Sequential:
    """The same client, one request in flight at a time."""

    def __init__(self, client):
        self.client = client
        self.model = client.model

    def generate(self, requests):
        return [self.client.generate([r])[0] for r in requests]

    def close(self):
        pass


class Counting:
    """Counts requests and completion tokens that pass through."""

    def __init__(self, client):
        self.client, self.model = client, client.model
        self.requests = self.tokens = 0

    def generate(self, requests):
        out = self.client.generate(requests)
        self.requests += len(requests)
        self.tokens += sum(r.usage.completion_tokens for r in out)
        return out

    def close(self):
        pass


def run_self_instruct(client, seeds, rounds, per_round, max_tokens):
    """(rows, outcomes): a row is one proposal prompt; outcomes count proposals pooled or dropped by reason."""
    cfg = SelfInstructConfig(target=10_000, requests_per_round=per_round, max_stale_rounds=rounds, max_tokens=max_tokens,
                             instance_max_tokens=max_tokens)  # fmt: skip
    algo = SelfInstruct(client, seeds, cfg)
    outcomes = Counter()
    for round_no in range(1, rounds + 1):
        accepted, dropped = algo.propose(round_no)
        if accepted:
            algo.classify(accepted)
            algo.make_instances(accepted)
        outcomes.update(p.reason or "pooled" for p in accepted + dropped)
    return rounds * per_round, outcomes


def run_evol(client, instructions, max_tokens):
    """(rows, outcomes): a row is one evolution attempt; outcomes count successes and eliminations by rule."""
    attempts = EvolInstruct(client, EvolConfig(rounds=1, max_tokens=max_tokens, response_max_tokens=max_tokens)).run(instructions)
    return len(attempts), elimination_counts(attempts)


def measure(fn, client, repeats):
    """(rows/s, requests/s, tokens/s) medians over repeats, and the outcomes summed over them."""
    rows_s, req_s, tok_s, outcomes = [], [], [], Counter()
    for _ in range(repeats):
        counting = Counting(client)
        t = time.perf_counter()
        rows, seen = fn(counting)
        dt = time.perf_counter() - t
        rows_s.append(rows / dt)
        req_s.append(counting.requests / dt)
        tok_s.append(counting.tokens / dt)
        outcomes += seen
    return (statistics.median(rows_s), statistics.median(req_s), statistics.median(tok_s)), outcomes


def trained_tiny_model() -> Path:
    """The seed-trained tiny model in models/ (trained on first use, then cached)."""
    out = ROOT / "models" / "tiny-llama-seeds"
    subprocess.run([sys.executable, str(ROOT / "scripts/make_tiny_model.py"), str(out), "--train-on-seeds"], check=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", type=Path, help="model dir (default: the seed-trained tiny model in models/)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=2, help="Self-Instruct rounds per repeat")
    parser.add_argument("--per-round", type=int, default=16, help="Self-Instruct requests per round")
    parser.add_argument("--instructions", type=int, default=32, help="Evol-Instruct lineages per repeat")
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--concurrency", type=int, default=32)
    args = parser.parse_args()

    model = args.model or trained_tiny_model()
    venv = os.environ.get("PIPELINE_VLLM_VENV", str(ROOT / ".venv-vllm"))
    config = {"backend": "vllm_server", "model": str(model), "venv": venv, "cpu": True, "dtype": "float32",
              "max_model_len": 2048, "concurrency": args.concurrency, "timeout_s": 300}  # fmt: skip
    seeds = load_seed_tasks(DATA / "seeds/self_instruct/seed_tasks.jsonl")
    instructions = [(f"seed{i}", s.instruction) for i, s in enumerate(seeds[: args.instructions])]

    t = time.perf_counter()
    with server_process(parse_llm_config(config)) as server:
        print(f"vLLM CPU server up in {time.perf_counter() - t:.0f} s ({model})")
        client = make_client({**config, "url": server.url})
        run_self_instruct(client, seeds, 1, 4, args.max_tokens)  # warm-up
        for name, fn in [
            ("self_instruct", lambda c: run_self_instruct(c, seeds, args.rounds, args.per_round, args.max_tokens)),
            ("evol_instruct", lambda c: run_evol(c, instructions, args.max_tokens)),
        ]:
            ours, outcomes = measure(fn, client, args.repeats)
            seq, _ = measure(fn, Sequential(client), args.repeats)
            print(f"{name}: ours {ours[0]:.2f} rows/s ({ours[1]:.2f} req/s, {ours[2]:.0f} tok/s) | "
                  f"sequential {seq[0]:.2f} rows/s ({seq[1]:.2f} req/s, {seq[2]:.0f} tok/s) | x{ours[0] / seq[0]:.1f}")  # fmt: skip
            print(f"  {name} outcomes over our {args.repeats} repeats ({sum(outcomes.values())} in all): {dict(outcomes.most_common())}")
        client.close()


if __name__ == "__main__":
    main()
