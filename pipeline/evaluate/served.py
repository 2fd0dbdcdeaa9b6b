"""Scoring through a vLLM server the user started (`pipeline eval --vllm-url URL`), instead of loading
the model here: lm-eval's `local-completions` model against the server's /v1/completions.

The base is asked by the name the server serves the model under, the tuned model by the name of the
LoRA the server loaded from the adapter (`--enable-lora --lora-modules NAME=ADAPTER`). vLLM lists each
LoRA in /v1/models with the folder it loaded (`root`), so the eval finds that name itself and cannot
score another adapter than the one asked for. Requests go as token ids made by the side's own
tokenizer, exactly as the Hugging Face path tokenizes them, so both paths score the same tokens.

Log-likelihood tasks (multiple choice) need the prompt's logprobs (`echo` with `logprobs`); the server
is asked once before scoring, and one that does not give them is one line, not a wrong score. On a
server with LoRA enabled, vLLM (0.32, CPU) fails when two requests asking prompt logprobs share an
engine step (its LoRA logits path sizes the LoRA indices per request, not per prompt token: vLLM issue
16668), which kills the engine; requests therefore go one at a time to such a server. And an adapter
that trains `lm_head` cannot be scored there by log-likelihood: measured on vLLM 0.32 CPU, the base's
prompt logprobs on a server with that LoRA loaded are off by up to 2 nats (the tuned one's matched the
Hugging Face path), and on GPU the tuned one's lose the lm_head delta (vLLM issue 51594).
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
from pathlib import Path

import httpx

from pipeline.errors import UserError
from pipeline.evaluate.tasks import LOCAL, Task

TIMEOUT_S = 300  # one batch of requests on a busy CPU server


@dataclasses.dataclass(frozen=True)
class Server:
    """A vLLM server: its root URL and what /v1/models says it serves (id -> its entry)."""

    url: str
    models: dict[str, dict]

    def name_of(self, model: str, adapter: str | None) -> str:
        """The served name of the base `model`, or of the LoRA loaded from `adapter`."""
        if adapter:
            want = Path(adapter).resolve()
            for name, entry in self.models.items():
                if entry.get("parent") and _same_path(entry.get("root"), want):
                    return name
            raise UserError(f"eval: the vLLM server at {self.url} serves no LoRA from {adapter} (it serves "
                            f"{', '.join(self.models)}); start it with --enable-lora --lora-modules NAME={adapter}")
        for name, entry in self.models.items():
            if not entry.get("parent") and (name == model or _same_path(entry.get("root"), Path(model).resolve())):
                return name
        raise UserError(f"eval: the vLLM server at {self.url} does not serve {model} (it serves {', '.join(self.models)})")

    @property
    def serves_lora(self) -> bool:
        return any(entry.get("parent") for entry in self.models.values())

    def max_length(self, name: str) -> int | None:
        entry = self.models[name]
        return entry.get("max_model_len") or self.models.get(entry.get("parent") or "", {}).get("max_model_len")


def _same_path(root: str | None, path: Path) -> bool:
    return bool(root) and Path(root).resolve() == path


def connect(url: str) -> Server:
    """The server at `url` (its root or its OpenAI base URL, `.../v1`) and the models it serves."""
    if importlib.util.find_spec("tenacity") is None or importlib.util.find_spec("aiohttp") is None:
        raise UserError("eval: --vllm-url needs lm-eval's API extra: pip install 'lm-eval[api]'")
    root = url.strip().rstrip("/").removesuffix("/v1").rstrip("/")
    if not root.startswith(("http://", "https://")):
        raise UserError(f"eval: --vllm-url must be http(s)://host:port (or .../v1), not {url!r}")
    try:
        reply = httpx.get(f"{root}/v1/models", timeout=10)
        reply.raise_for_status()
        models = {m["id"]: m for m in reply.json()["data"]}
    except httpx.HTTPError as e:
        raise UserError(f"eval: cannot list the models of the vLLM server at {root}: {e}") from None
    except (ValueError, KeyError, TypeError):
        raise UserError(f"eval: {root}/v1/models is not an OpenAI-compatible model list") from None
    return Server(root, models)


def needs_logprobs(task: Task) -> bool:
    """Whether lm-eval asks this task's log-likelihoods (our local configs say; lm-eval's own tasks may)."""
    if task.name in LOCAL:
        return LOCAL[task.name][1]["output_type"] != "generate_until"
    return task.harness_name == task.name  # lm-eval's own: its type is not known before lm-eval loads it


def check_adapter(adapter: str | None, tasks: list[Task]) -> None:
    """An adapter that trains lm_head with a log-likelihood task: one line, not a wrong score."""
    wanting = [t.name for t in tasks if needs_logprobs(t)]
    if not adapter or not wanting:
        return
    config = json.loads((Path(adapter) / "adapter_config.json").read_text())
    trained = [*(config.get("target_modules") or []), *(config.get("modules_to_save") or [])]
    if "lm_head" in trained:
        raise UserError(f"eval: {', '.join(wanting)} through vLLM: the adapter trains lm_head, and vLLM's prompt "
                        "logprobs with an lm_head LoRA are wrong (docs/training.md, Evaluation); evaluate "
                        "these tasks without --vllm-url")


def check_logprobs(server: Server, name: str, tasks: list[Task]) -> None:
    """One echo request with logprobs: a server that answers it without the prompt's logprobs cannot score
    log-likelihood tasks, and saying so beats a score computed from nothing."""
    wanting = [t.name for t in tasks if needs_logprobs(t)]
    if not wanting:
        return
    body = {"model": name, "prompt": [1, 2, 3], "max_tokens": 1, "temperature": 0, "echo": True, "logprobs": 1}
    why = None
    try:
        reply = httpx.post(f"{server.url}/v1/completions", json=body, timeout=TIMEOUT_S)
        if reply.status_code != 200:
            why = f"HTTP {reply.status_code}: {reply.text[:200]}"
        else:
            logprobs = (reply.json()["choices"][0].get("logprobs") or {}).get("token_logprobs") or []
            if len(logprobs) < 3:
                why = "the answer has no logprobs for the prompt's tokens"
    except (httpx.HTTPError, ValueError, KeyError, IndexError) as e:
        why = str(e)
    if why:
        raise UserError(f"eval: {', '.join(wanting)} needs the prompt's logprobs (echo with logprobs on "
                        f"/v1/completions), and the vLLM server at {server.url} does not give them: {why}")


def load(server: Server, name: str, tokenizer: str, batch_size: int):
    """lm-eval's OpenAI-compatible completions model for one served name, tokenizing with `tokenizer`."""
    from lm_eval.models.openai_completions import LocalCompletionsAPI

    return LocalCompletionsAPI(model=name, base_url=f"{server.url}/v1/completions", tokenizer=tokenizer,
                               tokenizer_backend="huggingface", tokenized_requests=True,
                               batch_size=1 if server.serves_lora else batch_size, num_concurrent=1,
                               max_length=server.max_length(name) or 2048, timeout=TIMEOUT_S, max_retries=3)
