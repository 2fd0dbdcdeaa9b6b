"""The exact rules of ray_session's cluster helpers; the paths themselves run on a real two-node
cluster in tests/e2e/test_cluster.py."""

from __future__ import annotations

import json

import pytest

from pipeline.ray_session import JOB_CONFIG_VAR, _beside_job, _module_not_found

OURS = {"py_modules": ["/src/pipeline", "/src/stages"], "env_vars": {"AWS_ENDPOINT_URL": "http://s3:9000", "X": "1"}}


def test_outside_a_job_our_runtime_env_goes_as_it_is(monkeypatch):
    monkeypatch.delenv(JOB_CONFIG_VAR, raising=False)
    assert _beside_job(OURS) == OURS


def test_a_key_a_ray_job_sets_is_left_to_the_job(monkeypatch):
    job = {"runtime_env": {"py_modules": ["s3://b/code.zip"], "env_vars": {"AWS_ENDPOINT_URL": "http://minio:9000"}}}
    monkeypatch.setenv(JOB_CONFIG_VAR, json.dumps(job))
    assert _beside_job(OURS) == {"env_vars": {"X": "1"}}


def test_a_job_that_sets_every_variable_we_would_gets_none_of_ours(monkeypatch):
    monkeypatch.setenv(JOB_CONFIG_VAR, json.dumps({"runtime_env": {"env_vars": {"AWS_ENDPOINT_URL": "a", "X": "b"}}}))
    assert _beside_job(OURS) == {"py_modules": OURS["py_modules"]}


class TaskError(Exception):
    """How Ray delivers a task's exception: the original as `.cause`."""

    def __init__(self, cause: BaseException):
        super().__init__("task failed")
        self.cause = cause


@pytest.mark.parametrize("error, module", [
    (ModuleNotFoundError("No module named 'trafilatura'", name="trafilatura"), "trafilatura"),
    (TaskError(ModuleNotFoundError("No module named 'fasttext'", name="fasttext")), "fasttext"),
    (RuntimeError("The actor died because of an error raised in its creation task:\n"
                  "ModuleNotFoundError: No module named 'resiliparse.parse'"), "resiliparse.parse"),
    (RuntimeError("a stage failed"), None),
    (ValueError("no module was named"), None),
])
def test_the_missing_module_is_found_behind_any_wrapper(error, module):
    try:
        try:
            raise error
        except Exception as e:
            raise RuntimeError("map task failed") from e
    except RuntimeError as outer:
        assert _module_not_found(outer) == module
