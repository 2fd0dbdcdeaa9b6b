"""The `vllm_server` backend: many concurrent requests to vLLM's OpenAI-compatible HTTP API.

Throughput comes from keeping `concurrency` requests in flight so vLLM's continuous batching has
work to batch; robustness from per-request timeouts and retries with exponential backoff and full
jitter (so a crowd of failed requests does not return in lockstep). A request that still fails
becomes a `Response` with `error` set: one bad row never stops a run, but an endpoint that fails
most requests does (`client.FailureWindow`), and `check_server` asks a remote server which models it
serves before any work is sent, so a wrong URL or model name is one clear error, not a run of rejects.

A request with a `guide` asks vLLM to decode into its regex (`structured_outputs`). A server that
answers such a request HTTP 400 but the same request without it 200 refuses guided decoding: that is
logged once and later guided requests go as free text (or fail, when the guide is required).

When the server is ours (managed mode) and it dies, its watchdog restarts it; requests that meet
a dead server wait for it to be healthy again instead of burning their retries on a restart.

The client is synchronous to its callers (stages call it from Ray workers) and asynchronous inside:
one event loop runs in a background thread for the client's lifetime, which also keeps the HTTP
connection pool warm between batches.

The transport is aiohttp, not httpx: with dozens of requests in flight, httpx's async connection pool
spends milliseconds of CPU per request (20 ms each at 128 in flight; encode/httpx#3215), time this
client steals from a vLLM server sharing the machine's cores, and its requests reach the server late,
so vLLM batches fewer of them (docs/benchmarks-history.md, issue 7).
"""

from __future__ import annotations

import asyncio
import dataclasses
import http.client
import json
import logging
import random
import threading
import time
import urllib.error
import urllib.request
from typing import Sequence

import aiohttp

from generators.backends.vllm_process import VLLMServerProcess
from generators.client import Choice, FailureWindow, OnResponse, Request, Response, Usage
from generators.llm_config import VLLMServerConfig

log = logging.getLogger(__name__)


# The server check is a single look before a run, not a wait for a server that is still starting.
CHECK_TIMEOUT_S = 5.0

# 408/429 and 5xx are the server's trouble, worth another try; other 4xx are the request's and would fail again.
RETRY_STATUS = {408, 409, 425, 429, 500, 502, 503, 504}


class ServerUnusable(Exception):
    """A remote server cannot serve the configured model: unreachable, not an OpenAI API, or other models."""


class RequestFailed(Exception):
    def __init__(self, message: str, retry: bool):
        super().__init__(message)
        self.retry = retry


def request_body(model: str, request: Request) -> dict:
    """The OpenAI-API JSON body of a request; `logprobs` differs between the chat and completion APIs."""
    p = request.params
    body: dict = {"model": model, "temperature": p.temperature, "top_p": p.top_p, "max_tokens": p.max_tokens, "n": p.n}
    if p.stop:
        body["stop"] = list(p.stop)
    if p.stop_token_ids:
        body["stop_token_ids"] = list(p.stop_token_ids)  # vLLM's extra sampling parameter
    if p.seed is not None:
        body["seed"] = p.seed
    if p.guide is not None:
        body["structured_outputs"] = {"regex": p.guide.regex}  # vLLM's name since 0.11 (`guided_regex` is ignored)
    if request.endpoint == "chat":
        body["messages"] = list(request.messages)
        if p.logprobs is not None:
            body["logprobs"] = True
            body["top_logprobs"] = p.logprobs
    else:
        body["prompt"] = request.prompt
        if p.logprobs is not None:
            body["logprobs"] = p.logprobs
    if p.prompt_logprobs:
        body["prompt_logprobs"] = 0  # vLLM's extension: the prompt token's own log-prob at each position
        if p.max_tokens == 0:
            body["echo"] = True  # vLLM takes max_tokens=0 (score only) with echo; the echoed text is dropped
    return body


def _prompt_logprobs(positions: list | None) -> list[float | None] | None:
    """vLLM's prompt log-probs, one {token id: {logprob, ...}} per position (None first), as plain floats.
    With `prompt_logprobs: 0` each position holds only the prompt's own token."""
    if positions is None:
        return None
    return [None if step is None else float(next(iter(step.values()))["logprob"]) for step in positions]


