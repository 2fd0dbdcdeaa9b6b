"""Bad storage, as `pipeline validate` and `pipeline run` meet it on a real S3 server: a missing bucket,
an endpoint that does not answer, wrong or missing credentials, and a key that may read but not write
the output. Each is one line that names the URI and the cause, exit 2, before Ray starts."""

from __future__ import annotations

import os
import subprocess
import uuid

import pytest

from pipeline import storage
from tests.cli import cli
from tests.object_store import READ_ONLY_KEY, READ_ONLY_SECRET
from tests.ports import free_port

CONFIG = """name: bad-storage
input: {{format: jsonl, paths: ["{input}"]}}
output: {{path: "{out}"}}
stages:
  - length: {{min_words: 3}}
"""


@pytest.fixture(scope="module")
def bucket(object_store, shared_data) -> str:
    """One bucket for the module, holding a real JSONL input that every case reads or fails to read."""
    name = "s3://" + object_store.make_bucket(f"bad-storage-{uuid.uuid4().hex[:8]}")
    with pytest.MonkeyPatch.context() as env:  # for the upload; each CLI run gets its own environment
        for key, value in object_store.env().items():
            env.setenv(key, value)
        seeds = storage.locate(shared_data / "seeds" / "self_instruct" / "seed_tasks.jsonl")
        seeds.copy_to(storage.locate(f"{name}/seeds.jsonl"))
    return name


def store_cli(object_store, env: dict, *args) -> subprocess.CompletedProcess:
    environment = {**os.environ, **object_store.env(), **env}
    return cli(*args, env={k: v for k, v in environment.items() if v is not None})


CASES = {  # case: (input, output, environment, the line's key, what it says after the URI)
    "missing bucket": ("s3://no-such-bucket-{id}/crawl/*.jsonl", "local", {},
                       "input.paths[0]", "no file matches 's3://no-such-bucket-{id}/crawl/*.jsonl' "
                                         "(there is no bucket 'no-such-bucket-{id}')"),
    "endpoint down": ("{bucket}/seeds.jsonl", "local", {"AWS_ENDPOINT_URL": "http://127.0.0.1:{port}"},
                      "input.paths[0]", "{bucket}/seeds.jsonl: the S3 endpoint http://127.0.0.1:{port} "
                                        "(AWS_ENDPOINT_URL) did not answer within 3 s"),
    "wrong secret": ("{bucket}/seeds.jsonl", "local", {"AWS_SECRET_ACCESS_KEY": "not-the-secret"},
                     "input.paths[0]", "{bucket}/seeds.jsonl: access denied"),
    "no credentials": ("{bucket}/seeds.jsonl", "local", {"AWS_ACCESS_KEY_ID": None, "AWS_SECRET_ACCESS_KEY": None},
                       "input.paths[0]", "{bucket}/seeds.jsonl: access denied"),
    "read-only key": ("{bucket}/seeds.jsonl", "{bucket}/out", {"AWS_ACCESS_KEY_ID": READ_ONLY_KEY,
                                                                "AWS_SECRET_ACCESS_KEY": READ_ONLY_SECRET},
                      "output.path", "cannot write to {bucket}/out: Access Denied"),
}


@pytest.mark.parametrize("case", CASES)
def test_bad_storage_is_one_line_naming_the_uri_and_the_cause(object_store, bucket, tmp_path, case):
    given, out, env, key, cause = CASES[case]
    names = {"bucket": bucket, "id": uuid.uuid4().hex[:8], "port": free_port()}
    given, cause = given.format(**names), cause.format(**names)
    env = {k: v.format(**names) if v else v for k, v in env.items()}
    out = str(tmp_path / "out") if out == "local" else out.format(**names)
    config = tmp_path / "c.yaml"
    config.write_text(CONFIG.format(input=given, out=out))
    line = {"input.paths[0]": 2, "output.path": 3}[key]
    assert store_cli(object_store, {}, "validate", str(config)).returncode == (2 if case == "missing bucket" else 0), \
        "the same config with the store's own environment"
    for command in ("validate", "run"):
        proc = store_cli(object_store, env, command, str(config))  # not --quiet: a Ray start would say so
        assert proc.returncode == 2, proc.stdout + proc.stderr
        assert proc.stderr.splitlines() == [f"error: {config}:{line}: {key}: {cause}"]
        assert "Ray" not in proc.stdout + proc.stderr and not (tmp_path / "out").exists()
