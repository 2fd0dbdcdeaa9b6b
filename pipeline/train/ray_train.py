"""Several GPUs or nodes: Ray Train's TorchTrainer runs the very same `finetune` in every worker.

Ray Train sets up the process group (gloo on CPU, NCCL on GPU); the loops notice it (`rank_and_world`),
wrap the model in DDP, read their share of micro batches and normalise the loss by the target tokens of
all workers. Rank 0 writes logs, checkpoints and the adapter, so the output directory must be on storage
all workers see: object storage, or a shared filesystem. Ray itself is found as `pipeline run` finds it
(`ray_session`): RAY_ADDRESS, a cluster this node has joined, or a fresh local one.
"""

from __future__ import annotations

import os
import re
import threading
from pathlib import Path

from pipeline import storage
from pipeline.console_filter import not_noise
from pipeline.errors import RunFailed, UserError
from pipeline.storage import Location
from pipeline.train.config import FinetuneConfig
from pipeline.train.model import is_uri

# How Ray prints a line forwarded from a worker or actor: "(RayTrainWorker pid=123, ip=10.0.0.2) text", colour codes around the prefix.
# "(RayTrainWorker pid=4, ip=10.0.0.7)" for a worker or actor; "(raylet)", "(raylet, ip=...)" for Ray's own processes.
RAY_PREFIX = re.compile(
    r"^(?:\x1b\[[\d;]*m)*\((?:(?:[\w.]+ )?pid=\w+|[a-z_]+)(?:, ip=[\d.:a-f]+)?\)(?:\x1b\[[\d;]*m)* ?(?P<message>.*)$")


def finetune_anywhere(cfg: FinetuneConfig, run_dir: Location | str | Path) -> Location:
    """In this process for one CPU/GPU; through Ray Train for several workers, whose bad setting, bad data or
    diverged loss stops every worker alike: said once, plainly."""
    from pipeline.train.run import finetune, output_dir

    if cfg.num_workers == 1:
        return finetune(cfg, run_dir)
    from ray.train import WorkerGroupError

    from pipeline import capacity
    from pipeline.config import RayConfig
    from pipeline.output_dir import local_logs
    from pipeline.progress import Progress
    from pipeline.ray_session import ray_session
    from pipeline.stage import Resources

    per_worker = Resources(num_cpus=0, num_gpus=1) if cfg.use_gpu else Resources(num_cpus=1)  # Ray Train's defaults
    asked = f"finetune: --workers {cfg.num_workers}{' --gpu' * cfg.use_gpu} asks for"
    env = store_env()
    # RAY_ADDRESS's cluster, else a local Ray; the console shows the workers' own lines, the folder keeps the rest
    with local_logs(output_dir(cfg, run_dir) / "ray") as logs, \
            ray_session(RayConfig(), Progress(), logs, env, worker_lines=ours):
        capacity.check_workers(asked, per_worker, cfg.num_workers, "give --workers {n}")
        check_shared_paths(cfg, run_dir)
        try:
            fit_leaving_signals_to_us(trainer(cfg, run_dir))
        except WorkerGroupError as e:
            found = next((f for f in e.worker_failures.values() if isinstance(f, (UserError, RunFailed))), None)
            if found is None:
                raise
            raise type(found)(str(found)) from None
    return output_dir(cfg, run_dir)


def fit_leaving_signals_to_us(trainer) -> None:
    """`trainer.fit()` in a thread of its own. In the main thread, Ray Train takes SIGINT over for the
    length of `fit`: Ctrl-C aborted the run and the process exited with status 1, saying nothing. Off
    the main thread it leaves the signals to ours (`interrupts`): Ctrl-C or SIGTERM is "interrupted"
    with its exit code, and leaving the Ray session stops the workers."""
    outcome: dict = {}

    def fit() -> None:
        try:
            trainer.fit()
        except BaseException as e:  # the workers' failure, said by the main thread
            outcome["error"] = e

    thread = threading.Thread(target=fit, name="ray-train-fit", daemon=True)
    thread.start()
    thread.join()  # a signal interrupts the wait
    if "error" in outcome:
        raise outcome["error"]


