"""The LLM backends: one module per way of serving a model, and the registry that names them.

A backend is what `backend:` names under `llms:`: a config model (an `LLMConfig` whose `backend` field is
`Literal["<name>"]`) and a factory that builds its client from a validated config. The built-in backends
below register the same way as another package's, with `register_backend`; another package's are found
through the `pipeline.llm_backends` entry-point group, whose entries name modules that register when
imported (as `pipeline.stages` entries name modules that register stages), so an `llms:` entry, its
validation when the config loads and `factory.make_client` know them with no change here.

A factory imports its backend's module only when it is called, so validating a config stays cheap and
torch or Ray's vLLM integration is imported only by a run that uses them.
"""

from __future__ import annotations

import dataclasses
import typing
from importlib.metadata import entry_points
from typing import Callable

from generators.client import LLMClient
from generators.llm_config import LLMConfig, RayVLLMConfig, TransformersConfig, VLLMServerConfig

ENTRY_POINT_GROUP = "pipeline.llm_backends"


@dataclasses.dataclass(frozen=True)
class Backend:
    name: str
    config: type[LLMConfig]
    client: Callable[[LLMConfig], LLMClient]


_BACKENDS: dict[str, Backend] = {}
_loaded = False


def register_backend(config: type[LLMConfig], client: Callable[[LLMConfig], LLMClient]) -> None:
    """Name a backend under `llms:`: by the `backend` literal of `config`, which `client(config)` serves."""
    name = _name(config)
    if name in _BACKENDS and _BACKENDS[name].config is not config:
        raise ValueError(f"two LLM backends are named '{name}': {_BACKENDS[name].config} and {config}")
    _BACKENDS[name] = Backend(name, config, client)


def backends() -> dict[str, Backend]:
    """Every backend by name, the built-in ones first; installed packages' are loaded on the first call."""
    global _loaded
    if not _loaded:
        _loaded = True
        for ep in entry_points(group=ENTRY_POINT_GROUP):
            ep.load()
    return dict(_BACKENDS)


def _name(config: type[LLMConfig]) -> str:
    """The name a config class declares; the discriminated union of `llms:` entries needs it as a literal."""
    field = config.model_fields.get("backend") if isinstance(config, type) and issubclass(config, LLMConfig) else None
    names = typing.get_args(field.annotation) if field and typing.get_origin(field.annotation) is typing.Literal else ()
    if len(names) != 1 or not isinstance(names[0], str):
        raise TypeError(f"{config!r} is not an LLM backend's config: it must derive from LLMConfig and declare "
                        "`backend: Literal['<name>']`")
    return names[0]


def _vllm_server(config: VLLMServerConfig) -> LLMClient:
    """A client of the server at `url`; without one, of a server started now, healthy when this returns."""
    from generators.backends.vllm_server import VLLMServerClient
    from generators.factory import server_process

    return VLLMServerClient(config, server_process(config).start() if config.managed else None)


def _ray_vllm(config: RayVLLMConfig) -> LLMClient:
    from generators.backends.ray_vllm import RayVLLMClient

    return RayVLLMClient(config)


def _transformers(config: TransformersConfig) -> LLMClient:
    from generators.backends.transformers_local import TransformersClient

    return TransformersClient(config)


register_backend(VLLMServerConfig, _vllm_server)
register_backend(RayVLLMConfig, _ray_vllm)
register_backend(TransformersConfig, _transformers)
