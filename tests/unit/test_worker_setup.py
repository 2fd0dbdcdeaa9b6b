"""Map stages set up once per worker process (`execute.set_up`), and a pass redone only when a node
was lost during it (`runner.run_pass_surviving_node_loss`): the rules, without Ray."""

from __future__ import annotations

import types

import pytest

from pipeline import execute, runner
from pipeline.errors import RunFailed
from pipeline.stage import MapStage, StageConfig, StageContext


class Counted(MapStage):
    name = "counted"

    class Config(StageConfig):
        word: str = "a"

    events: list[tuple[str, str]] = []

    def setup(self) -> None:
        self.events.append(("setup", self.config.word))

    def teardown(self) -> None:
        self.events.append(("teardown", self.config.word))


def stage(word: str = "a", stage_id: str = "01-counted") -> Counted:
    return Counted(Counted.Config(word=word), StageContext(stage_id=stage_id, output_dir="/o", work_dir="/w"))


@pytest.fixture(autouse=True)
def fresh_process(monkeypatch):
    monkeypatch.setattr(execute, "_SET_UP", type(execute._SET_UP)())
    Counted.events = []


def test_a_stage_is_set_up_once_per_process_however_many_tasks_bring_a_copy_of_it():
    first = execute.set_up([stage()])
    again = execute.set_up([stage()])  # each task unpickles its own copy
    assert again[0] is first[0]
    assert Counted.events == [("setup", "a")]


def test_another_config_or_another_stage_id_is_set_up_on_its_own():
    execute.set_up([stage("a")])
    execute.set_up([stage("b")])
    execute.set_up([stage("a", stage_id="02-counted")])
    assert Counted.events == [("setup", "a"), ("setup", "b"), ("setup", "a")]


def test_the_oldest_stages_are_torn_down_when_a_process_holds_too_many():
    for i in range(execute.KEEP_SET_UP + 1):
        execute.set_up([stage(str(i))])
    assert Counted.events[-1] == ("teardown", "0")
    assert [e for e in Counted.events if e[0] == "teardown"] == [("teardown", "0")]


PASS = types.SimpleNamespace(id="01-extract")


def lost_after(calls: list, failures: int, lose_node: bool):
    """`_run_pass` failing `failures` times (losing node n1 during each when `lose_node`), then succeeding."""
    nodes = iter([{"n0", "n1"}, {"n0"}] * failures + [{"n0"}] if lose_node else [{"n0"}] * (2 * failures + 1))

    def run_pass(*args):
        calls.append(args)
        if len(calls) <= failures:
            raise RuntimeError("ObjectLostError: the block is gone")
        return ["records"], "output"

    return run_pass, lambda: next(nodes)


@pytest.mark.parametrize("failures", [1, runner.NODE_LOSS_RETRIES])
def test_a_pass_during_which_a_node_was_lost_is_redone_from_its_input(monkeypatch, failures):
    from pipeline import ray_session
    from pipeline.progress import Progress

    calls = []
    run_pass, live = lost_after(calls, failures, lose_node=True)
    monkeypatch.setattr(runner, "_run_pass", run_pass)
    monkeypatch.setattr(ray_session, "live_nodes", live)
    assert runner.run_pass_surviving_node_loss(PASS, *[None] * 6, Progress(enabled=False)) == (["records"], "output")
    assert len(calls) == failures + 1


def test_a_node_lost_in_every_attempt_fails_the_run_in_one_line(monkeypatch):
    from pipeline import ray_session
    from pipeline.progress import Progress

    calls = []
    run_pass, live = lost_after(calls, runner.NODE_LOSS_RETRIES + 1, lose_node=True)
    monkeypatch.setattr(runner, "_run_pass", run_pass)
    monkeypatch.setattr(ray_session, "live_nodes", live)
    with pytest.raises(RunFailed, match="01-extract: a node was lost during each of its 4 attempts; the last error: ObjectLostError"):
        runner.run_pass_surviving_node_loss(PASS, *[None] * 6, Progress(enabled=False))


def test_a_failure_without_a_lost_node_is_not_retried(monkeypatch):
    from pipeline import ray_session
    from pipeline.progress import Progress

    calls = []
    run_pass, live = lost_after(calls, 1, lose_node=False)
    monkeypatch.setattr(runner, "_run_pass", run_pass)
    monkeypatch.setattr(ray_session, "live_nodes", live)
    with pytest.raises(RuntimeError, match="ObjectLostError"):
        runner.run_pass_surviving_node_loss(PASS, *[None] * 6, Progress(enabled=False))
    assert len(calls) == 1
