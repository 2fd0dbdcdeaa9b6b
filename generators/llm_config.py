"""The config of one entry under `llms:`: which backend serves which model, and how hard to try.

One model per backend, told apart by `backend:` (a discriminated union), so each backend's options are
exactly those it reads: a field of another backend (`replicas:` under `vllm_server`) is refused when
the config loads, with the backend it belongs to, instead of being ignored. The union is that of the
backends in the registry (`generators.backends`): the built-in ones, defined here, and those other
packages register.
"""

from __future__ import annotations

import functools
import os
import re
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, SecretStr, TypeAdapter, ValidationError, field_validator, model_validator
from pydantic_core import InitErrorDetails, PydanticCustomError

_ENV_REF = re.compile(r"^\$\{([A-Za-z_][A-Za-z0-9_]*)\}$")

# vLLM's CPU build: no CUDA graphs, a 1 GiB KV cache, and no chunked prefill (with it, concurrent
# requests that carry a `seed` crash the CPU engine).
CPU_SERVER_ARGS = ("--enforce-eager", "--no-enable-chunked-prefill")
CPU_SERVER_ENV = {"VLLM_CPU_KVCACHE_SPACE": "1"}


class LLMConfig(BaseModel):
    """What every backend reads. `LLMConfig(backend=..., ...)` and `LLMConfig.model_validate(mapping)`
    build that backend's config."""

    model_config = ConfigDict(extra="forbid")
    # The stage's workers load `model` themselves (on a cluster, each node must see a local path), where
    # a server, even one the pipeline starts beside the driver, is given only its name.
    loads_on_workers: ClassVar[bool] = False

    backend: str = Field(
        description="vllm_server: vLLM's OpenAI-compatible server (given `url`, or started by the pipeline); "
        "ray_vllm: in-process vLLM engines in Ray Data (GPU clusters); transformers: local generation; "
        "or a backend an installed package registers (generators.backends)"
    )
    model: str = Field(description="model id or local path; for a remote server, the name it serves")
    cache_dir: str | None = Field(default=None, description="response cache, a local folder or s3://... (on a cluster of several machines, object storage); None disables it")
    failure_window: int = Field(
        default=50, ge=1, description="requests (after retries) over which a client judges whether its endpoint is failing"
    )
    max_failure_rate: float = Field(
        default=0.5, ge=0, le=1, description="a client stops the run when more than this share of its last "
        "`failure_window` requests failed; 1 never stops it"
    )

    def __new__(cls, *args: Any, **fields: Any):
        if cls is LLMConfig:  # the backend's own config; an unknown backend is the union's error
            cls = BACKENDS.get(fields.get("backend")) or _any_backend().validate_python(fields)
        return super().__new__(cls)

    @classmethod
    def model_validate(cls, obj: Any, **kwargs: Any) -> LLMConfig:
        return _any_backend().validate_python(obj, **kwargs) if cls is LLMConfig else super().model_validate(obj, **kwargs)

    @model_validator(mode="wrap")
    @classmethod
    def _other_backends_fields(cls, data: Any, handler):
        """A field this backend does not read is named with the backend that does, not as an unknown key."""
        try:
            return handler(data)
        except ValidationError as e:
            backend = data.get("backend") if isinstance(data, dict) else None
            errors = [_foreign(err, backend) for err in e.errors()]
            raise ValidationError.from_exception_data(e.title, errors) from None


class _DType(BaseModel):
    dtype: str = Field(default="auto", description="vllm/transformers dtype: auto, bfloat16, float16, float32")


class _VLLMEngine(_DType):
    max_model_len: int | None = Field(default=None, ge=16, description="context length the engine reserves for")
    tensor_parallel_size: int = Field(default=1, ge=1)


class _Batched(BaseModel):
    batch_size: int = Field(default=16, ge=1, description="rows per engine call (ray_vllm) or per forward batch (transformers)")


