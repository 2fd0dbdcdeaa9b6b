"""Which local paths a cluster's nodes are asked about: the files a run's stages' workers open, not what
the driver alone reads (the asking itself, on a real two-node cluster: tests/e2e/test_cluster.py)."""

from __future__ import annotations

from pipeline.config import load_run
from pipeline.node_paths import _llms_used, _stage_paths


def test_the_files_the_workers_open_are_asked_about_at_their_option_and_nothing_the_driver_reads(tmp_path):
    for name in ("blocked.txt", "quality.bin", "benchmark.jsonl", "rules.yaml", "data.jsonl"):
        (tmp_path / name).write_text("spam.example\n" if name != "rules.yaml" else "rules: []\n")
    model = tmp_path / "lm"
    model.mkdir()
    config = tmp_path / "c.yaml"
    config.write_text(f"""
input: {{format: jsonl, paths: ["{tmp_path}/data.jsonl"]}}
output: {tmp_path}/out
llms:
  local: {{backend: transformers, model: "{model}"}}
  server: {{backend: vllm_server, url: "http://127.0.0.1:9/v1", model: "{model}"}}
stages:
  - url_filter: {{domain_files: ["{tmp_path}/blocked.txt", "{tmp_path}/not-here.txt", "s3://bucket/list.txt"]}}
  - quality: {{model: "{tmp_path}/quality.bin"}}
  - decontaminate: {{benchmarks: [{{path: "{tmp_path}/benchmark.jsonl", fields: [question]}}]}}
  - perplexity: {{llm: local}}
  - respond: {{llm: server}}
  - dedup: {{index_dir: "{tmp_path}/index", against: ["{tmp_path}/old-index"]}}
""")
    run = load_run(config)
    read, written = _stage_paths(run, _llms_used(run))
    assert read == [  # the driver looks at whether it has each itself (a model not here is a preflight error)
        (("stages", 0, "url_filter", "domain_files", 0), f"{tmp_path}/blocked.txt"),
        (("stages", 0, "url_filter", "domain_files", 1), f"{tmp_path}/not-here.txt"),
        (("stages", 1, "quality", "model"), f"{tmp_path}/quality.bin"),
        (("llms", "local", "model"), str(model)),
        (("stages", 5, "dedup", "against", 0), f"{tmp_path}/old-index"),
    ]
    assert written == [(("stages", 5, "dedup", "index_dir"), f"{tmp_path}/index")]
