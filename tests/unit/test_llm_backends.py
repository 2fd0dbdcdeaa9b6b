"""The LLM backend registry: a backend that another package registers is named under `llms:` like a
built-in one. Its config is validated when the run config loads, with the same messages (an unknown
backend's did-you-mean lists it; a key of another backend names the backend that reads it), and
`make_client` builds its client, cache included.

`echo` is such a package's backend, small enough to pin the registry's rules; docs/extending.md's
`hf_local` (tests/docs/test_extending.py) is one that serves a real model in a real run.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from pipeline.config import load_run
from pipeline.errors import UserError

ROOT = Path(__file__).resolve().parents[2]

ECHO = '''
"""`echo`: answers a request with its own text, after a prefix."""

from typing import Literal

from generators.backends import register_backend
from generators.client import Choice, Response, Usage
from generators.llm_config import LLMConfig


class EchoConfig(LLMConfig):
    backend: Literal["echo"]
    prefix: str = ""


class EchoClient:
    def __init__(self, config: EchoConfig):
        self.model, self.prefix, self.calls = config.model, config.prefix, 0

    def generate(self, requests, *, on_response=None):
        self.calls += len(requests)
        responses = [Response([Choice(self.prefix + (r.prompt or r.messages[-1]["content"]), "stop")], self.model,
                              Usage(1, 1)) for r in requests]
        for i, response in enumerate(responses):
            if on_response:
                on_response(i, response)
        return responses

    def close(self):
        pass


register_backend(EchoConfig, EchoClient)
'''


@pytest.fixture
def echo_site(tmp_path) -> Path:
    """A folder holding the package `echo_ext` as pip installs it: its module and the entry point it declares."""
    site = tmp_path / "site"
    (site / "echo_ext").mkdir(parents=True)
    (site / "echo_ext" / "__init__.py").write_text(ECHO)
    dist = site / "echo_ext-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: echo-ext\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[pipeline.llm_backends]\necho = echo_ext\n")
    return site


@pytest.fixture
def echo(echo_site, monkeypatch):
    """`echo` registered in this process (as its entry point registers it), and gone from the registry afterwards."""
    from generators import backends

    backends.backends()  # the installed backends, found before echo_ext is on the path
    monkeypatch.setattr(backends, "_BACKENDS", dict(backends._BACKENDS))
    monkeypatch.syspath_prepend(str(echo_site))
    import echo_ext

    yield echo_ext
    monkeypatch.delitem(sys.modules, "echo_ext")


def test_an_installed_packages_backend_is_found_by_its_entry_point_and_builds_its_client(echo_site, tmp_path):
    """A fresh process, as a Ray worker is: the backend is found through the package's metadata alone."""
    script = textwrap.dedent(f"""
        from generators.client import Request
        from generators.factory import make_client
        from generators.llm_config import LLMConfig, parse_llm_config

        config = parse_llm_config({{"backend": "echo", "model": "m", "prefix": "> "}})
        print(type(config).__name__, type(LLMConfig(backend="echo", model="m")).__name__)
        client = make_client({{"backend": "echo", "model": "m", "prefix": "> ", "cache_dir": {str(tmp_path / "cache")!r}}})
        first = client.generate([Request(prompt="hello")])[0].text
        again = client.generate([Request(prompt="hello")])[0].text
        print(type(client).__name__, first, again, client.inner.calls)
    """)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(echo_site), str(ROOT)])}
    proc = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == ["EchoConfig EchoConfig", "CachedClient > hello > hello 1"]


def config_error(tmp_path, llms: str) -> str:
    path = tmp_path / "c.yaml"
    path.write_text("input: {format: jsonl, paths: [data.jsonl]}\noutput: out\nstages:\n  - length: {min_words: 2}\n" + llms)
    with pytest.raises(UserError) as e:
        load_run(path)
    return str(e.value)


def test_a_registered_backend_is_validated_at_load_like_a_built_in_one(echo, tmp_path):
    assert config_error(tmp_path, "llms:\n  t: {backend: ehco, model: m}\n").endswith(
        "c.yaml:6: llms.t.backend: got 'ehco', expected one of 'vllm_server', 'ray_vllm', 'transformers', 'echo'; "
        "did you mean 'echo'?")
    assert config_error(tmp_path, "llms:\n  t: {backend: echo, model: m, replicas: 2}\n").endswith(
        "c.yaml:6: llms.t.replicas: replicas is only for backend ray_vllm, not echo")
    assert config_error(tmp_path, "llms:\n  t: {backend: transformers, model: m, prefix: '> '}\n").endswith(
        "c.yaml:6: llms.t.prefix: prefix is only for backend echo, not transformers")
    assert config_error(tmp_path, "llms:\n  t: {backend: echo, model: m, prefx: '> '}\n").endswith(
        "c.yaml:6: llms.t.prefx: unknown key 'prefx'; did you mean 'prefix'? "
        "(valid keys: backend, model, cache_dir, failure_window, max_failure_rate, prefix)")
    path = tmp_path / "c.yaml"
    path.write_text(path.read_text().replace("prefx", "prefix"))
    assert load_run(path).config.llms["t"] == {"backend": "echo", "model": "m", "prefix": "> "}


def test_a_backend_name_is_registered_once_by_a_config_that_declares_it(echo):
    from typing import Literal

    from generators.backends import backends, register_backend
    from generators.llm_config import LLMConfig

    register_backend(echo.EchoConfig, echo.EchoClient)  # the same class again: a module imported twice
    assert backends()["echo"].config is echo.EchoConfig

    class OtherEcho(LLMConfig):
        backend: Literal["echo"]

    with pytest.raises(ValueError, match="two LLM backends are named 'echo'"):
        register_backend(OtherEcho, echo.EchoClient)

    class Unnamed(LLMConfig):
        pass

    with pytest.raises(TypeError, match="declare `backend: Literal"):
        register_backend(Unnamed, echo.EchoClient)
    assert list(backends()) == ["vllm_server", "ray_vllm", "transformers", "echo"]
