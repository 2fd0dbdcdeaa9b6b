"""`pipeline run` on a real multi-node Ray cluster (tests/cluster.py): a node that lacks a dependency,
a node lost mid-run, a driver killed mid-run, a run submitted as a Ray Job, and a web-curation run
from and to object storage that gives exactly the rows of the same run on local disk."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from tests.cli import PIPELINE, cli
from tests.cluster import RayCluster, python_without
from tests.e2e.finetune_run import make_run

ROOT = Path(__file__).resolve().parents[2]


def write_config(path: Path, config: dict) -> Path:
    path.write_text(json.dumps(config))
    return path


WARCS = ("sample-0000.warc.gz", "sample-0001.warc.gz", "whirlwind.warc.gz")
EARLIER = WARCS[:1]  # the earlier run whose dedup index the main run is deduplicated against


def web_config(root: str, out: str, warcs=WARCS, against: str | None = None) -> dict:
    """The web chain on real WARC files: extract, language, heuristics, dedup (indexed; `against` an
    earlier run's index) and decontaminate against a benchmark that quotes one of the pages.
    `root` is where the inputs are: a local folder or an s3:// prefix."""
    dedup = {"method": "minhash", "threshold": 0.7, "bands": None, "rows": None}
    stages = [{"extract": {"engine": "trafilatura", "timeout_s": 30}},
              {"language": {"keep": ["en"], "min_score": 0.5}},
              {"heuristics": {"rules": ["gopher_repetition", "c4"]}},
              {"dedup": {**dedup, "against": [against]} if against else dedup}]
    if against:
        stages.append({"decontaminate": {"benchmarks": [{"path": f"{root}/benchmark.jsonl", "fields": ["question"],
                                                         "id_field": "id", "name": "quoted"}],
                                         "ngram": 8, "action": "drop"}})
    return {"name": "web", "input": {"format": "warc", "paths": [f"{root}/warc/{w}" for w in warcs], "name": "crawl"},
            "output": {"path": out, "formats": ["parquet"]}, "stages": stages}


def quoted_benchmark(warc: Path) -> list[dict]:
    """Ten real GSM8K questions and, as an eleventh item, a passage of a page in `warc` (extracted
    here with the library the extract stage uses), so decontaminate has a page to find."""
    from warcio.archiveiterator import ArchiveIterator

    from filters.html_extract import extract_trafilatura

    with open(warc, "rb") as f:
        for record in ArchiveIterator(f):
            if record.rec_type == "response":
                text, _ = extract_trafilatura(record.content_stream().read().decode("utf-8", "replace"))
                words = text.split()
                if len(words) > 200:
                    break
    return [{"id": "quoted", "question": " ".join(words[100:130])}]


def rows(out: str) -> tuple[list[dict], list[tuple]]:
    """A run's kept rows (every column) and its rejects (id, stage, reason), in id order, from any storage."""
    from pipeline import storage

    root = storage.locate(out)
    kept = [r for f in (root / "data").files() if f.suffix == ".parquet" for r in pq.read_table(f.open_read()).to_pylist()]
    for r in kept:  # where the input was read from is the one thing that differs, by design
        meta = json.loads(r["meta"])
        r["meta"] = {**meta, "path": meta["path"].rsplit("/", 1)[-1]}
    rejects = [(r["id"], r["stage"], r["reason"]) for f in (root / "rejects").files() if f.suffix == ".parquet"
               for r in pq.read_table(f.open_read(), columns=["id", "stage", "reason"]).to_pylist()]
    return sorted(kept, key=lambda r: r["id"]), sorted(rejects)


@pytest.mark.slow
def test_a_node_without_a_stage_dependency_is_one_line_naming_the_module_and_the_node(shared_data, tmp_path):
    """The only node with CPUs runs from a Python environment without fastText, which the language
    stage loads on its workers: the run stops with one line, exit 2, naming the module and that node."""
    cluster = RayCluster()
    try:
        cluster.start_head(num_cpus=0)  # nothing runs on the head: every task lands on the worker
        worker = cluster.add_worker(python=python_without(tmp_path, "fasttext"))
        node_id = next(a.split("=", 1)[1] for a in worker.raylet().cmdline() if a.startswith("--node_id="))
        config = write_config(tmp_path / "c.yaml", {
            "input": {"format": "jsonl", "paths": [str(shared_data / "benchmarks" / "gsm8k" / "test.jsonl")],
                      "kind": "document", "fields": {"text": "question"}, "limit": 20},
            "output": {"path": str(tmp_path / "out")},
            "stages": [{"language": {"keep": ["en"]}}],
        })
        run = cli("run", "--quiet", str(config), env=cluster.client_env())
    finally:
        cluster.stop()
    assert run.returncode == 2, run.stderr[-3000:]
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in run.stderr, run.stderr[-3000:]
    assert "'fasttext'" in lines[0] and f"(id {node_id[:8]})" in lines[0], lines[0]
    assert "runtime_env" in lines[0] and "docs/cluster.md" in lines[0]


def can_hide_folders() -> bool:
    """A private mount namespace (root, or user namespaces) is how a node here is made not to see a folder."""
    return subprocess.run(["unshare", "--mount", "true"], capture_output=True).returncode == 0


@pytest.mark.slow
@pytest.mark.skipif(not can_hide_folders(), reason="needs unshare --mount (root) to give a node a disk of its own")
def test_local_paths_a_node_does_not_see_are_named_before_any_pass(shared_data, tmp_path):
    """A node that sees none of the driver's folder (an empty tmpfs over it, as another machine's disk):
    the run read on it, "Failed to open local file" with Ray's retry advice, or, with only the output
    local, counted a pass short before the next failed on pieces written to the other node's disk. Now
    each such path is one line before any pass, exit 2."""
    data = tmp_path / "data"
    data.mkdir()
    shutil.copy(shared_data / "benchmarks" / "gsm8k" / "test.jsonl", data / "gsm8k.jsonl")
    run_dir = make_run(data / "finetune", shared_data, "unseen", 8, 4, {"sft": {"max_steps": 1}})
    seen = tmp_path / "seen"  # beside the hidden folder: every node sees it
    seen.mkdir()
    cluster = RayCluster()
    try:
        cluster.start_head(num_cpus=0)  # every task lands on the node that does not see the folder
        worker = cluster.add_worker(num_cpus=2, unseen=(data,))
        node_id = next(a.split("=", 1)[1] for a in worker.raylet().cmdline() if a.startswith("--node_id="))
        source = {"format": "jsonl", "paths": [str(data / "*.jsonl")], "fields": {"text": "question"}}
        config = write_config(tmp_path / "c.yaml", {"input": source, "output": {"path": str(data / "out")},
                                                    "stages": [{"length": {"min_words": 5}}]})
        unseen = cli("run", "--quiet", str(config), env=cluster.client_env())
        shutil.copy(data / "gsm8k.jsonl", seen / "gsm8k.jsonl")
        (data / "blocked.txt").write_text("spam.example\n")  # read by the stage's workers, not the driver
        config = write_config(tmp_path / "stage.yaml", {
            "input": {**source, "paths": [str(seen / "gsm8k.jsonl")]}, "output": {"path": str(seen / "out")},
            "stages": [{"url_filter": {"domain_files": [str(data / "blocked.txt")]}},
                       {"dedup": {"index_dir": str(data / "index")}}]})  # each node would write its slice to its own disk
        stage_file = cli("run", "--quiet", str(config), env=cluster.client_env())
        finetune = cli("finetune", str(run_dir), "--workers", "2", env=cluster.client_env())
        report = cli("contamination-report", "--quiet", "--data", str(data / "gsm8k.jsonl"), "--benchmarks",
                     str(shared_data / "benchmarks" / "gsm8k" / "test.jsonl"), "--fields", "question",
                     "--out", str(tmp_path / "report"), env=cluster.client_env())
    finally:
        cluster.stop()
    assert unseen.returncode == 2 and "Traceback" not in unseen.stderr, unseen.stderr[-3000:]
    advice = "a cluster's nodes share no disk unless a filesystem is mounted at the same path on each"
    assert unseen.stderr.strip().splitlines() == [
        f"error: {tmp_path}/c.yaml:1: input.paths[0]: {data}/gsm8k.jsonl is on this machine's disk, which the Ray node "
        f"{line_node(unseen.stderr)} does not see: {advice}: use object storage (s3://...) or such a filesystem (docs/cluster.md)",
        f"{tmp_path}/c.yaml:1: output.path: {data}/out is on this machine's disk, which the Ray node "
        f"{line_node(unseen.stderr)} does not see: {advice}: use object storage (s3://...) or such a filesystem (docs/cluster.md)",
    ]
    assert f"(id {node_id[:8]})" in unseen.stderr
    assert not (data / "out" / ".pipeline" / "stages").exists()  # no pass ran
    # Input and output where every node sees them pass (and the probe is gone); a file that a stage's workers
    # open is asked too, at its option (before, the workers' set-up failed on it once the pass had started),
    # and a folder they write to (before, a dedup index was split over the nodes' disks, with no error).
    for out in (data / "out", seen / "out"):
        assert [p.name for p in (out / ".pipeline").iterdir() if "probe" in p.name] == []
    assert stage_file.returncode == 2 and "Traceback" not in stage_file.stderr, stage_file.stderr[-3000:]
    assert stage_file.stderr.strip().splitlines() == [
        f"error: {tmp_path}/stage.yaml:1: stages[0].url_filter.domain_files[0]: {data}/blocked.txt is on this machine's "
        f"disk, which the Ray node {line_node(stage_file.stderr)} does not see: {advice}: use object storage (s3://...) "
        "or such a filesystem (docs/cluster.md)",
        f"{tmp_path}/stage.yaml:1: stages[1].dedup.index_dir: {data}/index is on this machine's disk, which the Ray node "
        f"{line_node(stage_file.stderr)} does not see: {advice}: use object storage (s3://...) or such a filesystem "
        "(docs/cluster.md)"]
    assert not (seen / "out" / ".pipeline" / "stages").exists()
    assert report.returncode == 2, report.stderr[-3000:]
    assert report.stderr.strip().splitlines() == [
        f"error: --data {data}/gsm8k.jsonl: {data}/gsm8k.jsonl is on this machine's disk, which the Ray node "
        f"{line_node(report.stderr)} does not see: {advice}: use object storage (s3://...) or such a filesystem (docs/cluster.md)"]
    # A fine-tune's workers read the data, the model and the tokenizer copy in the output: its workers
    # failed one by one, a traceback each.
    node = line_node(finetune.stderr)
    assert finetune.returncode == 2 and "Traceback" not in finetune.stderr, finetune.stderr[-3000:]
    connecting, *lines = finetune.stderr.strip().splitlines()
    assert connecting.startswith("connecting to Ray at ")
    assert lines == [
        f"error: finetune: {run_dir}/data/part-00000.parquet is on this machine's disk, which the Ray node {node} does not see: {advice}: use object storage (s3://...) or such a filesystem (docs/cluster.md)",
        f"finetune: {run_dir}/preferences/pairs.jsonl is on this machine's disk, which the Ray node {node} does not see: {advice}: use object storage (s3://...) or such a filesystem (docs/cluster.md)",
        f"finetune: the model {data}/finetune/model is on this machine's disk, which the Ray node {node} does not see: {advice}: use object storage (s3://...) or such a filesystem (docs/cluster.md)",
        f"finetune: the output {run_dir}/finetune is on this machine's disk, which the Ray node {node} does not see: {advice}: use object storage (s3://...) or such a filesystem (docs/cluster.md)",
    ]


def line_node(stderr: str) -> str:
    """The node an error line names: "HOST (id 1234abcd)"."""
    return stderr.split("which the Ray node ", 1)[1].split(" does not see", 1)[0]


def test_a_ray_client_address_is_refused_in_one_line(shared_data, tmp_path):
    """Ray Data cannot run over Ray Client (its executor needs a driver on the cluster: tried on the
    test cluster, it fails deep in Ray with an AttributeError), so a ray:// address is a user's
    error, refused before any connection is tried."""
    config = write_config(tmp_path / "c.yaml", {
        "input": {"format": "jsonl", "paths": [str(shared_data / "benchmarks" / "gsm8k" / "test.jsonl")],
                  "kind": "document", "fields": {"text": "question"}, "limit": 5},
        "output": {"path": str(tmp_path / "out")}, "stages": [{"length": {}}]})
    run = cli("run", "--quiet", str(config), env={**os.environ, "RAY_ADDRESS": "ray://127.0.0.1:1"}, timeout=120)
    assert run.returncode == 2, run.stderr[-3000:]
    (line,) = run.stderr.strip().splitlines()
    assert "ray://127.0.0.1:1" in line and "Ray Client" in line and "Ray Job" in line, line


@pytest.fixture(scope="module")
def web(shared_data, tmp_path_factory) -> dict:
    """The web chain run on local disk with an embedded Ray (the reference every cluster run must
    equal), after the earlier run whose dedup index it is deduplicated against."""
    root = tmp_path_factory.mktemp("web")
    (root / "warc").mkdir()
    for name in WARCS:
        shutil.copy(shared_data / "warc" / name, root / "warc" / name)
    questions = [json.loads(line) for line in open(shared_data / "benchmarks" / "gsm8k" / "test.jsonl")][:10]
    items = [{"id": f"gsm8k-{i}", "question": q["question"]} for i, q in enumerate(questions)]
    (root / "benchmark.jsonl").write_text("".join(json.dumps(i) + "\n" for i in items + quoted_benchmark(root / "warc" / WARCS[1])))
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    earlier = cli("run", "--quiet", str(write_config(root / "earlier.yaml", web_config(str(root), str(root / "earlier"), EARLIER))), env=env)
    assert earlier.returncode == 0, earlier.stderr[-3000:]
    (index,) = (root / "earlier" / "dedup_index").iterdir()
    config = web_config(str(root), str(root / "local"), against=str(index))
    reference = cli("run", "--quiet", str(write_config(root / "local.yaml", config)), env=env)
    assert reference.returncode == 0, reference.stderr[-3000:]
    kept, rejects = rows(str(root / "local"))
    reasons = {reason for _, _, reason in rejects}
    assert kept and {"near_duplicate", "contaminated:quoted"} <= reasons, reasons  # `against` and the quote found
    return {"root": root, "index": index, "kept": kept, "rejects": rejects,
            "stats": json.loads((root / "local" / "stats.json").read_text())}


@pytest.fixture(scope="module")
def cluster(object_store):
    """Two nodes of one CPU each, configured with the S3 store's endpoint and keys as a cluster's
    nodes would be (by their image or instance role)."""
    cluster = RayCluster(env=object_store.env())
    try:
        cluster.start_head(num_cpus=1, dashboard=True)
        cluster.add_worker(num_cpus=1)
        yield cluster
    finally:
        cluster.stop()


@pytest.mark.slow
def test_a_plain_ray_init_beside_the_cluster_starts_a_ray_of_its_own(cluster):
    """What the rest of the suite does (its in-process Ray, `pipeline run` without an address)
    while a test cluster is up: a plain ray.init() starts a fresh local Ray and never joins it."""
    probe = "import ray; ray.init(num_cpus=1); print(ray.get_runtime_context().gcs_address, len(ray.nodes()))"
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    ran = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, timeout=300)
    assert ran.returncode == 0, ran.stderr[-3000:]
    address, nodes = ran.stdout.split()
    assert address != cluster.address and nodes == "1"


