"""A small OpenAI-API server on localhost that misbehaves on purpose, to pin down the client's retry rules.

Each request's behaviour is scripted by its prompt (or last user message): a list of actions consumed
one per attempt ("ok", "500", "400", "sleep", "garbage"); unscripted requests get "ok". An "ok" answer
echoes the prompt reversed in every choice, and lists choices in reverse index order (the client must
sort them). Every received body is recorded. `GET /v1/models` lists `models`, as vLLM lists the
names it serves.
"""

from __future__ import annotations

import json
import threading
import time
from collections import defaultdict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class OpenAIStub:
    def __init__(self, sleep_s: float = 2.0, port: int = 0):
        self.sleep_s = sleep_s
        self.plan: dict[str, list[str]] = {}
        self.models = ["stub-model"]
        self.gets: list[str] = []
        self.bodies: list[dict] = []
        self.headers: list[dict] = []
        self.attempts: dict[str, int] = defaultdict(int)
        self._lock = threading.Lock()
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                stub.gets.append(self.path)
                if self.path == "/v1/models":
                    self._reply(200, json.dumps({"object": "list", "data": [{"id": m, "object": "model"} for m in stub.models]}).encode())
                else:
                    self._reply(200, b"{}")

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                status, payload = stub._answer(self.path, body, dict(self.headers))
                self._reply(status, payload)

            def _reply(self, status: int, payload: bytes):
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                try:
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):
                    pass

        self._server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> "OpenAIStub":
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _answer(self, path: str, body: dict, headers: dict) -> tuple[int, bytes]:
        key = body["prompt"] if "prompt" in body else body["messages"][-1]["content"]
        with self._lock:
            self.bodies.append(body)
            self.headers.append(headers)
            self.attempts[key] += 1
            actions = self.plan.get(key, [])
            action = actions.pop(0) if actions else "ok"
        if action == "sleep":
            time.sleep(self.sleep_s)
        elif action in ("500", "400"):
            return int(action), b'{"error": "scripted failure"}'
        elif action == "garbage":
            return 200, b"not json"
        text = key[::-1]
        n = body.get("n", 1)
        choices = []
        for i in reversed(range(n)):
            if path.endswith("/chat/completions"):
                logprobs = {"content": [{"token": "x", "logprob": -0.5 * (i + 1)}]} if body.get("logprobs") else None
                choices.append({"index": i, "message": {"role": "assistant", "content": f"{text} #{i}"},
                                "finish_reason": "length" if i else "stop", "logprobs": logprobs})
            else:
                logprobs = {"token_logprobs": [-0.25 * (i + 1)]} if body.get("logprobs") is not None else None
                choices.append({"index": i, "text": f"{text} #{i}", "finish_reason": "stop", "logprobs": logprobs})
        usage = {"prompt_tokens": len(key.split()), "completion_tokens": 3 * n, "total_tokens": len(key.split()) + 3 * n}
        return 200, json.dumps({"model": body["model"], "choices": choices, "usage": usage}).encode()
