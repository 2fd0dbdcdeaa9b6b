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


def test_workers_get_absolute_paths_since_ray_train_moves_their_working_directory(tmp_path, monkeypatch):
    (tmp_path / "models" / "tiny").mkdir(parents=True)
    monkeypatch.chdir(tmp_path)
    cfg = FinetuneConfig(model="models/tiny", num_workers=2, data=["run/data/*.parquet"], preferences=["prefs.jsonl"],
                         documents=["web/*.parquet"], output="out")
    sent = FinetuneConfig.model_validate(trainer(cfg, tmp_path).train_loop_config["cfg"])
    assert sent.model == str(tmp_path / "models" / "tiny") and sent.output == str(tmp_path / "out")
    assert sent.data == [str(tmp_path / "run" / "data" / "*.parquet")] and sent.preferences == [str(tmp_path / "prefs.jsonl")]
    assert sent.documents == [str(tmp_path / "web" / "*.parquet")]
    hub = FinetuneConfig(model="Qwen/Qwen2.5-0.5B-Instruct", num_workers=2)
    assert FinetuneConfig.model_validate(trainer(hub, tmp_path).train_loop_config["cfg"]).model == hub.model


def test_workers_on_other_nodes_are_told_the_store_and_never_the_credentials(tmp_path, monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-for-workers")
    cfg = FinetuneConfig(model="some/model", num_workers=2, output="s3://bucket/adapters/v1")
    t = trainer(cfg, "s3://bucket/run1")
    assert t.run_config.worker_runtime_env == {"env_vars": {"AWS_ENDPOINT_URL": "http://127.0.0.1:9"}}
    assert t.train_loop_config["run_dir"] == "s3://bucket/run1"
    assert FinetuneConfig.model_validate(t.train_loop_config["cfg"]).output == "s3://bucket/adapters/v1"
    assert t.run_config.storage_path == "bucket/adapters/v1/ray"
