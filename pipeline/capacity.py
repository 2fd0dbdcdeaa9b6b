"""Whether the Ray cluster can run each stage at all, checked once Ray is up and before any pass runs.

Ray waits for resources that no node has, forever and without a word on the console (its note goes to
its logs): a stage asking for a GPU on machines without one, for more CPUs per worker than a node has,
or for a fixed pool of more workers than the nodes hold at once (`concurrency: 4` of a CPU each on a
2-CPU machine) left the run waiting until it was killed. Such a stage is now one line naming it, what
it asks for and what the nodes have. The nodes are those alive when the run starts: a cluster that
adds nodes on demand must have started them.
"""

from __future__ import annotations

import math

from pipeline.errors import UserError
from pipeline.execute import holds_a_pool
from pipeline.passes import Pass, map_form
from pipeline.stage import Resources, Stage


def check(plan: list[Pass], nodes: list[dict[str, float]] | None = None) -> None:
    """Raise UserError naming every stage of `plan` that the nodes (each one's resources, as
    `ray.nodes()` gives them; by default the cluster's live nodes) cannot run."""
    nodes = _live() if nodes is None else nodes
    problems = [problem for p in plan for stage in p.stages if (problem := _problem(stage, nodes))]
    if problems:
        raise UserError("\n".join(problems))


def check_workers(who: str, res: Resources, wanted: int, fewer: str, nodes: list[dict[str, float]] | None = None) -> None:
    """Raise UserError if the nodes cannot hold `wanted` workers of `res` at once (Ray Train's worker group)."""
    problem = _shortfall(who, res, wanted, fewer, _live() if nodes is None else nodes)
    if problem:
        raise UserError(problem)


def _live() -> list[dict[str, float]]:
    import ray

    return [node["Resources"] for node in ray.nodes() if node["Alive"]]


def _problem(stage: Stage, nodes: list[dict[str, float]]) -> str | None:
    mapped = map_form(stage)
    res = mapped.effective_resources() if mapped is not None else stage.config.resources
    if res is None:
        return None
    pool = mapped is None or holds_a_pool(mapped, res)  # a global stage's own map pass holds a model: a pool
    return _shortfall(f"stage {stage.ctx.stage_id}: resources ask for", res, (res.concurrency or 1) if pool else 1,
                      "lower resources.concurrency to {n}", nodes)


def _shortfall(who: str, res: Resources, wanted: int, fewer: str, nodes: list[dict[str, float]]) -> str | None:
    fits = [_workers(node, res) for node in nodes]
    if sum(fits) >= wanted:
        return None
    asked = _asked(res)
    if not any(fits):
        return (f"{who} {asked} per worker, more than any node of the Ray cluster has ({_described(nodes)}); "
                "Ray would wait for such a node forever")
    return (f"{who} {wanted} workers of {asked} each, and the Ray cluster's nodes hold {sum(fits)} at once "
            f"({_described(nodes)}); Ray would wait for the rest forever: {fewer.format(n=sum(fits))}")


def _workers(node: dict[str, float], res: Resources) -> int:
    """How many workers of `res` fit on the node at once."""
    room = [math.floor(node.get(kind, 0) / need + 1e-9) for kind, need in (("CPU", res.num_cpus), ("GPU", res.num_gpus))
            if need > 0]
    return min(room) if room else 1


def _asked(res: Resources) -> str:
    parts = [f"{n:g} {kind}{'s' * (n != 1)}" for kind, n in (("GPU", res.num_gpus), ("CPU", res.num_cpus)) if n > 0]
    return " and ".join(parts) or "nothing"


def _described(nodes: list[dict[str, float]]) -> str:
    if not nodes:
        return "no node alive"
    cpus = max(node.get("CPU", 0) for node in nodes)
    gpus = max(node.get("GPU", 0) for node in nodes)
    has = f"{cpus:g} CPU{'s' * (cpus != 1)} and {gpus:g} GPU{'s' * (gpus != 1)}"
    return f"1 node: {has}" if len(nodes) == 1 else f"{len(nodes)} nodes, at most {has} on one"