class VLLMServerConfig(_VLLMEngine, LLMConfig):
    """vLLM's OpenAI-compatible server: a running one (`url`), or one the pipeline starts and stops (managed)."""

    backend: Literal["vllm_server"]
    url: str | None = Field(
        default=None, description="a running server, as http://host:port or http://host:port/v1; None starts one (managed mode)"
    )
    api_key: SecretStr | None = Field(default=None, description="bearer token; '${VAR}' reads it from the environment")
    concurrency: int = Field(default=32, ge=1, description="requests in flight at once")
    timeout_s: float = Field(default=120.0, gt=0, description="per-request timeout")
    max_retries: int = Field(default=3, ge=0, description="retries after the first attempt (5xx, timeouts, resets)")
    backoff_s: float = Field(default=0.5, gt=0, description="first backoff; doubles each retry, with full jitter")
    backoff_max_s: float = Field(default=20.0, gt=0)
    wait_for_server_s: float = Field(
        default=0.0, ge=0, description="after a failed attempt, wait up to this long for the server's /health "
        "(workers of a driver-managed server, which may be restarting; see factory.worker_config)"
    )

    # managed mode: the server the pipeline starts and stops
    python: str | None = Field(default=None, description="python that runs vLLM (its own venv); default: `venv`/bin/python")
    venv: str | None = Field(default=None, description="virtual environment with vLLM; default: $PIPELINE_VLLM_VENV or this python")
    cpu: bool = Field(default=False, description="vLLM CPU recipe: eager mode, no chunked prefill, 1 GiB KV cache")
    server_args: list[str] = Field(default_factory=list, description="extra `vllm serve` arguments")
    server_env: dict[str, str] = Field(default_factory=dict, description="extra environment for the server")
    host: str = "127.0.0.1"
    port: int | None = Field(default=None, description="None picks a free port")
    startup_timeout_s: float = Field(default=600.0, gt=0, description="how long to wait for /health")
    max_restarts: int = Field(default=3, ge=0, description="restarts of a managed server that died mid-run")
    log_file: str | None = Field(default=None, description="server log; default: a temporary file")

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

    @property
    def managed(self) -> bool:
        return not self.url

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


class RayVLLMConfig(_VLLMEngine, _Batched, LLMConfig):
    """vLLM engines inside Ray Data (GPU clusters)."""

    backend: Literal["ray_vllm"]
    loads_on_workers: ClassVar[bool] = True
    replicas: int = Field(default=1, ge=1, description="vLLM engine actors (data parallelism)")
    accelerator_type: str | None = Field(default=None, description="e.g. A100, H100")
    engine_kwargs: dict = Field(default_factory=dict, description="extra vLLM engine arguments (ray_vllm)")


class TransformersConfig(_DType, _Batched, LLMConfig):
    """Local generation with `transformers`, no vLLM."""

    backend: Literal["transformers"]
    loads_on_workers: ClassVar[bool] = True
    device: str = Field(default="cpu", description="torch device for the transformers backend")


class _Registered(Mapping[str, "type[LLMConfig]"]):
    """Each backend's config model by name: a view of the registry, so it holds other packages' backends too."""

    def __getitem__(self, name: str) -> type[LLMConfig]:
        return _registry()[name].config

    def __iter__(self) -> Iterator[str]:
        return iter(_registry())

    def __len__(self) -> int:
        return len(_registry())


BACKENDS: Mapping[str, type[LLMConfig]] = _Registered()


def _registry() -> dict:
    from generators.backends import backends  # imported here: the registry imports the config models above

    return backends()


def _any_backend() -> TypeAdapter[LLMConfig]:
    """The discriminated union of the registered backends' configs."""
    return _union(tuple(BACKENDS.values()))


@functools.cache
def _union(configs: tuple[type[LLMConfig], ...]) -> TypeAdapter[LLMConfig]:
    return TypeAdapter(Annotated[Union[configs], Field(discriminator="backend")])


def parse_llm_config(config: dict | LLMConfig) -> LLMConfig:
    """The config of an `llms:` entry's backend; a ValidationError names the mistakes."""
    return config if isinstance(config, LLMConfig) else LLMConfig.model_validate(config)


def _foreign(error: dict, backend: str | None) -> InitErrorDetails:
    """An unknown key that another backend reads becomes "KEY is only for backend OTHER, not BACKEND"."""
    key = error["loc"][-1] if error["type"] == "extra_forbidden" else None
    owners = [name for name, cls in BACKENDS.items() if key in cls.model_fields]
    if not owners:
        return InitErrorDetails(type=PydanticCustomError(error["type"], error["msg"], error.get("ctx")), loc=error["loc"],
                                input=error["input"])
    why = f"{key} is only for backend {' and '.join(owners)}, not {backend}"
    return InitErrorDetails(type=PydanticCustomError("value_error", why, {"error": why}), loc=error["loc"], input=error["input"])
