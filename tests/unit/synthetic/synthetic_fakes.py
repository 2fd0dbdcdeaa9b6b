"""A scripted LLM: fixed completions chosen by a function of the request, to pin down exact rules."""

from __future__ import annotations

from typing import Callable

from generators.client import Choice, Request, Response, Usage


class FakeClient:
    """`script(request)` returns the completion text, a (text, finish_reason) pair, or an Exception
    (reported as `Response.error`, like a request that failed for good)."""

    def __init__(self, script: Callable[[Request], object], model: str = "fake-model"):
        self.script = script
        self.model = model
        self.requests: list[Request] = []

    def generate(self, requests):
        out = []
        for r in requests:
            self.requests.append(r)
            result = self.script(r)
            if isinstance(result, Exception):
                out.append(Response(choices=[], model=self.model, error=str(result)))
                continue
            results = result if isinstance(result, list) else [result] * r.params.n
            choices = [Choice(*x) if isinstance(x, tuple) else Choice(x, "stop") for x in results]
            out.append(Response(choices=choices, model=self.model, usage=Usage(10, 10)))
        return out

    def close(self):
        pass


def prompt_text(request: Request) -> str:
    """The text of a request, chat or completion."""
    if request.prompt is not None:
        return request.prompt
    return "\n".join(m["content"] for m in request.messages)
