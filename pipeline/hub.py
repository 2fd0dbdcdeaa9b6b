"""Is the Hugging Face Hub reachable? Asked once per process, before any Hub library is used.

Offline, huggingface_hub and datasets retry every request for 25 to 50 s before they give up.
One short request to the endpoint (HF_ENDPOINT, through the usual proxy settings) answers the
same question in a few seconds at most; when nobody answers, the process and everything it
starts (Ray workers inherit the environment) is put in offline mode, so a missing local copy is
reported at once and a cached one is still used.
"""

from __future__ import annotations

import os
import socket
import sys
import threading
import urllib.error
import urllib.request
from pathlib import Path

PROBE_TIMEOUT_S = 3.0
DEFAULT_ENDPOINT = "https://huggingface.co"
_TRUE = {"1", "ON", "YES", "TRUE"}

_unreachable: str | None = None  # why the Hub cannot be used, once asked; "" when it can


def endpoint() -> str:
    return os.environ.get("HF_ENDPOINT", DEFAULT_ENDPOINT).rstrip("/")


def reachable() -> bool:
    """Whether the Hub can be used; the first call probes it and, if it cannot, goes offline."""
    global _unreachable
    if _unreachable is None:
        if _offline_by_choice():
            _unreachable = "offline mode is on (HF_HUB_OFFLINE)"
        elif not _answers(endpoint(), PROBE_TIMEOUT_S):
            _unreachable = f"the Hugging Face Hub ({endpoint()}) did not answer within {PROBE_TIMEOUT_S:g} s"
        else:
            _unreachable = ""
        if _unreachable:
            _go_offline()
    return not _unreachable


def unavailable(repo_id: str, repo_type: str = "model") -> str | None:
    """Why a Hub repository cannot be used here, or None: the Hub answers, or a copy is cached."""
    if reachable() or _cached(repo_id, repo_type):
        return None
    return f"{_unreachable} and {repo_type} '{repo_id}' is not in the local cache"


def local_or_hub_problem(name: str, repo_type: str = "model") -> str | None:
    """Why a local path or Hub id cannot be used, or None. Only a name that cannot be a Hub id
    (absolute, `./`, `~`) is taken for a missing path without asking the Hub."""
    if Path(name).expanduser().exists():
        return None
    if name.startswith(("/", ".", "~")):
        return f"not found: {name}"
    return unavailable(name, repo_type)


TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "vocab.json", "tokenizer_config.json")


def tokenizer_problem(name: str) -> str | None:
    """Why a tokenizer cannot load from a local path or Hub id, or None: transformers' own error for a
    folder without its files is a ValueError naming tokenizer classes, not the files."""
    why = local_or_hub_problem(name, "model")
    if why:
        return why
    folder = Path(name).expanduser()
    if folder.is_dir() and not any((folder / f).exists() for f in TOKENIZER_FILES):
        return f"the folder {name} has no tokenizer files ({', '.join(TOKENIZER_FILES)})"
    return None


def dataset_unavailable(repo_id: str) -> str | None:
    return unavailable(repo_id, "dataset")


def _offline_by_choice() -> bool:
    return any(os.environ.get(v, "").upper() in _TRUE for v in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE"))


def _answers(url: str, timeout: float) -> bool:
    """Any HTTP answer counts (even an error status); no answer within `timeout` does not."""
    def probe():
        try:
            urllib.request.urlopen(urllib.request.Request(url, method="HEAD"), timeout=timeout).close()
        except urllib.error.HTTPError:
            pass

    return _succeeds_within(probe, timeout)


def listens(host: str, port: int, timeout: float) -> bool:
    """Whether a TCP connection to host:port opens within `timeout` (a Ray head's GCS port, say)."""
    return _succeeds_within(lambda: socket.create_connection((host, port), timeout=timeout).close(), timeout)


def _succeeds_within(probe, timeout: float) -> bool:
    """Whether `probe()` returns without an OSError or ValueError in about `timeout` seconds. It runs in
    a thread, so that a slow name lookup, which no socket time-out covers, cannot stall us."""
    done = []

    def attempt():
        try:
            probe()
            done.append(True)
        except (OSError, ValueError):
            pass

    thread = threading.Thread(target=attempt, daemon=True)
    thread.start()
    thread.join(timeout + 0.5)
    return bool(done)


def _go_offline() -> None:
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["HF_DATASETS_OFFLINE"] = "1"
    # a library imported before the probe has already read the variables
    for module, names in (("huggingface_hub.constants", ("HF_HUB_OFFLINE",)),
                          ("datasets.config", ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"))):
        if module in sys.modules:
            for name in names:
                setattr(sys.modules[module], name, True)


def _cached(repo_id: str, repo_type: str) -> bool:
    """A copy in the Hub cache, or (datasets) one that `datasets` already prepared."""
    from huggingface_hub import constants

    places = [Path(constants.HF_HUB_CACHE) / f"{repo_type}s--{repo_id.replace('/', '--')}"]
    if repo_type == "dataset":
        datasets_cache = os.environ.get("HF_DATASETS_CACHE") or Path(constants.HF_HOME) / "datasets"
        places.append(Path(datasets_cache) / repo_id.replace("/", "___"))
    return any(p.is_dir() for p in places)
