"""The share of requests whose output parses, with and without structured outputs (guided decoding).

The seed-trained tiny teacher (`scripts/make_tiny_model.py models/tiny-llama-seeds --train-on-seeds`),
served by the real vLLM CPU server, answers the generators' own requests, made by their own code:
Self-Instruct's proposals (numbered task lists), its Yes/No classification and its instances (on
held-out seed tasks, each with the seed's own classification so both sides send the same instance
prompts), Evol-Instruct's rewrites and its Equal/Different verdicts, and the rubric judge's ratings of
two answers per instruction. Each side runs with the same seed, so the same prompts go out (the judge's
prompts carry answers sampled the same way); one side with `structured: off`, the other `on`. A request
parses when the generator's own rules read its output: the proposal list gives at least one task the
cheap filters keep (novelty is not counted), the verdict gives a word or a rating, the instances give a
valid instance, the rewrite is not empty, cut or a copy of the prompt's markers.

    python benchmarks/bench_structured.py [--url http://127.0.0.1:8000 | --model DIR] [--requests 32]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from generators.backends.vllm_server import VLLMServerClient  # noqa: E402
from generators.client import Request, SamplingParams  # noqa: E402
from generators.evol_instruct import EvolConfig, EvolInstruct, copies_prompt_words, parse_equality  # noqa: E402
from generators.factory import parse_llm_config, server_process  # noqa: E402
from generators.preferences import Candidate, PreferenceConfig, PreferenceJudge, parse_rating  # noqa: E402
from generators.prompts import (EVOL_EQUALITY, EVOL_IN_BREADTH, EVOL_IN_DEPTH, INSTANCES_INPUT_FIRST,  # noqa: E402
                                INSTANCES_OUTPUT_FIRST, IS_CLASSIFICATION, JUDGE_RUBRIC, SELF_INSTRUCT_PROPOSE)
from generators.self_instruct import (Proposal, SelfInstruct, SelfInstructConfig, load_seed_tasks,  # noqa: E402
                                      parse_instances, parse_is_classification, parse_proposals,
                                      proposal_drop_reason, valid_instances)

SHARED = Path(os.environ.get("PIPELINE_SHARED_DATA", ROOT.parent / "shared" / "data"))


def _head(template) -> str:
    return template.text.split("$")[0][:50]


KINDS = [  # (kind, the text its prompt starts with), most specific first
    ("proposal", _head(SELF_INSTRUCT_PROPOSE)), ("classification", _head(IS_CLASSIFICATION)),
    ("instances_input_first", _head(INSTANCES_INPUT_FIRST)), ("instances_output_first", _head(INSTANCES_OUTPUT_FIRST)),
    ("equality", _head(EVOL_EQUALITY)), ("judge", _head(JUDGE_RUBRIC)),
    *(("rewrite", _head(t)) for t in (*EVOL_IN_DEPTH.values(), EVOL_IN_BREADTH)),
]  # fmt: skip


def kind_of(request: Request) -> str | None:
    text = request.prompt if request.prompt is not None else request.messages[-1]["content"]
    return next((kind for kind, head in KINDS if text.startswith(head)), None)  # None: an answer, not parsed


def parses(kind: str, response) -> bool:
    """The generators' own reading of one output."""
    if response.error or not response.choices:
        return False
    text, cut = response.text, response.choices[0].finish_reason == "length"
    if kind == "proposal":
        return not cut and any(proposal_drop_reason(t) is None for t in parse_proposals(text))
    if kind == "classification":
        return parse_is_classification(text) is not None
    if kind.startswith("instances"):
        return not cut and bool(valid_instances(parse_instances(text, kind.endswith("output_first")), 1))
    if kind == "rewrite":
        return not cut and bool(text.strip()) and not copies_prompt_words(text)
    if kind == "equality":
        return parse_equality(text) is not None
    return parse_rating(text) is not None  # judge


