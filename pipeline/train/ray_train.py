"""Several GPUs or nodes: Ray Train's TorchTrainer runs the very same `finetune` in every worker.

Ray Train sets up the process group (gloo on CPU, NCCL on GPU); the loops notice it (`rank_and_world`),
wrap the model in DDP, read their share of micro batches and normalise the loss by the target tokens of
all workers. Rank 0 writes logs, checkpoints and the adapter, so the output directory must be on storage
all workers see. Ray itself is found the usual way: RAY_ADDRESS, a cluster this node has joined, or
a fresh local one.
"""

from __future__ import annotations

import os
from pathlib import Path

from pipeline.errors import UserError
from pipeline.train.config import FinetuneConfig


def finetune_anywhere(cfg: FinetuneConfig, run_dir: Path) -> Path:
    """In this process for one CPU/GPU; through Ray Train for several workers."""
    from pipeline.train.run import finetune, output_dir

    if cfg.num_workers == 1:
        return finetune(cfg, run_dir)
    from ray.train import WorkerGroupError

    try:
        trainer(cfg, run_dir).fit()
    except WorkerGroupError as e:  # a bad setting or bad data stops every worker alike: say it once, plainly
        user_error = next((f for f in e.worker_failures.values() if isinstance(f, UserError)), None)
        if user_error is None:
            raise
        raise UserError(str(user_error)) from None
    return output_dir(cfg, Path(run_dir))


def trainer(cfg: FinetuneConfig, run_dir: Path):
    from ray.train import RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    from pipeline.train.run import output_dir

    cfg = with_absolute_paths(cfg)
    out = output_dir(cfg, Path(run_dir))
    return TorchTrainer(
        _worker,
        train_loop_config={"cfg": cfg.model_dump(), "run_dir": str(Path(run_dir).resolve())},
        scaling_config=ScalingConfig(num_workers=cfg.num_workers, use_gpu=cfg.use_gpu),
        run_config=RunConfig(name="finetune", storage_path=str(out.resolve() / "ray")),
    )


def with_absolute_paths(cfg: FinetuneConfig) -> FinetuneConfig:
    """Ray Train starts every worker in a working directory of its own: paths relative to ours must not reach it."""
    local = {"data": [os.path.abspath(p) for p in cfg.data], "preferences": [os.path.abspath(p) for p in cfg.preferences]}
    if cfg.output:
        local["output"] = os.path.abspath(cfg.output)
    if Path(cfg.model).exists():  # else a Hugging Face id
        local["model"] = os.path.abspath(cfg.model)
    return cfg.model_copy(update=local)


def _worker(config: dict) -> None:
    from pipeline.train.run import finetune

    finetune(FinetuneConfig.model_validate(config["cfg"]), Path(config["run_dir"]))
