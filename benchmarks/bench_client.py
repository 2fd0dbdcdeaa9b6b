"""Our vllm_server client vs a plain sequential loop of single `openai` requests, same vLLM server, same run.

The workload is chat requests built from the real Self-Instruct seed instructions, sent to one vLLM
CPU server serving the tiny local Llama. Both sides send identical requests (same seeds), so they ask
the server for the same tokens; what differs is how: one request at a time (the peer) or `concurrency`
in flight so vLLM batches them (ours). Sides alternate within each repeat; the speedups are medians of
the per-repeat ratios, the rates medians over repeats.

    python benchmarks/bench_client.py [--requests 128] [--repeats 3] [--concurrency 64] [--max-tokens 64]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
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


def instructions(count: int) -> list[str]:
    lines = (SHARED / "seeds/self_instruct/seed_tasks.jsonl").read_text().splitlines()
    return [json.loads(lines[i % len(lines)])["instruction"] for i in range(count)]


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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--model", help="model dir to serve (default: build the tiny Llama)")
    parser.add_argument("--vllm-venv", default=os.environ.get("PIPELINE_VLLM_VENV", str(ROOT / ".venv-vllm")))
    args = parser.parse_args()

    model = args.model
    if model is None:
        model = tempfile.mkdtemp(prefix="tiny-llama-")
        subprocess.run([sys.executable, str(ROOT / "scripts/make_tiny_model.py"), model], check=True, stdout=subprocess.DEVNULL)
    config = parse_llm_config({"backend": "vllm_server", "model": model, "venv": args.vllm_venv, "cpu": True,
                               "dtype": "float32", "max_model_len": 512})
    requests = [Request(messages=({"role": "user", "content": text},),
                        params=SamplingParams(max_tokens=args.max_tokens, temperature=0.7, seed=i))
                for i, text in enumerate(instructions(args.requests))]

    results: dict[str, list[tuple[float, int, int]]] = {"ours": [], "openai_loop": []}
    with server_process(config) as server:
        run_ours(server.url, model, requests[:8], args.concurrency)  # warm-up: first requests pay one-off costs
        for rep in range(args.repeats):
            sides = ["ours", "openai_loop"] if rep % 2 == 0 else ["openai_loop", "ours"]
            for side in sides:
                run = run_ours(server.url, model, requests, args.concurrency) if side == "ours" else run_openai_loop(server.url, model, requests)
                results[side].append(run)
                print(f"repeat {rep} {side:12s} {run[0]:7.2f}s  {args.requests / run[0]:7.2f} req/s  {run[1] / run[0]:8.1f} tok/s  errors={run[2]}", flush=True)

    summary = {}
    for side, runs in results.items():
        summary[side] = {
            "seconds": statistics.median(r[0] for r in runs),
            "req_per_s": statistics.median(args.requests / r[0] for r in runs),
            "tok_per_s": statistics.median(r[1] / r[0] for r in runs),
            "errors": sum(r[2] for r in runs),
        }
    # Paired: each repeat ran both sides back to back, so their ratio shares that moment's machine load.
    summary["speedup_req_per_s"] = statistics.median(o[0] / ours[0] for ours, o in zip(results["ours"], results["openai_loop"]))
    summary["speedup_tok_per_s"] = statistics.median((ours[1] / ours[0]) / (o[1] / o[0]) for ours, o in zip(results["ours"], results["openai_loop"]))
    summary["setup"] = {"requests": args.requests, "repeats": args.repeats, "concurrency": args.concurrency, "max_tokens": args.max_tokens}
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