def parse_response(endpoint: str, data: dict, echoed: bool = False) -> Response:
    choices = []
    for c in sorted(data["choices"], key=lambda c: c["index"]):
        lp = c.get("logprobs")
        if endpoint == "chat":
            text = c["message"].get("content") or ""
            logprobs = [t["logprob"] for t in lp["content"]] if lp and lp.get("content") is not None else None
        else:
            text = c["text"]
            logprobs = list(lp["token_logprobs"]) if lp and lp.get("token_logprobs") is not None else None
        prompt_logprobs = _prompt_logprobs(c.get("prompt_logprobs", data.get("prompt_logprobs")))
        if prompt_logprobs is not None and echoed:
            text = ""  # a score-only request (max_tokens=0) echoes the prompt
        choices.append(Choice(text=text, finish_reason=c.get("finish_reason") or "stop", logprobs=logprobs,
                              prompt_logprobs=prompt_logprobs))
    usage = data.get("usage") or {}
    return Response(
        choices=choices,
        model=data.get("model", ""),
        usage=Usage(usage.get("prompt_tokens", 0), usage.get("completion_tokens", 0)),
    )


def without_guide(request: Request) -> Request:
    return dataclasses.replace(request, params=dataclasses.replace(request.params, guide=None))


def served_models(config: VLLMServerConfig) -> list[str]:
    """The model names the server at `config.url` serves (`GET /v1/models`); `ServerUnusable` if it cannot say."""
    url = f"{config.url}/v1/models"
    request = urllib.request.Request(url)
    if config.api_key is not None:
        request.add_header("Authorization", f"Bearer {config.api_key.get_secret_value()}")
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # as aiohttp: no proxy from the environment
    try:
        with opener.open(request, timeout=CHECK_TIMEOUT_S) as reply:
            data = json.loads(reply.read())
        return [m["id"] for m in data["data"]]
    except urllib.error.HTTPError as exc:
        hint = "the api_key was refused" if exc.code in (401, 403) else "url must be the root of an OpenAI-compatible server"
        raise ServerUnusable(f"{url} answered HTTP {exc.code} ({hint})") from None
    except urllib.error.URLError as exc:
        raise ServerUnusable(f"cannot reach {url}: {getattr(exc.reason, 'strerror', None) or exc.reason}") from None
    except (OSError, http.client.HTTPException) as exc:  # timeouts, resets, a port that does not speak HTTP
        raise ServerUnusable(f"cannot reach {url}: {type(exc).__name__}: {exc}") from None
    except (ValueError, KeyError, TypeError):
        raise ServerUnusable(f"{url} is not an OpenAI-compatible model list; url must be the server's root") from None


def check_server(config: VLLMServerConfig) -> None:
    """Raise `ServerUnusable` unless the server at `config.url` answers and serves `config.model`."""
    names = served_models(config)
    if config.model not in names:
        raise ServerUnusable(f"{config.url} does not serve model '{config.model}'; it serves: {', '.join(names) or 'nothing'}")


def backoff_delay(attempt: int, base_s: float, max_s: float) -> float:
    """Full jitter: uniform in [0, min(max, base * 2^attempt)] (AWS architecture blog's recommendation)."""
    return random.uniform(0, min(max_s, base_s * 2**attempt))


