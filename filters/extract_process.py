"""Extraction in a child process that is killed when a page takes too long.

trafilatura can spend minutes on a hostile page, inside lxml's C code where no Python signal
or thread can interrupt it. The only limit that really holds is a process boundary: pages go
to a long-lived child one batch at a time, results stream back one page at a time, and when
a page's result does not arrive within the time limit the child is killed, the page is
reported as timed out, and a fresh child carries on with the rest of the batch. A child that
crashes (out of memory, a segfault in C code) costs only the page it was working on.

Pages go over as the raw bytes they were read as, and the child triages and decodes them
(filters.html_extract.triage): a bytes object crosses the pipe as one copy, where a decoded str is
encoded to UTF-8 by pickle and decoded again on the other side, which cost 13% of the resiliparse
engine's time (docs/benchmarks.md); and the time limit then covers charset detection too. Only the
length checks (empty, too large) are made before a page is sent, so an oversized one is never copied.

Run as `python -m filters.extract_process ENGINE FAVOR_PRECISION FALLBACK_MIN_CHARS MAX_HTML_BYTES READ_FD WRITE_FD`
by `ExtractorProcess`.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import NamedTuple

from filters.extract_auto import FALLBACK_MIN_CHARS
from filters.html_extract import MAX_HTML_BYTES, extractor, screen, triage

TIMEOUT = "extract_timeout"
CRASH = "extract_error"
STARTUP_TIMEOUT_S = 120.0
# The first call of an engine imports and initialises its lazy parts; doing it before reporting
# ready keeps that one-time cost out of the first real page's time limit. A page with an article
# takes trafilatura's main path; one with next to nothing its fallbacks, where jusText loads the
# stoplists of 100 languages (0.2 s here, over the 5 s limit on a loaded CI machine, so that the
# first page without text was dropped as extract_timeout instead of empty_extraction).
WARMUP_PAGES = (
    "<html><head><title>t</title></head><body><article><p>" + "A warm-up sentence. " * 20 + "</p></article></body></html>",
    "<html><body><p>t</p></body></html>",
)


class Page(NamedTuple):
    raw: bytes | str | None  # as read: bytes from WARC records and files, str where a reader already decoded
    url: str | None = None
    content_type: str | None = None  # the HTTP header's, whose charset outranks the page's own <meta>


@dataclass(frozen=True)
class Outcome:
    text: str = ""
    title: str = ""
    error: str | None = None  # why there is no text: a triage reason, TIMEOUT or CRASH
    engine: str = ""  # the engine whose text this is (`auto` gives resiliparse's or trafilatura's)


class ExtractorProcess:
    """A killable child running one engine. Not thread-safe: one per worker, like a model."""

    def __init__(
        self,
        engine: str,
        timeout_s: float,
        favor_precision: bool = False,
        fallback_min_chars: int = FALLBACK_MIN_CHARS,
        max_html_bytes: int = MAX_HTML_BYTES,
    ):
        self.engine = engine
        self.timeout_s = timeout_s
        self.favor_precision = favor_precision
        self.fallback_min_chars = fallback_min_chars
        self.max_html_bytes = max_html_bytes
        self._proc: subprocess.Popen | None = None
        self._conn: Connection | None = None
        self.restarts = 0  # children killed for a late or crashed page

    def extract_many(self, pages: list[Page]) -> list[Outcome]:
        """One Outcome per page, in order. A page that runs out of time gets `extract_timeout`, one that
        is not worth extracting the reason `triage` gives (empty, too large, binary). Empty and oversized
        pages are answered here, without copying them to the child."""
        screened = [screen(p.raw, self.max_html_bytes) for p in pages]
        sent = iter(self._extract([p for p, reason in zip(pages, screened) if reason is None]))
        return [Outcome(error=reason) if reason else next(sent) for reason in screened]

    def _extract(self, pages: list[Page]) -> list[Outcome]:
        outcomes: list[Outcome] = []
        while len(outcomes) < len(pages):
            conn = self._connection()
            try:
                conn.send(pages[len(outcomes):])
            except OSError:  # the child died between batches: no page was in flight, start a new one
                self._kill()
                continue
            while len(outcomes) < len(pages):
                result = self._next_result(conn)
                if isinstance(result, str):  # late or crashed: the page is lost, and so is the child
                    outcomes.append(Outcome(error=result))
                    self._kill()
                    self.restarts += 1
                    break
                outcomes.append(Outcome(*result))
        return outcomes

    def _next_result(self, conn: "_Duplex") -> tuple | str:
        """The child's (text, title, error, engine) for the next page, or TIMEOUT / CRASH."""
        try:
            return conn.recv() if conn.poll(self.timeout_s) else TIMEOUT
        except (EOFError, OSError):
            return CRASH

    def close(self) -> None:
        self._kill()

    def __del__(self):
        self._kill()

    def _connection(self) -> "_Duplex":
        if self._conn is not None:
            return self._conn
        to_child_r, to_child_w = os.pipe()
        from_child_r, from_child_w = os.pipe()
        repo_root = str(Path(__file__).resolve().parents[1])
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [repo_root, os.environ.get("PYTHONPATH")])))
        self._proc = subprocess.Popen(
            [
                sys.executable, "-m", "filters.extract_process", self.engine, str(int(self.favor_precision)),
                str(self.fallback_min_chars), str(self.max_html_bytes), str(to_child_r), str(from_child_w),
            ],
            pass_fds=(to_child_r, from_child_w),
            env=env,
            stdin=subprocess.DEVNULL,
        )
        os.close(to_child_r)
        os.close(from_child_w)
        conn = _Duplex(Connection(from_child_r, writable=False), Connection(to_child_w, readable=False))
        if not conn.poll(STARTUP_TIMEOUT_S) or conn.recv() != "ready":
            self._kill()
            raise RuntimeError(f"the {self.engine} extraction process did not start")
        self._conn = conn
        return conn

    def _kill(self) -> None:
        if self._proc is not None:
            self._proc.kill()
            self._proc.wait()
        if self._conn is not None:
            self._conn.close()
        self._proc, self._conn = None, None


class _Duplex:
    """Two one-way pipes used as one connection (os.pipe is one-way; a socketpair would do too)."""

    def __init__(self, reader: Connection, writer: Connection):
        self.reader, self.writer = reader, writer

    def send(self, obj) -> None:
        self.writer.send(obj)

    def poll(self, timeout: float) -> bool:
        return self.reader.poll(timeout)

    def recv(self):
        return self.reader.recv()

    def close(self) -> None:
        self.reader.close()
        self.writer.close()


def _serve(engine: str, favor_precision: bool, fallback_min_chars: int, max_html_bytes: int, read_fd: int, write_fd: int) -> None:
    extract = extractor(engine, favor_precision, fallback_min_chars)
    for page in WARMUP_PAGES:
        extract(page, None)
    reader, writer = Connection(read_fd, writable=False), Connection(write_fd, readable=False)
    writer.send("ready")
    while True:
        try:
            pages = reader.recv()
        except EOFError:
            return
        for raw, url, content_type in pages:
            try:
                html, reason = triage(raw, content_type, max_html_bytes)
                if reason:
                    writer.send(("", "", reason, ""))
                    continue
                text, title, used = extract(html, url)
                writer.send((text, title, None, used))
            except Exception:
                writer.send(("", "", CRASH, ""))


if __name__ == "__main__":
    _serve(sys.argv[1], sys.argv[2] == "1", *map(int, sys.argv[3:7]))
