"""The ray_vllm backend: config mapping and row mapping run everywhere; execution needs a GPU.

The engine itself (vLLM's GPU build inside Ray Data) cannot run on a CPU-only machine, so that one
test skips with the reason when no GPU is present; everything our code decides is tested here.
"""

from __future__ import annotations

import math

import pytest

from generators.backends.ray_vllm import ERROR_COLUMN, processor_config, request_rows, response_from_rows
from generators.client import Request, SamplingParams
from generators.llm_config import LLMConfig

CONFIG = LLMConfig(backend="ray_vllm", model="Qwen/Qwen2.5-7B-Instruct", dtype="bfloat16", max_model_len=4096,
                   tensor_parallel_size=2, replicas=3, batch_size=64, accelerator_type="A100",
                   engine_kwargs={"enable_prefix_caching": True, "max_model_len": 8192})


def test_processor_config_is_built_from_llm_config():
    cfg = processor_config(CONFIG)
    assert cfg.model_source == "Qwen/Qwen2.5-7B-Instruct"
    assert (cfg.concurrency, cfg.batch_size, cfg.accelerator_type) == (3, 64, "A100")
    assert cfg.engine_kwargs["tensor_parallel_size"] == 2 and cfg.engine_kwargs["dtype"] == "bfloat16"
    assert cfg.engine_kwargs["enable_prefix_caching"] is True
    assert cfg.engine_kwargs["max_model_len"] == 8192  # explicit engine_kwargs win over the shared field
    assert cfg.should_continue_on_error is True
    assert processor_config(CONFIG, chat=False).chat_template_stage is False


def test_processor_has_chat_template_and_engine_stages(ray_session, tiny_model):
    from generators.backends.ray_vllm import build_processor

    local = CONFIG.model_copy(update={"model": str(tiny_model)})  # a Hub id would make Ray look the model up online
    names = build_processor(local).list_stage_names()
    assert names.index("ChatTemplateStage") < names.index("TokenizeStage") < names.index("vLLMEngineStage")
    assert "ChatTemplateStage" not in build_processor(local, chat=False).list_stage_names()


def test_n_samples_become_rows_with_consecutive_seeds():
    requests = [Request(messages=({"role": "user", "content": "hi"},), params=SamplingParams(n=3, seed=10, stop=("\n",), logprobs=1)),
                Request(prompt="once upon", params=SamplingParams(max_tokens=4))]
    rows = request_rows(requests)
    assert [(r["request_index"], r["sample_index"]) for r in rows] == [(0, 0), (0, 1), (0, 2), (1, 0)]
    assert [r["sampling_params"]["seed"] for r in rows] == [10, 11, 12, None]
    assert rows[0]["messages"] == [{"role": "user", "content": "hi"}] and rows[3]["prompt"] == "once upon"
    assert rows[0]["sampling_params"]["stop"] == ["\n"] and rows[0]["sampling_params"]["logprobs"] == 1
    assert all(set(r["sampling_params"]) == set(rows[0]["sampling_params"]) for r in rows)


def test_engine_rows_are_reassembled_into_one_response():
    request = Request(prompt="p", params=SamplingParams(n=2, max_tokens=3, logprobs=0))
    rows = [
        {"request_index": 0, "sample_index": 1, "generated_text": "b", "generated_tokens": [7], "num_generated_tokens": 1,
         "num_input_tokens": 5, "logprobs": [{7: {"logprob": -0.5}}], ERROR_COLUMN: None},
        {"request_index": 0, "sample_index": 0, "generated_text": "a a a", "generated_tokens": [4, 4, 4], "num_generated_tokens": 3,
         "num_input_tokens": 5, "logprobs": [{4: {"logprob": -1.0}}, {4: {"logprob": -2.0}, 9: {"logprob": -0.1}}, {}], ERROR_COLUMN: None},
    ]
    r = response_from_rows("m", request, rows)
    assert [c.text for c in r.choices] == ["a a a", "b"]
    assert [c.finish_reason for c in r.choices] == ["length", "stop"]
    assert r.choices[1].logprobs == [-0.5] and r.choices[0].logprobs[:2] == [-1.0, -2.0] and math.isnan(r.choices[0].logprobs[2])
    assert (r.usage.prompt_tokens, r.usage.completion_tokens) == (5, 4)
    rows[1][ERROR_COLUMN] = "CUDA out of memory"
    failed = response_from_rows("m", request, rows)
    assert failed.error == "CUDA out of memory" and failed.choices == []


def _gpu_reason() -> str | None:
    import torch

    if not torch.cuda.is_available():
        return "ray_vllm execution needs a GPU and vLLM's GPU build; this machine has no GPU"
    try:
        import vllm  # noqa: F401
    except ImportError:
        return "ray_vllm execution needs vLLM installed in this environment"
    return None


@pytest.mark.slow
@pytest.mark.skipif(_gpu_reason() is not None, reason=_gpu_reason() or "")
def test_generation_on_gpu(ray_session, tiny_model):
    from generators.backends.ray_vllm import RayVLLMClient

    client = RayVLLMClient(LLMConfig(backend="ray_vllm", model=str(tiny_model), max_model_len=512, batch_size=4))
    responses = client.generate([Request(messages=({"role": "user", "content": f"task {i}"},), params=SamplingParams(max_tokens=8, n=2, seed=i)) for i in range(6)]
                                + [Request(prompt="hello", params=SamplingParams(max_tokens=4))])
    assert all(r.error is None for r in responses)
    assert [len(r.choices) for r in responses] == [2] * 6 + [1]
    assert all(0 < r.usage.completion_tokens <= 8 * len(r.choices) for r in responses)
