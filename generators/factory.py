"""`make_client(config)`: the `LLMClient` an `llms:` entry describes, cache included.

The backend's factory comes from the registry (`generators.backends`), which imports heavy backends
(torch, Ray's vLLM integration) only when an entry chooses them, so importing the generators stays
cheap for stages that never generate.
"""

from __future__ import annotations

from generators.backends import backends
from generators.backends.vllm_process import VLLMServerProcess
from generators.cache import CachedClient, ResponseCache
from generators.client import LLMClient
from generators.llm_config import LLMConfig, VLLMServerConfig, parse_llm_config


def server_process(config: VLLMServerConfig) -> VLLMServerProcess:
    """The (not yet started) managed vLLM server of a `vllm_server` entry without a `url`."""
    return VLLMServerProcess(
        python=config.server_python(),
        args=config.server_command_args(),
        env=config.server_environment(),
        host=config.host,
        port=config.port,
        startup_timeout_s=config.startup_timeout_s,
        max_restarts=config.max_restarts,
        log_file=config.log_file,
    )


def worker_config(config: dict, server: VLLMServerProcess, machine: str) -> dict:
    """The `llms:` entry that workers use to reach a server the driver manages: its URL from other machines
    (`machine` is the driver's address), and patience for the restarts its watchdog performs (workers
    cannot see the process, only its /health)."""
    return {**config, "url": server.url_from(machine), "wait_for_server_s": server.startup_timeout_s}


def make_client(config: dict | LLMConfig) -> LLMClient:
    """Build the client; in managed mode this starts the server and returns once it is healthy.

    `client.close()` stops a managed server; so does interpreter exit, SIGTERM or Ctrl-C.
    """
    cfg = parse_llm_config(config)
    client = backends()[cfg.backend].client(cfg)
    return CachedClient(client, ResponseCache(cfg.cache_dir)) if cfg.cache_dir else client
