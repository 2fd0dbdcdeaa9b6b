"""What a Ray cluster can run, judged from its nodes' resources before any pass: a stage no node can
host, or a fixed pool larger than the nodes hold at once, is an error naming it (Ray waits forever).
Whole runs through the CLI are in tests/e2e/test_honest_runs.py."""

from __future__ import annotations

import pytest

from pipeline import capacity, passes
from pipeline.config import load_run
from pipeline.errors import UserError

LAPTOP = [{"CPU": 2.0, "memory": 1e10}]
CLUSTER = [{"CPU": 8.0}, {"CPU": 16.0, "GPU": 2.0}, {"CPU": 16.0, "GPU": 1.0}]


def plan(tmp_path, stages: str):
    path = tmp_path / "c.yaml"
    path.write_text(f'input: {{format: jsonl, paths: ["x.jsonl"]}}\noutput: out\nstages:\n{stages}')
    run = load_run(path)
    return passes.plan(run.stages, run.config.fuse)


def refused(tmp_path, stages: str, nodes) -> str:
    with pytest.raises(UserError) as e:
        capacity.check(plan(tmp_path, stages), nodes)
    return str(e.value)


def test_a_worker_no_node_can_host_is_refused(tmp_path):
    said = refused(tmp_path, "  - length: {min_words: 3, resources: {num_gpus: 1}}\n", LAPTOP)
    assert said == ("stage 01-length: resources ask for 1 GPU and 1 CPU per worker, more than any node of the Ray "
                    "cluster has (1 node: 2 CPUs and 0 GPUs); Ray would wait for such a node forever")
    said = refused(tmp_path, "  - length: {min_words: 3, resources: {num_gpus: 1, num_cpus: 17}}\n", CLUSTER)
    assert "1 GPU and 17 CPUs per worker" in said and "(3 nodes, at most 16 CPUs and 2 GPUs on one)" in said
    capacity.check(plan(tmp_path, "  - length: {min_words: 3, resources: {num_gpus: 2, num_cpus: 16}}\n"), CLUSTER)


def test_a_fixed_pool_must_fit_at_once_and_a_task_pool_need_not(tmp_path):
    """`language` sets up a model in each worker: with `concurrency` it is a pool of that many actors, all
    up at once. `length` sets up nothing: its `concurrency` only caps how many tasks run at a time."""
    said = refused(tmp_path, "  - language: {keep: [en], resources: {concurrency: 4, num_cpus: 1}}\n", LAPTOP)
    assert said.endswith("resources ask for 4 workers of 1 CPU each, and the Ray cluster's nodes hold 2 at once (1 node: 2 CPUs "
                         "and 0 GPUs); Ray would wait for the rest forever: lower resources.concurrency to 2")
    capacity.check(plan(tmp_path, "  - language: {keep: [en], resources: {concurrency: 4, num_cpus: 0.5}}\n"), LAPTOP)
    capacity.check(plan(tmp_path, "  - length: {min_words: 3, resources: {concurrency: 4, num_cpus: 1}}\n"), LAPTOP)
    gpus = "  - language: {keep: [en], resources: {concurrency: N, num_gpus: 1, num_cpus: 1}}\n"
    capacity.check(plan(tmp_path, gpus.replace("N", "3")), CLUSTER)
    assert "hold 3 at once" in refused(tmp_path, gpus.replace("N", "4"), CLUSTER)


def test_every_stage_that_cannot_run_is_named_and_the_defaults_run_anywhere(tmp_path):
    stages = ("  - length: {min_words: 3, resources: {num_cpus: 4}}\n"
              "  - heuristics: {}\n"
              "  - semdedup: {model: m, resources: {num_gpus: 1}}\n")
    said = refused(tmp_path, stages, LAPTOP).splitlines()
    assert [line.split(":")[0] for line in said] == ["stage 01-length", "stage 03-semdedup"]
    capacity.check(plan(tmp_path, "  - length: {min_words: 3}\n  - dedup: {}\n  - heuristics: {}\n"), [{"CPU": 1.0}])
