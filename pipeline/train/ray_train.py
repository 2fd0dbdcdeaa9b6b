"""Several GPUs or nodes: Ray Train's TorchTrainer runs the very same `finetune` in every worker.

Ray Train sets up the process group (gloo on CPU, NCCL on GPU); the loops notice it (`rank_and_world`),
wrap the model in DDP, read their share of micro batches and normalise the loss by the target tokens of
all workers. Rank 0 writes logs, checkpoints and the adapter, so the output directory must be on storage
all workers see. Ray itself is found the usual way: RAY_ADDRESS, a cluster this node has joined, or
a fresh local one.
"""

from __future__ import annotations

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

    out = output_dir(cfg, Path(run_dir))
    return TorchTrainer(
        _worker,
        train_loop_config={"cfg": cfg.model_dump(), "run_dir": str(Path(run_dir).resolve())},
        scaling_config=ScalingConfig(num_workers=cfg.num_workers, use_gpu=cfg.use_gpu),
        run_config=RunConfig(name="finetune", storage_path=str(out.resolve() / "ray")),
    )


def _worker(config: dict) -> None:
    from pipeline.train.run import finetune

    finetune(FinetuneConfig.model_validate(config["cfg"]), Path(config["run_dir"]))
