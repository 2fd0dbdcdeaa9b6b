"""An on-disk cache of finished responses, keyed by the request content, so a resumed run never pays twice.

SQLite in WAL mode: many processes (Ray workers, a resumed run next to a stale one) can read and write
one cache file at once, each write is atomic, and a crash never leaves a half-written entry. The key
is a hash of everything that determines the answer (model, endpoint, messages or prompt, and every
sampling parameter, seed included); only successful responses are stored, so failures are retried
on the next run.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import sqlite3
import threading
from pathlib import Path
from typing import Sequence

from generators.client import Choice, LLMClient, OnResponse, Request, Response, Usage



def request_key(model: str, request: Request) -> str:
    content = {
        "model": model,
        "endpoint": request.endpoint,
        "messages": list(request.messages) if request.messages is not None else None,
        "prompt": request.prompt,
        "params": dataclasses.asdict(request.params),
    }
    return hashlib.sha256(json.dumps(content, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


def _encode(response: Response) -> str:
    return json.dumps({"choices": [dataclasses.asdict(c) for c in response.choices],
                       "model": response.model, "usage": dataclasses.asdict(response.usage)})


def _decode(blob: str) -> Response:
    data = json.loads(blob)
    return Response(choices=[Choice(**c) for c in data["choices"]], model=data["model"],
                    usage=Usage(**data["usage"]), cached=True)


class ResponseCache:
    """`get_many` before generating, `put` as each response arrives. Thread-safe; one file per cache_dir."""

    def __init__(self, cache_dir: str | Path):
        path = Path(cache_dir)
        path.mkdir(parents=True, exist_ok=True)
        self.path = path / "responses.sqlite"
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, timeout=60, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("CREATE TABLE IF NOT EXISTS responses (key TEXT PRIMARY KEY, response TEXT NOT NULL)")

    def get_many(self, keys: Sequence[str]) -> dict[str, Response]:
        found: dict[str, Response] = {}
        unique = list(dict.fromkeys(keys))
        with self._lock:
            for start in range(0, len(unique), 500):
                chunk = unique[start : start + 500]
                marks = ",".join("?" * len(chunk))
                for key, blob in self._db.execute(f"SELECT key, response FROM responses WHERE key IN ({marks})", chunk):
                    found[key] = _decode(blob)
        return found

    def put(self, key: str, response: Response) -> None:
        if response.error is not None:
            return
        with self._lock:
            self._db.execute("INSERT OR REPLACE INTO responses VALUES (?, ?)", (key, _encode(response)))

    def __len__(self) -> int:
        with self._lock:
            return self._db.execute("SELECT COUNT(*) FROM responses").fetchone()[0]

    def close(self) -> None:
        with self._lock:
            self._db.close()


class CachedClient:
    """Wraps any backend: answers from the cache what it can and stores each new response as it arrives.

    Backends take an `on_response(index, response)` callback, so a run killed in the middle of a large
    batch keeps every response that finished before the kill.
    """

    def __init__(self, inner: LLMClient, cache: ResponseCache):
        self.inner = inner
        self.cache = cache
        self.model = inner.model

    def generate(self, requests: Sequence[Request], *, on_response: OnResponse | None = None) -> list[Response]:
        keys = [request_key(self.model, r) for r in requests]
        hits = self.cache.get_many(keys)
        results: list[Response | None] = [hits.get(k) for k in keys]
        todo = [i for i, r in enumerate(results) if r is None]
        if on_response:
            for i, r in enumerate(results):
                if r is not None:
                    on_response(i, r)

        def store(j: int, response: Response) -> None:
            self.cache.put(keys[todo[j]], response)
            if on_response:
                on_response(todo[j], response)

        if todo:
            fresh = self.inner.generate([requests[i] for i in todo], on_response=store)
            for i, response in zip(todo, fresh):
                results[i] = response
        return results  # type: ignore[return-value]

    def close(self) -> None:
        self.inner.close()
        self.cache.close()
