"""Our vllm_server client vs a plain sequential loop of single `openai` requests, same vLLM server, same run.

The workload is chat requests built from the real Self-Instruct seed instructions, sent to one vLLM
CPU server serving a random-weight Llama built here (the 1M-parameter test shape by default; wider and
deeper with --hidden-size/--layers). Both sides send identical requests (same sampling parameters,
same seeds), so they ask the server for the same tokens; what differs is how: one request at a time
(the peer) or `concurrency` in flight so vLLM batches them (ours). Sides alternate within each repeat;
the speedups are medians of the per-repeat ratios, the rates medians over repeats. The summary also
gives each side's client CPU seconds (client and server share the cores) and the load average.

    python benchmarks/bench_client.py [--requests 128] [--repeats 3] [--concurrency 64] [--max-tokens 128]
                                      [--hidden-size 128 --layers 2 | --model DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from generators.backends.vllm_server import VLLMServerClient  # noqa: E402
from generators.client import Request, SamplingParams  # noqa: E402
from generators.factory import parse_llm_config, server_process  # noqa: E402

SHARED = Path(os.environ.get("PIPELINE_SHARED_DATA", ROOT.parent / "shared" / "data"))


def seed_instructions() -> list[str]:
    return [json.loads(line)["instruction"] for line in (SHARED / "seeds/self_instruct/seed_tasks.jsonl").read_text().splitlines()]


def instructions(count: int) -> list[str]:
    seeds = seed_instructions()
    return [seeds[i % len(seeds)] for i in range(count)]


def build_model(out_dir: str, hidden_size: int, layers: int) -> str:
    """A random Llama of the given shape; heads of 64 dimensions, the size vLLM's CPU attention supports."""
    from tiny_models.llama import build_tiny_model

    return str(build_tiny_model(out_dir, seed_instructions(), hidden_size=hidden_size, layers=layers, heads=hidden_size // 64, head_dim=64))


def run_ours(url: str, model: str, requests: list[Request], concurrency: int) -> tuple[float, int, int]:
    client = VLLMServerClient(parse_llm_config({"backend": "vllm_server", "model": model, "url": url, "concurrency": concurrency}))
    start = time.perf_counter()
    responses = client.generate(requests)
    elapsed = time.perf_counter() - start
    client.close()
    return elapsed, sum(r.usage.completion_tokens for r in responses), sum(r.error is not None for r in responses)


def run_openai_loop(url: str, model: str, requests: list[Request]) -> tuple[float, int, int]:
    from openai import OpenAI

    client = OpenAI(base_url=f"{url}/v1", api_key="unused")
    tokens = 0
    start = time.perf_counter()
    for r in requests:
        p = r.params
        out = client.chat.completions.create(model=model, messages=list(r.messages), max_tokens=p.max_tokens,
                                             temperature=p.temperature, top_p=p.top_p, seed=p.seed)
        tokens += out.usage.completion_tokens
    elapsed = time.perf_counter() - start
    client.close()
    return elapsed, tokens, 0


def timed(run, *args) -> tuple[float, int, int, float]:
    """`run`'s (seconds, tokens, errors) and the CPU seconds this process spent in it: the client's cost."""
    cpu = time.process_time()
    return (*run(*args), time.process_time() - cpu)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--max-tokens", type=int, default=128, help="per request; the random weights rarely stop earlier")
    parser.add_argument("--model", help="model dir to serve (default: build a random Llama of --hidden-size/--layers)")
    parser.add_argument("--hidden-size", type=int, default=128, help="of the built model; a multiple of 64")
    parser.add_argument("--layers", type=int, default=2, help="of the built model")
    parser.add_argument("--vllm-venv", default=os.environ.get("PIPELINE_VLLM_VENV", str(ROOT / ".venv-vllm")))
    args = parser.parse_args()
    if args.hidden_size <= 0 or args.hidden_size % 64:
        parser.error("--hidden-size must be a positive multiple of 64 (vLLM's CPU attention needs 64-dimensional heads)")

    model = args.model or build_model(tempfile.mkdtemp(prefix="bench-llama-"), args.hidden_size, args.layers)
    config = parse_llm_config({"backend": "vllm_server", "model": model, "venv": args.vllm_venv, "cpu": True,
                               "dtype": "float32", "max_model_len": 512})
    requests = [Request(messages=({"role": "user", "content": text},),
                        params=SamplingParams(max_tokens=args.max_tokens, temperature=0.7, seed=i))
                for i, text in enumerate(instructions(args.requests))]

    results: dict[str, list[tuple[float, int, int, float]]] = {"ours": [], "openai_loop": []}
    load_before = os.getloadavg()
    with server_process(config) as server:
        run_ours(server.url, model, requests[:8], args.concurrency)  # warm-up: first requests pay one-off costs
        for rep in range(args.repeats):
            sides = ["ours", "openai_loop"] if rep % 2 == 0 else ["openai_loop", "ours"]
            for side in sides:
                run = timed(run_ours, server.url, model, requests, args.concurrency) if side == "ours" else timed(run_openai_loop, server.url, model, requests)
                results[side].append(run)
                print(f"repeat {rep} {side:12s} {run[0]:7.2f}s  {args.requests / run[0]:7.2f} req/s  {run[1] / run[0]:8.1f} tok/s  "
                      f"client CPU {run[3]:5.2f}s  errors={run[2]}  load {os.getloadavg()[0]:.1f}", flush=True)

    summary = {}
    for side, runs in results.items():
        summary[side] = {
            "seconds": statistics.median(r[0] for r in runs),
            "req_per_s": statistics.median(args.requests / r[0] for r in runs),
            "tok_per_s": statistics.median(r[1] / r[0] for r in runs),
            "errors": sum(r[2] for r in runs),
            "client_cpu_s": statistics.median(r[3] for r in runs),
        }
    # Paired: each repeat ran both sides back to back, so their ratio shares that moment's machine load.
    summary["speedup_req_per_s"] = statistics.median(o[0] / ours[0] for ours, o in zip(results["ours"], results["openai_loop"]))
    summary["speedup_tok_per_s"] = statistics.median((ours[1] / ours[0]) / (o[1] / o[0]) for ours, o in zip(results["ours"], results["openai_loop"]))
    summary["setup"] = {"requests": args.requests, "repeats": args.repeats, "concurrency": args.concurrency, "max_tokens": args.max_tokens,
                        "model": args.model or {"hidden_size": args.hidden_size, "layers": args.layers}}
    summary["load_average_1min"] = {"before": load_before[0], "after": os.getloadavg()[0]}
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
