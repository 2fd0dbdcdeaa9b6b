"""A reverse proxy on localhost that makes a healthy vLLM server look unreliable, on purpose.

Each proxied generation request (a POST under /v1/) after the first `healthy_requests` is, by a seeded
draw, answered 500 without reaching the server, held for `delay_s` (past the client's timeout) before
being forwarded, or forwarded untouched. Health checks and the model list pass through untouched so the
client's view of the server's liveness stays truthful; `healthy_requests` makes faults start mid-run.
"""

from __future__ import annotations

import asyncio
import random
import threading
from collections import Counter

import aiohttp
from aiohttp import web


class FaultProxy:
    def __init__(self, upstream: str, error_rate: float = 0.05, delay_rate: float = 0.05, delay_s: float = 5.0, seed: int = 0,
                 healthy_requests: int = 0):  # fmt: skip
        self.upstream = upstream.rstrip("/")
        self.healthy_requests = healthy_requests
        self.error_rate = error_rate
        self.delay_rate = delay_rate
        self.delay_s = delay_s
        self.counts: Counter[str] = Counter()
        self._rng = random.Random(seed)
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> "FaultProxy":
        self._thread.start()
        if not self._ready.wait(30):
            raise RuntimeError("fault proxy did not start")
        return self

    def __exit__(self, *exc) -> None:
        asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop).result(30)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(self._start())
        self._ready.set()
        self._loop.run_forever()

    async def _start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=600))

    async def _shutdown(self) -> None:
        await self._session.close()
        await self._runner.cleanup()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        if request.method == "POST" and request.path.startswith("/v1/") and self._past_healthy_start():
            draw = self._rng.random()
            if draw < self.error_rate:
                self.counts["error_500"] += 1
                return web.Response(status=500, text="injected fault")
            if draw < self.error_rate + self.delay_rate:
                self.counts["delayed"] += 1
                await asyncio.sleep(self.delay_s)
        try:
            async with self._session.request(request.method, self.upstream + request.path_qs, data=body,
                                             headers={"Content-Type": request.headers.get("Content-Type", "application/json")}) as up:
                self.counts["forwarded"] += 1
                return web.Response(status=up.status, body=await up.read(), content_type=up.content_type)
        except aiohttp.ClientError as exc:
            self.counts["upstream_down"] += 1
            return web.Response(status=502, text=f"upstream unreachable: {exc}")

    def _past_healthy_start(self) -> bool:
        self.counts["generation_requests"] += 1
        return self.counts["generation_requests"] > self.healthy_requests
