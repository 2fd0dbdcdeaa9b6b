"""A cache of finished responses, keyed by the request content, so a resumed run never pays twice.

The key is a hash of everything that determines the answer (model, endpoint, messages or prompt,
and every sampling parameter, seed included); only successful responses are stored, so failures
are retried on the next run. Many processes (Ray workers, a resumed run next to a stale one) read
and write one cache at once, each write is atomic, and a crash never leaves a half-written entry:

- on local disk, one SQLite file in WAL mode;
- in object storage (`cache_dir: s3://...`, which every node of a cluster reaches), one object
  per response, named by its key: a write is one whole object, and a lookup fetches only the
  responses asked for, however large the cache grows. Objects are written in the background
  as responses arrive, so the client never waits on the store.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import sqlite3
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Sequence

from generators.client import Choice, LLMClient, OnResponse, Request, Response, SamplingParams, Usage
from pipeline import storage
from pipeline.storage import Location



def request_key(model: str, request: Request) -> str:
    content = {
        "model": model,
        "endpoint": request.endpoint,
        "messages": list(request.messages) if request.messages is not None else None,
        "prompt": request.prompt,
        "params": _set_params(request.params),
    }
    return hashlib.sha256(json.dumps(content, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


def _set_params(params: SamplingParams) -> dict:
    """The sampling parameters that differ from their defaults: a field added to SamplingParams (a new
    capability, at its default for every request written before it) leaves every cached key valid."""
    values = dataclasses.asdict(params)
    return {f.name: values[f.name] for f in dataclasses.fields(params) if getattr(params, f.name) != f.default}


def _encode(response: Response) -> str:
    return json.dumps({"choices": [dataclasses.asdict(c) for c in response.choices],
                       "model": response.model, "usage": dataclasses.asdict(response.usage)})


def _decode(blob: str) -> Response:
    data = json.loads(blob)
    return Response(choices=[Choice(**c) for c in data["choices"]], model=data["model"],
                    usage=Usage(**data["usage"]), cached=True)


class ResponseCache:
    """`get_many` before generating, `put` as each response arrives. Thread-safe; `cache_dir` is a path or a URI."""

    def __new__(cls, cache_dir: str | Path | Location):
        """The cache for where `cache_dir` is: SQLite on local disk, objects in object storage."""
        if cls is ResponseCache and not storage.locate(cache_dir).is_local:
            cls = ObjectResponseCache
        return super().__new__(cls)

    def __init__(self, cache_dir: str | Path | Location):
        path = storage.locate(cache_dir).local_path()
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


class ObjectResponseCache(ResponseCache):
    """The cache in object storage: `<cache_dir>/responses/<key>.json`, one object per response."""

    THREADS = 16  # requests in flight to the store: lookups and writes are each one small object

    def __init__(self, cache_dir: str | Path | Location):
        self.root = storage.locate(cache_dir) / "responses"
        self._pool = ThreadPoolExecutor(self.THREADS, thread_name_prefix="response-cache")
        self._writes: list[Future] = []
        self._lock = threading.Lock()

    def get_many(self, keys: Sequence[str]) -> dict[str, Response]:
        found = self._pool.map(self._get, list(dict.fromkeys(keys)))
        return {key: response for key, response in found if response is not None}

    def _get(self, key: str) -> tuple[str, Response | None]:
        try:
            return key, _decode((self.root / f"{key}.json").read_text())
        except FileNotFoundError:
            return key, None

    def put(self, key: str, response: Response) -> None:
        if response.error is not None:
            return
        write = self._pool.submit((self.root / f"{key}.json").write_text, _encode(response))
        with self._lock:
            self._writes = [w for w in self._writes if not w.done() or w.exception()] + [write]

    def __len__(self) -> int:
        self._flush()
        return sum(1 for f in self.root.files() if f.suffix == ".json")

    def _flush(self) -> None:
        """Wait for the writes in flight; the first that failed is raised, naming the cache."""
        with self._lock:
            writes, self._writes = self._writes, []
        for write in writes:
            error = write.exception()
            if error is not None:
                raise OSError(f"response cache {self.root.parent}: {storage.first_line(error)}") from error

    def close(self) -> None:
        try:
            self._flush()
        finally:
            self._pool.shutdown(wait=True)


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