class Recorder:
    """An LLMClient that passes requests on and keeps each (request, response)."""

    def __init__(self, client):
        self.client, self.model, self.pairs = client, client.model, []

    def generate(self, requests, *, on_response=None):
        responses = self.client.generate(requests, on_response=on_response)
        self.pairs += list(zip(requests, responses))
        return responses

    def close(self):
        pass


def run_side(client, structured: str, requests: int, max_tokens: int) -> dict[str, list[bool]]:
    rec = Recorder(client)
    tasks = load_seed_tasks(SHARED / "seeds/self_instruct/seed_tasks.jsonl")
    seeds, held_out = tasks[:-requests], tasks[-requests:]
    si = SelfInstruct(rec, seeds, SelfInstructConfig(seed=0, structured=structured, requests_per_round=requests,
                                                     max_tokens=max_tokens, instance_max_tokens=max_tokens))
    si.propose(1)
    proposals = [Proposal(t.instruction, 1) for t in held_out]
    si.classify(proposals)
    for p, t in zip(proposals, held_out):  # the seed's own label: both sides send the same instance prompts
        p.reason, p.is_classification = None, bool(t.is_classification)
    si.make_instances(proposals)
    evol = EvolInstruct(rec, EvolConfig(seed=0, rounds=1, structured=structured, max_tokens=max_tokens, response_max_tokens=48))
    evol.run([(t.id or str(i), t.instruction) for i, t in enumerate(held_out)])
    answers = [Candidate(client, SamplingParams(temperature=0.9, max_tokens=48, seed=s), f"t{s}") for s in (1, 2)]
    PreferenceJudge(answers, rec, PreferenceConfig(structured=structured, judge_max_tokens=max_tokens)).run(
        [[{"role": "user", "content": t.instruction}] for t in held_out])
    outcome: dict[str, list[bool]] = defaultdict(list)
    for request, response in rec.pairs:
        kind = kind_of(request)
        if kind:
            outcome[kind.removesuffix("_input_first").removesuffix("_output_first")].append(parses(kind, response))
    return outcome


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", help="a running vLLM server (default: start one for --model)")
    parser.add_argument("--model", default=str(ROOT / "models" / "tiny-llama-seeds"))
    parser.add_argument("--requests", type=int, default=32, help="requests per kind and side")
    parser.add_argument("--max-tokens", type=int, default=256)
    parser.add_argument("--vllm-venv", default=os.environ.get("PIPELINE_VLLM_VENV", str(ROOT / ".venv-vllm")))
    args = parser.parse_args()
    entry = {"backend": "vllm_server", "model": args.model, "url": args.url, "venv": args.vllm_venv, "cpu": True,
             "dtype": "float32", "max_model_len": 2048, "concurrency": 32, "timeout_s": 300}
    server = None if args.url else server_process(parse_llm_config(entry)).start()
    config = parse_llm_config({**entry, "url": args.url or server.url})
    client = VLLMServerClient(config)
    results, started = {}, time.time()
    try:
        for side in ("off", "on"):
            results[side] = run_side(client, side, args.requests, args.max_tokens)
    finally:
        client.close()
        if server is not None:
            server.stop()
    table = {}
    for kind in results["off"]:
        off, on = results["off"][kind], results["on"].get(kind, [])
        table[kind] = {"requests_off": len(off), "parsed_off": round(sum(off) / len(off), 3),
                       "requests_on": len(on), "parsed_on": round(sum(on) / len(on), 3) if on else None}
        print(f"{kind:<15} free text {sum(off):>3}/{len(off):<3} = {sum(off) / len(off):6.1%}   "
              f"guided {sum(on):>3}/{len(on):<3} = {(sum(on) / len(on) if on else 0):6.1%}")
    summary = {"model": args.model, "requests": args.requests, "max_tokens": args.max_tokens, "kinds": table,
               "seconds": round(time.time() - started, 1), "loadavg": open("/proc/loadavg").read().split()[:3]}
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
