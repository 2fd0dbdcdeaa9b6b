"""The `ray_vllm` backend: vLLM engines inside Ray Data (`ray.data.llm`), for GPU clusters.

No HTTP and no server to babysit: Ray Data schedules `replicas` vLLM engine actors (each with
`tensor_parallel_size` GPUs), streams rows through chat templating, tokenization, the engine and
detokenization, and scales across nodes. Stages that already hold a `ray.data.Dataset` can call
`build_processor` and map the dataset directly; `RayVLLMClient` offers the same engines behind the
common `LLMClient` interface for the generation algorithms.

Ray's engine stage returns one sample per row, so a request for `n` samples becomes `n` rows (with
seeds seed, seed+1, ... when a seed is given) and is put back together afterwards. Engine failures are
kept per row (`should_continue_on_error`) and come back as `Response.error`, as with the server backend.
Guided decoding is not passed to the engines (untested on Ray's engine stage): a guide is dropped, or a
request that requires one (`structured: on`) fails saying so.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any, Callable, Sequence

from generators.client import UNGUIDED, Choice, FailureWindow, OnResponse, Request, Response, SamplingParams, Usage, refuses_guide
from generators.llm_config import RayVLLMConfig

ERROR_COLUMN = "__inference_error__"
OUTPUT_COLUMNS = ("request_index", "sample_index", "generated_text", "generated_tokens", "num_generated_tokens",
                  "num_input_tokens", "logprobs", ERROR_COLUMN)


def processor_config(config: RayVLLMConfig, chat: bool = True):
    """The `vLLMEngineProcessorConfig` an `llms:` entry describes (chat: apply the model's chat template)."""
    from ray.data.llm import vLLMEngineProcessorConfig

    engine = {"tensor_parallel_size": config.tensor_parallel_size, "dtype": config.dtype}
    if config.max_model_len:
        engine["max_model_len"] = config.max_model_len
    engine.update(config.engine_kwargs)
    return vLLMEngineProcessorConfig(
        model_source=config.model,
        engine_kwargs=engine,
        concurrency=config.replicas,
        batch_size=config.batch_size,
        accelerator_type=config.accelerator_type,
        chat_template_stage=chat,
        should_continue_on_error=True,
    )


def build_processor(config: RayVLLMConfig, chat: bool = True, postprocess: Callable[[dict], dict] | None = None):
    """A Ray Data processor: `processor(dataset)` generates for rows with `messages` (or `prompt`) and `sampling_params`."""
    from ray.data.llm import build_processor as ray_build_processor

    return ray_build_processor(processor_config(config, chat), postprocess=postprocess)


def engine_sampling_params(params: SamplingParams, sample_index: int) -> dict[str, Any]:
    """vLLM `SamplingParams` kwargs for one sample; every key is always present so rows share one schema."""
    return {
        "temperature": params.temperature,
        "top_p": params.top_p,
        "max_tokens": params.max_tokens,
        "stop": list(params.stop),
        "stop_token_ids": list(params.stop_token_ids),
        "seed": params.seed + sample_index if params.seed is not None else None,
        "logprobs": params.logprobs,
    }


def request_rows(requests: Sequence[Request]) -> list[dict[str, Any]]:
    rows = []
    for i, request in enumerate(requests):
        for k in range(request.params.n):
            row: dict[str, Any] = {"request_index": i, "sample_index": k,
                                   "sampling_params": engine_sampling_params(request.params, k)}
            if request.endpoint == "chat":
                row["messages"] = [dict(m) for m in request.messages]
            else:
                row["prompt"] = request.prompt
            rows.append(row)
    return rows


def _sampled_logprobs(row: dict) -> list[float] | None:
    steps = row.get("logprobs")
    if not steps:
        return None
    return [float(step[token]["logprob"]) if token in step else float("nan")
            for token, step in zip(row["generated_tokens"], steps)]


def response_from_rows(model: str, request: Request, rows: list[dict]) -> Response:
    """Reassemble one request's samples; `finish_reason` is inferred (Ray's output has none): length if max_tokens ran out."""
    rows = sorted(rows, key=lambda r: r["sample_index"])
    errors = [r[ERROR_COLUMN] for r in rows if r.get(ERROR_COLUMN)]
    if errors:
        return Response.failed(model, str(errors[0]))
    choices = [
        Choice(
            text=r["generated_text"],
            finish_reason="length" if r["num_generated_tokens"] >= request.params.max_tokens else "stop",
            logprobs=_sampled_logprobs(r),
        )
        for r in rows
    ]
    usage = Usage(int(rows[0]["num_input_tokens"]), sum(int(r["num_generated_tokens"]) for r in rows))
    return Response(choices=choices, model=model, usage=usage)


def _keep_outputs(row: dict) -> dict:
    return {k: row.get(k) for k in OUTPUT_COLUMNS}


class RayVLLMClient:
    """`LLMClient` over Ray Data's vLLM engines: each `generate` call is one Ray Data job per endpoint."""

    def __init__(self, config: RayVLLMConfig):
        self.config = config
        self.model = config.model
        self._processors: dict[bool, Any] = {}
        self.failures = FailureWindow(config.failure_window, config.max_failure_rate, f"{config.model} (ray_vllm)")

    def _processor(self, chat: bool):
        if chat not in self._processors:
            self._processors[chat] = build_processor(self.config, chat, postprocess=_keep_outputs)
        return self._processors[chat]

    def generate(self, requests: Sequence[Request], *, on_response: OnResponse | None = None) -> list[Response]:
        import ray.data

        results: list[Response | None] = [None] * len(requests)
        for chat in (True, False):
            idxs = [i for i, r in enumerate(requests) if (r.endpoint == "chat") == chat]
            for i in [i for i in idxs if refuses_guide(requests[i])]:
                results[i] = Response.failed(self.model, UNGUIDED.format("ray_vllm"))
                if on_response:
                    on_response(i, results[i])
                self.failures.record(results[i])
            idxs = [i for i in idxs if results[i] is None]
            if not idxs:
                continue
            rows = request_rows([requests[i] for i in idxs])
            by_request: dict[int, list[dict]] = defaultdict(list)
            for row in self._processor(chat)(ray.data.from_items(rows)).take_all():
                by_request[row["request_index"]].append(row)
            for local, i in enumerate(idxs):
                got = by_request.get(local)
                results[i] = (response_from_rows(self.model, requests[i], got) if got
                              else Response.failed(self.model, "no output row from the vLLM engine"))
                if on_response:
                    on_response(i, results[i])
                self.failures.record(results[i])
        return results  # type: ignore[return-value]

    def close(self) -> None:
        self._processors.clear()