def check_shared_paths(cfg: FinetuneConfig, run_dir: Location | str | Path) -> None:
    """Every worker reads the data and the base model, and the tokenizer copy rank 0 writes into the output:
    on a cluster of several nodes, each must see the local ones (`node_paths`), or the workers failed
    one by one with a traceback each."""
    from pipeline import node_paths
    from pipeline.train.data import resolve_paths
    from pipeline.train.run import output_dir

    run_dir = storage.locate(run_dir)
    defaults = [d.uri for d in (run_dir / "data", run_dir / "preferences") if d.is_local and d.is_dir()]
    files = [f.path for f in resolve_paths([*cfg.data, *cfg.documents, *cfg.preferences] or defaults) if f.is_local]
    model = [os.path.abspath(cfg.model)] if not is_uri(cfg.model) and os.path.isdir(cfg.model) else []
    out = output_dir(cfg, run_dir)
    unseen, shared = node_paths.unseen(files + model, [out] if out.is_local else [])
    out_unseen = shared[0] if shared else []
    data = [f"finetune: {node_paths.said(path, nodes)}" for path, nodes in zip(files, unseen) if nodes]
    problems = data[:2] + ([f"finetune: ... and {len(data) - 2} more data files"] if len(data) > 2 else [])
    if model and unseen[-1]:
        problems.append(f"finetune: the model {node_paths.said(model[0], unseen[-1])}")
    if out_unseen:
        problems.append(f"finetune: the output {node_paths.said(out.path, out_unseen)}")
    if problems:
        raise UserError("\n".join(problems))


def ours(line: str) -> str | None:
    """What the console shows of a line printed while Ray Train runs: the workers' `finetune:` lines without
    Ray's prefix, as one process prints them; not the controller's and workers' other output (set-up
    notes, library warnings: the log keeps them; a worker's error reaches the driver and is said there)."""
    forwarded = RAY_PREFIX.match(line)
    if forwarded is None:
        return not_noise(line)
    message = forwarded.group("message")
    return message if message.startswith("finetune:") else None


def trainer(cfg: FinetuneConfig, run_dir: Location | str | Path):
    from ray.train import RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    from pipeline.train.run import output_dir

    cfg = with_absolute_paths(cfg)
    ray_dir = output_dir(cfg, run_dir) / "ray"
    env = store_env()
    # Ray Train's own `print` in its workers logs each line and prints it too: forwarded twice to the console.
    worker_env = {**env, "RAY_TRAIN_ENABLE_PRINT_PATCH": "0"}
    return TorchTrainer(
        _worker,
        train_loop_config={"cfg": cfg.model_dump(), "run_dir": _absolute(run_dir)},
        scaling_config=ScalingConfig(num_workers=cfg.num_workers, use_gpu=cfg.use_gpu),
        run_config=RunConfig(name="finetune", storage_path=ray_dir.path, storage_filesystem=ray_dir.fs,
                             worker_runtime_env={"env_vars": worker_env}),
    )


def store_env() -> dict[str, str]:
    """What workers on other nodes need to find the same object store: its endpoint, never credentials
    (each node finds its own the provider's usual way)."""
    return storage.configure(os.environ.get("AWS_ENDPOINT_URL"))


def with_absolute_paths(cfg: FinetuneConfig) -> FinetuneConfig:
    """Ray Train starts every worker in a working directory of its own: paths relative to ours must not reach it.
    URIs mean the same everywhere and stay as they are."""
    local = {key: [_absolute(p) for p in getattr(cfg, key)] for key in ("data", "documents", "preferences")}
    if cfg.output:
        local["output"] = _absolute(cfg.output)
    if not is_uri(cfg.model) and storage.locate(cfg.model).exists():  # else a Hugging Face id, or a URI
        local["model"] = _absolute(cfg.model)
    return cfg.model_copy(update=local)


def _absolute(where: Location | str | Path) -> str:
    """A local path made absolute; a URI as written (no request to a store just to name it)."""
    if not isinstance(where, Location) and is_uri(str(where)):
        return str(where)
    where = storage.locate(where)
    return where.path if where.is_local else where.uri


def _worker(config: dict) -> None:
    from pipeline.train.run import finetune

    finetune(FinetuneConfig.model_validate(config["cfg"]), config["run_dir"])