@pytest.fixture(scope="module")
def bucket(web, object_store) -> str:
    """One bucket for the module's runs (each writes under a prefix of its own), holding the
    reference run's inputs: WARC files, benchmark, and the earlier run's dedup index. This process
    sees the store as a user's shell would (AWS_ENDPOINT_URL and a key pair)."""
    from pipeline import storage

    with pytest.MonkeyPatch.context() as env:
        for key, value in object_store.env().items():
            env.setenv(key, value)
        bucket = f"s3://{object_store.make_bucket(f'cluster-{uuid.uuid4().hex[:8]}')}"
        storage.locate(web["root"] / "warc").copy_to(storage.locate(f"{bucket}/inputs/warc"))
        storage.locate(web["root"] / "benchmark.jsonl").copy_to(storage.locate(f"{bucket}/inputs/benchmark.jsonl"))
        storage.locate(web["index"]).copy_to(storage.locate(f"{bucket}/inputs/index"))
        yield bucket


def s3_config(bucket: str, out: str) -> dict:
    """The reference run's config with inputs, `against` index and output in the bucket."""
    return web_config(f"{bucket}/inputs", f"{bucket}/{out}", against=f"{bucket}/inputs/index")


def storage_text(uri: str) -> str:
    from pipeline import storage

    return storage.locate(uri).read_text()


