"""The one interface every generation algorithm talks to, whatever serves the model.

Algorithms (Self-Instruct, Evol-Instruct, responses, judging) build `Request`s and get back one
`Response` per request, in order. A request that fails for good is not an exception: its
`Response.error` says why, so a run records the failure on the row and goes on. An endpoint whose
requests keep failing is another matter: turning a whole data set into rejects helps nobody, so
every backend keeps a `FailureWindow` and raises `EndpointFailing` once most recent requests failed.
"""

from __future__ import annotations

import dataclasses
import random
from collections import deque
from typing import Callable, Protocol, Sequence


@dataclasses.dataclass(frozen=True)
class Guide:
    """Guided decoding: the output must match `regex` (vLLM's structured outputs).

    A small teacher spends most of its requests on formats the parsing rules reject; a server that
    constrains its tokens to the format wastes none. The formats our prompts ask for are lines
    (`Rating: N`, numbered lists), so a regex states them exactly; a JSON schema would change the
    prompts, and on the tiny teacher it decodes into whitespace until `max_tokens` (tried on vLLM 0.32).
    `required` False (`structured: auto`) lets a backend that cannot guide send the request as free
    text; True (`structured: on`) fails the request instead.
    """

    regex: str
    required: bool = False


def refuses_guide(request: "Request") -> bool:
    """True for a request that must be guided (`structured: on`), sent to a backend that cannot guide:
    it fails with `UNGUIDED` instead of quietly returning free text."""
    return request.params.guide is not None and request.params.guide.required


UNGUIDED = "structured: on, but the {} backend has no guided decoding; use a vllm_server LLM or structured: auto"


@dataclasses.dataclass(frozen=True)
class SamplingParams:
    temperature: float = 0.7
    top_p: float = 1.0
    max_tokens: int = 512
    n: int = 1
    stop: tuple[str, ...] = ()
    # Token ids that end a sample like EOS: a special token (a chat template's end of turn) that the
    # server strips from the text, so a stop string never sees it; Magpie's sampled instruction ends so.
    stop_token_ids: tuple[int, ...] = ()
    seed: int | None = None
    logprobs: int | None = None
    # The log-prob of every prompt token (`Choice.prompt_logprobs`), for scoring text by a model's
    # perplexity; with `max_tokens=0` the prompt is only scored, nothing is generated.
    prompt_logprobs: bool = False
    guide: Guide | None = None  # constrain the output to a format (structured outputs), where the backend can


def request_seed(seed: int, key: str, step: int) -> int:
    """The sampling seed of one request, from the run's seed and what the request is for (a row, a turn),
    so an answer does not depend on which other requests were batched with it."""
    return random.Random(f"{seed}:{key}:{step}:sample").randrange(2**31)


@dataclasses.dataclass(frozen=True)
class Request:
    """A chat request (`messages`) or a plain completion request (`prompt`), never both."""

    messages: tuple[dict, ...] | None = None
    prompt: str | None = None
    params: SamplingParams = SamplingParams()

    def __post_init__(self):
        if (self.messages is None) == (self.prompt is None):
            raise ValueError("a Request has either messages or a prompt")

    @property
    def endpoint(self) -> str:
        """`chat` (the server applies the model's chat template) or `completion` (raw prompt)."""
        return "chat" if self.messages is not None else "completion"


@dataclasses.dataclass
class Choice:
    text: str
    finish_reason: str  # "stop" or "length" (cut by max_tokens)
    logprobs: list[float] | None = None  # of each sampled token, when SamplingParams.logprobs is set
    # of each prompt token given those before it, when SamplingParams.prompt_logprobs is set; the first
    # token (nothing before it) is None
    prompt_logprobs: list[float | None] | None = None


@dataclasses.dataclass
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0

    def __iadd__(self, other: "Usage") -> "Usage":
        self.prompt_tokens += other.prompt_tokens
        self.completion_tokens += other.completion_tokens
        return self


@dataclasses.dataclass
class Response:
    choices: list[Choice]
    model: str
    usage: Usage = dataclasses.field(default_factory=Usage)
    error: str | None = None
    cached: bool = False

    @property
    def text(self) -> str:
        return self.choices[0].text if self.choices else ""

    @classmethod
    def failed(cls, model: str, error: str) -> "Response":
        return cls(choices=[], model=model, error=error)

    def failure(self, truncated: str = "truncated") -> str | None:
        """Why the first answer is unusable as a row's text: `llm_error`, or `truncated` (each step names
        its own: `response_truncated`, `instruction_truncated`) when max_tokens cut it; None if usable."""
        if self.error:
            return "llm_error"
        if self.choices and self.choices[0].finish_reason == "length":
            return truncated
        return None


class EndpointFailing(Exception):
    """The model's endpoint, not a request, is at fault: the run should stop rather than go on dropping rows."""


class FailureWindow:
    """Judges an endpoint by its client's last `size` requests (each counted once, after its retries).

    More than `max_rate * size` failures among them raise `EndpointFailing`, naming the oldest error
    still in the window: the first symptom, usually the cause. The count is against the full window
    size, also before `size` requests were sent, so a few early failures (a prompt too long for the
    model) never stop a run. One window per client: each Ray worker judges the requests it sent.
    """

    def __init__(self, size: int, max_rate: float, endpoint: str):
        self.errors: deque[str | None] = deque(maxlen=size)
        self.limit = max_rate * size
        self.endpoint = endpoint

    def record(self, response: Response) -> None:
        self.errors.append(response.error)
        failed = sum(e is not None for e in self.errors)
        if response.error is not None and failed > self.limit:
            first = " ".join(next(e for e in self.errors if e is not None).split())
            raise EndpointFailing(f"{failed} of the last {len(self.errors)} requests to {self.endpoint} failed; the first: {first}")


OnResponse = Callable[[int, "Response"], None]
"""Called with (index, response) as each response is ready: the cache stores it at once, so a run
killed mid-batch keeps what it already paid for."""


class LLMClient(Protocol):
    model: str

    def generate(self, requests: Sequence[Request], *, on_response: OnResponse | None = None) -> list[Response]:
        """One response per request, in order; failures are reported in `Response.error`. `on_response(i, r)`
        is called as each response arrives, so a cache keeps what a run that dies later has already paid for."""
        ...

    def close(self) -> None: ...
