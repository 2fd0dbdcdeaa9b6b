"""The config of one entry under `llms:`: which backend serves which model, and how hard to try.

One model covers the three backends so a YAML can switch `backend:` without rewriting the entry;
fields that a backend does not use are ignored by it (each field says which backend reads it).
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

_ENV_REF = re.compile(r"^\$\{([A-Za-z_][A-Za-z0-9_]*)\}$")

# vLLM's CPU build: no CUDA graphs, a 1 GiB KV cache, and no chunked prefill (with it, concurrent
# requests that carry a `seed` crash the CPU engine).
CPU_SERVER_ARGS = ("--enforce-eager", "--no-enable-chunked-prefill")
CPU_SERVER_ENV = {"VLLM_CPU_KVCACHE_SPACE": "1"}


class LLMConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    backend: Literal["vllm_server", "ray_vllm", "transformers"] = Field(
        description="vllm_server: vLLM's OpenAI-compatible server (given `url`, or started by the pipeline); "
        "ray_vllm: in-process vLLM engines in Ray Data (GPU clusters); transformers: local generation"
    )
    model: str = Field(description="model id or local path; for a remote server, the name it serves")

    # vllm_server, remote or managed
    url: str | None = Field(
        default=None, description="a running server, as http://host:port or http://host:port/v1; None starts one (managed mode)"
    )
    api_key: SecretStr | None = Field(default=None, description="bearer token; '${VAR}' reads it from the environment")
    concurrency: int = Field(default=32, ge=1, description="requests in flight at once")
    timeout_s: float = Field(default=120.0, gt=0, description="per-request timeout")
    max_retries: int = Field(default=3, ge=0, description="retries after the first attempt (5xx, timeouts, resets)")
    backoff_s: float = Field(default=0.5, gt=0, description="first backoff; doubles each retry, with full jitter")
    backoff_max_s: float = Field(default=20.0, gt=0)
    cache_dir: str | None = Field(default=None, description="on-disk response cache; None disables it")
    failure_window: int = Field(
        default=50, ge=1, description="requests (after retries) over which a client judges whether its endpoint is failing"
    )
    max_failure_rate: float = Field(
        default=0.5, ge=0, le=1, description="a client stops the run when more than this share of its last "
        "`failure_window` requests failed; 1 never stops it"
    )
    wait_for_server_s: float = Field(
        default=0.0, ge=0, description="after a failed attempt, wait up to this long for the server's /health "
        "(workers of a driver-managed server, which may be restarting; see factory.worker_config)"
    )

    # vllm_server, managed mode: the server the pipeline starts and stops
    python: str | None = Field(default=None, description="python that runs vLLM (its own venv); default: `venv`/bin/python")
    venv: str | None = Field(default=None, description="virtual environment with vLLM; default: $PIPELINE_VLLM_VENV or this python")
    dtype: str = Field(default="auto", description="vllm/transformers dtype: auto, bfloat16, float16, float32")
    max_model_len: int | None = Field(default=None, ge=16, description="context length the engine reserves for")
    tensor_parallel_size: int = Field(default=1, ge=1)
    cpu: bool = Field(default=False, description="vLLM CPU recipe: eager mode, no chunked prefill, 1 GiB KV cache")
    server_args: list[str] = Field(default_factory=list, description="extra `vllm serve` arguments")
    server_env: dict[str, str] = Field(default_factory=dict, description="extra environment for the server")
    host: str = "127.0.0.1"
    port: int | None = Field(default=None, description="None picks a free port")
    startup_timeout_s: float = Field(default=600.0, gt=0, description="how long to wait for /health")
    max_restarts: int = Field(default=3, ge=0, description="restarts of a managed server that died mid-run")
    log_file: str | None = Field(default=None, description="server log; default: a temporary file")

    # ray_vllm
    replicas: int = Field(default=1, ge=1, description="vLLM engine actors (data parallelism)")
    batch_size: int = Field(default=16, ge=1, description="rows per engine call (ray_vllm) or per forward batch (transformers)")
    accelerator_type: str | None = Field(default=None, description="e.g. A100, H100")
    engine_kwargs: dict = Field(default_factory=dict, description="extra vLLM engine arguments (ray_vllm)")

    # transformers
    device: str = Field(default="cpu", description="torch device for the transformers backend")

    @field_validator("api_key", mode="before")
    @classmethod
    def _expand_env(cls, value):
        if isinstance(value, str) and (m := _ENV_REF.match(value)):
            if m.group(1) not in os.environ:
                raise ValueError(f"api_key refers to ${{{m.group(1)}}}, which is not set")
            return os.environ[m.group(1)]
        return value

    @field_validator("url")
    @classmethod
    def _server_root(cls, value: str | None) -> str | None:
        """The server's root: users write the OpenAI base URL (`.../v1`), the client adds `/v1/...` itself."""
        if value is None:
            return None
        root = value.strip().rstrip("/").removesuffix("/v1").rstrip("/")
        if not root.startswith(("http://", "https://")):
            raise ValueError(f"url must be http(s)://host:port (or .../v1), not {value!r}")
        return root

    @model_validator(mode="after")
    def _check_backend_fields(self):
        if self.backend != "vllm_server" and self.url:
            raise ValueError(f"url is only for backend vllm_server, not {self.backend}")
        return self

    @property
    def managed(self) -> bool:
        return self.backend == "vllm_server" and not self.url

    def server_python(self) -> str:
        if self.python:
            return self.python
        venv = self.venv or os.environ.get("PIPELINE_VLLM_VENV")
        return str(Path(venv) / "bin" / "python") if venv else sys.executable

    def server_command_args(self) -> list[str]:
        """Arguments after `python -m vllm.entrypoints.openai.api_server`, port excluded."""
        args = ["--model", self.model, "--served-model-name", self.model, "--dtype", self.dtype]
        args += ["--host", self.host, "--tensor-parallel-size", str(self.tensor_parallel_size)]
        if self.max_model_len:
            args += ["--max-model-len", str(self.max_model_len)]
        if self.cpu:
            args += [a for a in CPU_SERVER_ARGS if a not in self.server_args]
        return args + list(self.server_args)

    def server_environment(self) -> dict[str, str]:
        return {**(CPU_SERVER_ENV if self.cpu else {}), **self.server_env}