class VLLMServerClient:
    """`LLMClient` for a vLLM server at `config.url`, or at the URL of `server` (managed mode).

    With `server`, requests wait out its restarts; `close()` stops it if the client `owns_server`.
    """

    def __init__(self, config: VLLMServerConfig, server: VLLMServerProcess | None = None, owns_server: bool = True):
        if not config.url and server is None:
            raise ValueError("VLLMServerClient needs config.url or a managed server")
        self.config = config
        self.server = server
        self.owns_server = owns_server
        self.model = config.model
        self.base_url = config.url or server.url
        self.stats = {"requests": 0, "retries": 0, "failed": 0, "server_waits": 0}
        self.guides_refused: str | None = None  # why the server refused guided decoding, once it did
        self.failures = FailureWindow(config.failure_window, config.max_failure_rate, self.base_url)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="llm-client-loop", daemon=True)
        self._thread.start()
        self._http = self._run(self._make_http())

    async def _make_http(self) -> aiohttp.ClientSession:
        headers = {}
        if self.config.api_key is not None:
            headers["Authorization"] = f"Bearer {self.config.api_key.get_secret_value()}"
        return aiohttp.ClientSession(
            headers=headers,
            connector=aiohttp.TCPConnector(limit=self.config.concurrency),
            timeout=aiohttp.ClientTimeout(total=self.config.timeout_s),
        )

    def _run(self, coro):
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result()

    def generate(self, requests: Sequence[Request], *, on_response: OnResponse | None = None) -> list[Response]:
        return self._run(self._generate(list(requests), on_response))

    async def _generate(self, requests: list[Request], on_response: OnResponse | None) -> list[Response]:
        slots = asyncio.Semaphore(self.config.concurrency)

        async def one(i: int, request: Request) -> Response:
            async with slots:
                response = await self._with_retries(request)
            if on_response:
                on_response(i, response)
            self.failures.record(response)
            return response

        tasks = [asyncio.ensure_future(one(i, r)) for i, r in enumerate(requests)]
        try:
            return list(await asyncio.gather(*tasks))
        except BaseException:  # a failing endpoint (or a caller's callback) ends the batch: send nothing more
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            raise

    async def _with_retries(self, request: Request) -> Response:
        self.stats["requests"] += 1
        error = ""
        for attempt in range(self.config.max_retries + 1):
            if attempt:
                self.stats["retries"] += 1
                await asyncio.sleep(backoff_delay(attempt - 1, self.config.backoff_s, self.config.backoff_max_s))
            try:
                return await self._send(request)
            except RequestFailed as exc:
                error = str(exc)
                if not exc.retry:
                    break
            except TimeoutError as exc:  # aiohttp's own timeout errors are TimeoutErrors too
                error = f"timeout after {self.config.timeout_s:g}s ({type(exc).__name__})"
            except aiohttp.ClientError as exc:  # refused, reset, protocol errors: the transport, not the request
                error = f"connection failed: {type(exc).__name__}: {exc}"
            if attempt < self.config.max_retries:
                await self._wait_for_server()
        self.stats["failed"] += 1
        return Response.failed(self.model, error)

    async def _send(self, request: Request) -> Response:
        guide = request.params.guide
        if guide is not None and self.guides_refused is not None:
            if guide.required:
                raise self._guides_refused_error()
            request = without_guide(request)
        status, text = await self._post(request)
        if status == 400 and request.params.guide is not None:
            # Refused: for the guide or for the request? The same request as free text tells; once a
            # free-text copy succeeds, the client knows and sends no more guides.
            free_status, free_text = await self._post(without_guide(request))
            if free_status == 200:
                self._refuse_guides(f"HTTP 400: {text[:200]}")
                if guide.required:
                    raise self._guides_refused_error()
                status, text = free_status, free_text
        if status != 200:
            raise RequestFailed(f"HTTP {status}: {text[:300]}", retry=status in RETRY_STATUS)
        try:
            echoed = request.params.prompt_logprobs and request.params.max_tokens == 0
            return parse_response(request.endpoint, json.loads(text), echoed)
        except (ValueError, KeyError, TypeError) as exc:
            raise RequestFailed(f"malformed response: {exc!r}: {text[:200]}", retry=True) from exc

    async def _post(self, request: Request) -> tuple[int, str]:
        path = "/v1/chat/completions" if request.endpoint == "chat" else "/v1/completions"
        async with self._http.post(self.base_url + path, json=request_body(self.model, request)) as reply:
            return reply.status, await reply.text(errors="replace")

    def _guides_refused_error(self) -> RequestFailed:
        return RequestFailed(f"structured: on, but the server refuses guided decoding: {self.guides_refused}", retry=False)

    def _refuse_guides(self, why: str) -> None:
        if self.guides_refused is None:
            self.guides_refused = " ".join(why.split())
            log.warning("%s refuses structured outputs; requests go as free text from now on (%s)", self.base_url, self.guides_refused)

    async def _wait_for_server(self) -> None:
        """A request that meets a dead or restarting server waits for it instead of spending its retries.

        With the server object at hand (managed in this process) its state says when; a worker that only
        has the URL of a driver-managed server polls /health for up to `wait_for_server_s`.
        """
        server = self.server
        if server is not None:
            if server.ready.is_set() and server.alive:
                return
            self.stats["server_waits"] += 1
            deadline = time.monotonic() + server.startup_timeout_s
            while not (server.ready.is_set() and server.alive) and not server.gave_up and time.monotonic() < deadline:
                await asyncio.sleep(0.5)
        elif self.config.wait_for_server_s > 0 and not await self._healthy():
            self.stats["server_waits"] += 1
            deadline = time.monotonic() + self.config.wait_for_server_s
            while time.monotonic() < deadline and not await self._healthy():
                await asyncio.sleep(1.0)

    async def _healthy(self) -> bool:
        try:
            async with self._http.get(self.base_url + "/health", timeout=aiohttp.ClientTimeout(total=5)) as reply:
                return reply.status == 200
        except (aiohttp.ClientError, TimeoutError):
            return False

    def close(self) -> None:
        if self._loop.is_closed():
            return
        self._run(self._http.close())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()
        if self.server is not None and self.owns_server:
            self.server.stop()