def start(config: Path, env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen([*PIPELINE, "run", "--quiet", str(config)], env=env, cwd=ROOT, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def until(condition, driver: subprocess.Popen, timeout_s: float = 600) -> bool:
    """Polls `condition` until it holds (True), or the driver has exited or time is up (False)."""
    deadline = time.time() + timeout_s
    while not condition():
        if driver.poll() is not None or time.time() > deadline:
            return False
        time.sleep(0.2)
    return True


@pytest.mark.slow
def test_a_worker_node_lost_mid_run_still_gives_the_rows_of_an_undisturbed_run(web, cluster, bucket, tmp_path):
    """The worker node's raylet is killed (by its PID) the moment one of its workers runs a task:
    its tasks, actors and objects are gone; Ray's retries redo them on the head and the run finishes
    with exactly the rows of the run that nothing disturbed."""
    config = write_config(tmp_path / "c.yaml", s3_config(bucket, "node-lost"))
    worker = cluster.nodes[-1]
    driver = start(config, cluster.client_env())
    try:
        busy = until(worker.busy, driver)
        if busy:
            worker.raylet().kill()
        _, err = driver.communicate(timeout=900)
    finally:
        if driver.poll() is None:
            driver.kill()
            driver.wait()
        cluster.remove(worker)
        cluster.add_worker(num_cpus=1)  # the next test gets two nodes again
    assert busy, f"the run ended before any task ran on the worker node: {err[-2000:]}"
    assert driver.returncode == 0, err[-3000:]
    assert rows(f"{bucket}/node-lost") == (web["kept"], web["rejects"])


@pytest.mark.slow
def test_a_driver_killed_mid_run_resumes_from_its_checkpoints_in_s3(web, cluster, bucket, tmp_path):
    """SIGKILL of `pipeline run` once its first pass is checkpointed: the re-run takes that pass from
    the bucket instead of redoing it, and ends with exactly the rows of an uninterrupted run."""
    from pipeline import storage
    from pipeline.checkpoint import MARKER

    config = write_config(tmp_path / "c.yaml", s3_config(bucket, "driver-killed"))
    passes = storage.locate(f"{bucket}/driver-killed/.pipeline/stages")
    driver = start(config, cluster.client_env())
    try:
        checkpointed = until(lambda: any(f.name == MARKER for f in passes.files(hidden=True)), driver)
    finally:
        driver.send_signal(signal.SIGKILL)
        _, err = driver.communicate(timeout=60)
    assert checkpointed and driver.returncode == -signal.SIGKILL, f"the run ended before it was killed: {err[-2000:]}"

    rerun = cli("run", "--quiet", str(config), env=cluster.client_env())
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    stages = json.loads(storage_text(f"{bucket}/driver-killed/stats.json"))["stages"]
    assert stages[1]["id"] == "01-extract" and stages[1].get("resumed"), stages[1]
    assert not stages[-1].get("resumed")
    assert rows(f"{bucket}/driver-killed") == (web["kept"], web["rejects"])


@pytest.mark.slow
def test_web_chain_from_and_to_s3_as_a_ray_job_gives_the_rows_of_a_local_run(web, cluster, object_store, bucket,
                                                                              tmp_path):
    """`ray job submit --working-dir CONFIG_DIR -- pipeline run c.yaml` on the head's job server, with
    every path in the bucket: exactly the rows, rejects and per-stage counts of the run on local
    disk. The job's own runtime_env sets the S3 endpoint, which the config names too (ray.init
    refuses a key set twice unless the session leaves it to the job)."""
    config = {**s3_config(bucket, "job"), "storage": {"s3_endpoint_url": object_store.endpoint}}
    job_dir = tmp_path / "job"
    job_dir.mkdir()
    write_config(job_dir / "c.yaml", config)
    runtime_env = {"env_vars": {"AWS_ENDPOINT_URL": object_store.endpoint}}
    submit = subprocess.run(
        [str(Path(sys.executable).parent / "ray"), "job", "submit", "--address", cluster.dashboard_url,
         "--working-dir", str(job_dir), "--runtime-env-json", json.dumps(runtime_env),
         "--", "pipeline", "run", "--quiet", "c.yaml"],
        env=cluster.client_env(), capture_output=True, text=True, timeout=900)
    assert submit.returncode == 0 and "succeeded" in submit.stdout, (submit.stdout + submit.stderr)[-3000:]
    assert rows(f"{bucket}/job") == (web["kept"], web["rejects"])
    stages = json.loads(storage_text(f"{bucket}/job/stats.json"))["stages"]
    assert [(s["id"], s["kept"]) for s in stages] == [(s["id"], s["kept"]) for s in web["stats"]["stages"]]


def test_llm_servers_a_node_cannot_reach_are_named_before_any_pass(shared_data, tmp_path):
    """A vLLM server the user started, given as a localhost URL: on a cluster each node's localhost is its own
    machine (here a worker node whose /etc/hosts says so). The driver's check of the server passed and every
    request from that node's workers failed; a server the pipeline starts listens on 127.0.0.1, which no
    other node reaches; and a response cache in a local folder was each node's own. Now each is one line at its
    config entry, before any pass. A server the pipeline
    starts on a `host:` that some node does not reach (this machine's name, which the worker node resolves
    elsewhere) is one line once it has started, before any request."""
    from tests.llm import fake_vllm
    from tests.llm.openai_stub import OpenAIStub

    records = tmp_path / "instructions.jsonl"
    records.write_text("".join(json.dumps({"id": i, "instruction": f"Name a colour ({i})."}) + "\n" for i in range(4)))
    fake_vllm.install(tmp_path / "fake")
    here = socket.gethostname()
    cluster = RayCluster()
    with OpenAIStub() as stub:
        url = stub.url.replace("127.0.0.1", "localhost")
        config = write_config(tmp_path / "c.yaml", {
            "input": {"format": "jsonl", "paths": [str(records)]}, "output": {"path": str(tmp_path / "out")},
            "llms": {"teacher": {"backend": "vllm_server", "url": f"{url}/v1", "model": "stub-model",
                                 "cache_dir": str(tmp_path / "cache")},
                     "started": {"backend": "vllm_server", "model": "tiny", "cpu": True}},
            "stages": [{"respond": {"llm": "teacher", "max_tokens": 8}}, {"respond": {"llm": "started", "max_tokens": 8}}]})
        named = write_config(tmp_path / "named.yaml", {
            "input": {"format": "jsonl", "paths": [str(records)]}, "output": {"path": str(tmp_path / "named")},
            "llms": {"started": {"backend": "vllm_server", "model": "tiny", "host": here, "python": sys.executable,
                                 "server_env": {"PYTHONPATH": str(tmp_path / "fake")}, "startup_timeout_s": 60}},
            "stages": [{"respond": {"llm": "started", "max_tokens": 8}}]})
        try:
            cluster.start_head(num_cpus=0)  # every task lands on the worker node
            cluster.add_worker(num_cpus=2, hosts=f"127.0.0.2 localhost\n127.0.0.2 {here}\n", ip="127.0.0.3")
            run = cli("run", "--quiet", str(config), env=cluster.client_env())
            started = cli("run", "--quiet", str(named), env=cluster.client_env())
        finally:
            cluster.stop()
    assert started.returncode == 2 and "Traceback" not in started.stderr, started.stderr[-3000:]
    port = started.stderr.split(f"http://{here}:", 1)[1].split(" ", 1)[0]
    node = started.stderr.split("the Ray node ", 1)[1].split(" (Connection refused)", 1)[0]
    assert started.stderr.strip().splitlines() == [
        f"error: llm 'started': the server the pipeline started answers here at http://{here}:{port} but not from "
        f"the Ray node {node} (Connection refused), whose workers send the requests: set `host:` to an address of "
        "this machine that every node reaches (docs/cluster.md)"]
    assert node.startswith("127.0.0.3 (id ") and not (tmp_path / "named" / "data").exists()
    assert run.returncode == 2 and "Traceback" not in run.stderr, run.stderr[-3000:]
    node = run.stderr.split("but not the Ray node ", 1)[1].split(" (Connection refused)", 1)[0]
    assert run.stderr.strip().splitlines() == [
        f"error: {config}:1: llms.started: the pipeline would start this server here, listening on 127.0.0.1, which the "
        "Ray nodes on other machines cannot reach: set `host:` to an address of this machine they reach, or start the "
        "server yourself and give its `url:` (docs/cluster.md)",
        f"{config}:1: llms.teacher.url: {url} answers this machine but not the Ray node {node} (Connection refused), "
        "whose workers send the requests: give an address every node reaches (a localhost URL is each node's own "
        "machine; docs/cluster.md)",
        f"{config}:1: llms.teacher.cache_dir: {tmp_path / 'cache'} is a folder on this machine's disk, where the Ray "
        "nodes on other machines cannot share one response cache (each would keep its own; a shared network "
        "filesystem does not keep its SQLite database safe): give an object-storage folder (s3://...), which every "
        "node reaches (docs/cluster.md)"]
    assert node.startswith("127.0.0.3 (id ")
    assert stub.bodies == []  # no request was sent
    assert not (tmp_path / "out" / ".pipeline" / "stages").exists()


@pytest.mark.slow
def test_object_storage_a_node_is_refused_is_named_before_any_pass(object_store, s3_bucket, tmp_path):
    """Nodes use their own credentials (their environment, ~/.aws, an instance role). A node with a wrong key:
    the run stopped in a worker's read with "AWS Error ACCESS_DENIED during HeadObject", while this machine
    read the object. Now the input it cannot read and the output it cannot write to are each one line."""
    from pipeline import storage

    source = storage.locate(f"{s3_bucket}/in/docs.jsonl")
    source.write_bytes("".join(json.dumps({"id": i, "text": f"document {i} has a few words"}) + "\n"
                               for i in range(50)).encode())
    config = write_config(tmp_path / "c.yaml", {"input": {"format": "jsonl", "paths": [source.uri]},
                                                "output": {"path": f"{s3_bucket}/out"},
                                                "stages": [{"length": {"min_words": 3}}]})
    cluster = RayCluster(env=object_store.env())
    try:
        cluster.start_head(num_cpus=0)  # every task lands on the worker node
        cluster.add_worker(num_cpus=2, env={"AWS_SECRET_ACCESS_KEY": "not-the-key"})
        run = cli("run", "--quiet", str(config), env=cluster.client_env())
    finally:
        cluster.stop()
    assert run.returncode == 2 and "Traceback" not in run.stderr, run.stderr[-3000:]
    node = run.stderr.split("the Ray node ", 1)[1].split(" cannot (", 1)[0]
    advice = "every node needs the store's credentials (its environment, ~/.aws or an instance role) and endpoint (docs/cluster.md)"
    assert run.stderr.strip().splitlines() == [
        f"error: {config}:1: input.paths[0]: {source.uri}: this machine reads it, the Ray node {node} cannot (access "
        f"denied): {advice}",
        f"{config}:1: output.path: {s3_bucket}/out: this machine writes to it, the Ray node {node} cannot (The request "
        f"signature we calculated does not match the signature you provided. Check your key and signing method): {advice}"]
    assert not storage.locate(f"{s3_bucket}/out/.pipeline/stages").exists()
    assert [f.uri for f in storage.locate(f"{s3_bucket}/out").files(hidden=True) if "probe" in f.uri] == []
