"""Ray Train wrapper, at the config level; tests/e2e/test_finetune_workers.py runs it with two CPU workers."""

from pipeline.train.config import FinetuneConfig
from pipeline.train.ray_train import _worker, trainer


def test_trainer_runs_the_same_finetune_on_each_worker(tmp_path):
    cfg = FinetuneConfig(model="some/model", num_workers=4, use_gpu=True, sft={"max_steps": 3})
    t = trainer(cfg, tmp_path)
    assert t.scaling_config.num_workers == 4 and t.scaling_config.use_gpu
    assert t.train_loop_per_worker is _worker
    loop_config = t.train_loop_config
    assert FinetuneConfig.model_validate(loop_config["cfg"]) == cfg
    assert loop_config["run_dir"] == str(tmp_path.resolve())
