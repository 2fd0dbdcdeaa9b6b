"""Ray Train wrapper, at the config level; tests/e2e/test_finetune_workers.py runs it with two CPU workers."""

from pipeline.train.config import FinetuneConfig
from pipeline.train.ray_train import _worker, ours, trainer


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
    assert t.run_config.worker_runtime_env == {"env_vars": {"AWS_ENDPOINT_URL": "http://127.0.0.1:9",
                                                            "RAY_TRAIN_ENABLE_PRINT_PATCH": "0"}}
    assert t.train_loop_config["run_dir"] == "s3://bucket/run1"
    assert FinetuneConfig.model_validate(t.train_loop_config["cfg"]).output == "s3://bucket/adapters/v1"
    assert t.run_config.storage_path == "bucket/adapters/v1/ray"


def test_the_console_shows_the_workers_own_lines_as_one_process_prints_them():
    """Lines as Ray's driver prints what workers and actors print (colour codes around the prefix)."""
    assert ours("\x1b[36m(RayTrainWorker pid=29125)\x1b[0m finetune: sft step 1/5: loss 7.642") == "finetune: sft step 1/5: loss 7.642"
    assert ours("(RayTrainWorker pid=4, ip=10.0.0.7) finetune: dpo step 2/2: loss 0.69") == "finetune: dpo step 2/2: loss 0.69"
    for noise in ("\x1b[36m(TrainController pid=28996)\x1b[0m Requesting resources: {'CPU': 1} * 2",
                  "\x1b[36m(TrainController pid=28996)\x1b[0m - (ip=192.0.2.2, pid=29125) world_rank=0, local_rank=0",
                  "\x1b[36m(RayTrainWorker pid=29125)\x1b[0m Setting up process group for: env:// [rank=0, world_size=2]",
                  "(RayTrainWorker pid=29125)   warnings.warn(",
                  # On a machine whose disk is nearly full, every 10 s (Ray's own logs keep it; `pipeline run` hides it too)
                  "\x1b[33m(raylet)\x1b[0m [2026-12-06 19:22:50,783 E 22738 22749] (raylet) file_system_monitor.cc:116: "
                  "/tmp/ray/session_x is over 95% full, available space: 8.59587 GB; capacity: 251.972 GB.",
                  "(raylet, ip=10.0.0.7) [2026-12-06 19:22:50,783 E 1 2] (raylet) worker_pool.cc:1: a notice",
                  "2026-12-06 16:15:53,539\tWARNING authentication_token_setup.py:85 -- Token authentication is enabled"):
        assert ours(noise) is None, noise
    assert ours("error: something of the driver's own") == "error: something of the driver's own"
