"""Connecting to Ray: an embedded local Ray by default, a cluster with `ray.address` or RAY_ADDRESS.

On a cluster the workers may not have this project installed, so our packages travel with the
job as `py_modules`. Third-party libraries do not: a node whose Python lacks one that a stage
imports fails that stage's tasks, and the session turns that failure into one line naming the
module and the nodes that lack it (docs/cluster.md says how to ship dependencies).
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import json
import logging
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any, Callable

import psutil

from pipeline import interrupts, spill_watch
from pipeline.config import RayConfig
from pipeline.console_filter import filtered_console, not_noise
from pipeline.errors import UserError

OUR_PACKAGES = ("pipeline", "stages", "filters", "generators")  # shipped as py_modules
NO_MODULE = re.compile(r"No module named '([\w.]+)'")  # how Python says it, in any wrapper's text
LOCAL_FILE_NOT_OPENED = re.compile(r"Failed to open local file '([^']+)'|No such file or directory: '([^']+)'")
TASK_NODE_IP = re.compile(r"\(pid=\d+, ip=([\d.:a-f]+)\)")  # how a Ray task error names where it ran
NODE_CHECK_TIMEOUT_S = 60
JOB_CONFIG_VAR = "RAY_JOB_CONFIG_JSON_ENV_VAR"  # what Ray's job supervisor gives a job's entrypoint


@contextlib.contextmanager
def ray_session(config: RayConfig, progress, log_dir: Path | None = None, env: dict[str, str] | None = None,
                worker_lines: Callable[[str], str | None] | None = None):
    """Ray for the length of the block. With `log_dir`, Ray's noise is kept off the console
    (`console_filter`) and a local Ray we start leaves its full logs there when it stops: the
    console shows only what a user needs, the logs keep the rest. `env` goes to every worker
    (an S3 endpoint, say: what the driver needs to reach the data, the workers need too).
    What workers print stays in their logs, unless `worker_lines` says what of it, forwarded to
    this process, the console shows (a fine-tune's workers report their steps)."""
    import ray

    if ray.is_initialized():
        yield
        return
    with contextlib.ExitStack() as stack:
        if log_dir is not None:
            shown = worker_lines or not_noise
            stack.enter_context(progress.writing_to(stack.enter_context(filtered_console(log_dir / "console.log", shown))))
        address = config.address or os.environ.get("RAY_ADDRESS")
        if address and address.startswith("ray://"):
            raise UserError(f"Ray address {address}: Ray Client (ray://) cannot run Ray Data, whose executor needs its "
                            "driver on the cluster; give the head's GCS address (head:6379) from a machine in the "
                            "cluster's network, or submit the run as a Ray Job (docs/cluster.md)")
        before = _descendants()
        try:
            _connect(config, address, progress, env or {}, forward=worker_lines is not None)
            interrupts.reinstall()  # Ray's core took SIGTERM over
        except BaseException as e:  # a Ctrl-C inside ray.init: a half-started Ray that ray.shutdown may not know all of
            ray.shutdown()
            _stop([p for p in psutil.Process().children(recursive=True) if p.pid not in before])
            if interrupts.sigterm_in_ray_init(e):
                raise KeyboardInterrupt from None
            raise
        session_logs = _session_logs() if not address else None
        try:
            with spill_watch.watching(local=not address):
                yield
        except Exception as e:
            why = _missing_dependency(e) or _unseen_local_file(e) or _out_of_disk(e, local=not address)
            if why is None:
                raise
            raise UserError(why) from e
        finally:
            if not address:
                _stop_monitor()
            ray.shutdown()
            if session_logs and log_dir:
                # One archive, not a hundred small files: each is a request when the logs go to object storage.
                shutil.make_archive(str(log_dir / "ray"), "gztar", session_logs)


def _connect(config: RayConfig, address: str | None, progress, env: dict[str, str], forward: bool) -> None:
    import ray

    level = logging.WARNING if progress.enabled else logging.ERROR  # --quiet: errors only
    if address:
        import filters
        import generators
        import pipeline
        import stages

        progress.note(f"connecting to Ray at {address}")
        ray.init(address=address, logging_level=level,
                 log_to_driver=forward,  # else what workers print stays in the cluster's logs (docs/cluster.md)
                 runtime_env=_beside_job({"py_modules": [_folder(m) for m in (pipeline, stages, filters, generators)],
                                          "env_vars": env}))
    else:
        progress.note("starting a local Ray")
        ray.init(num_cpus=config.num_cpus, object_store_memory=config.object_store_memory,
                 include_dashboard=False, logging_level=level, configure_logging=True,
                 log_to_driver=forward,  # else what workers print stays in their logs, copied to `log_dir`
                 runtime_env={"env_vars": env} if env else None)
    configure_data(level)


def configure_data(level: int = logging.WARNING) -> None:
    """Ray Data's settings for our passes, in the driver that runs them (a run, or the stage tests'
    session, which must run stages exactly as a run does)."""
    import ray.data

    ctx = ray.data.DataContext.get_current()
    # Ray splits what a read gives until a dataset has 200 blocks, and each block is then a task of
    # every pass: on a small cluster that is a hundred tasks of tens of milliseconds of scheduling each,
    # more than the work of a cheap stage (100,000 documents through `length`: 1.56x the time). Its other
    # floor, two blocks a CPU, is what a pass needs, and the one that stays (docs/engine.md, "Read tasks").
    ctx.read_op_min_num_blocks = 1
    ctx.enable_progress_bars = False  # our own live line (pipeline.progress) says what a pass is doing
    logging.getLogger("ray.data").setLevel(level)
    ctx.execution_options.preserve_order = True
    # Ray's Parquet reader V2 starts footer-reader actors, new processes, on every read, and a run
    # reads each checkpoint twice: V1 instead (docs/engine.md, "Reading checkpoints").
    ctx.use_datasource_v2 = False
    ctx.print_on_execution_start = False
    # Our errors (RunFailed, UserError) raised in a map stage reach the driver as themselves: wrapped
    # in a UserCodeException they are lost (its cause does not survive pickling). Ray Data's console
    # copies of such an error and its traceback go: the CLI prints it in one line, or re-raises with
    # its traceback what is not ours.
    ctx.raise_original_map_exception = True
    for name in ("ray.data.exceptions", "ray.data._internal.execution.streaming_executor_state",
                 "ray.data._internal.execution.operators.actor_pool_map_operator"):  # an actor's failed setup()
        logging.getLogger(name).setLevel(logging.CRITICAL)


def _stop_monitor() -> None:
    """Kill the autoscaler monitor of the local Ray this process started, before `ray.shutdown`.

    Ray stops its processes one at a time, the GCS before the monitor; asked to stop, the monitor first
    reports its end to the GCS that is gone, and Ray waits a second for it before killing it (Ray 2.60,
    `Node._kill_process_impl`): a second of every run, two thirds of Ray's whole stop. A local Ray's
    monitor has nothing to save, so it is killed first, by the PID Ray started it with."""
    import ray._private.worker

    node = getattr(ray._private.worker, "_global_node", None)  # private: a Ray without it is stopped the slow way
    for info in getattr(node, "all_processes", {}).get("monitor", []):
        with contextlib.suppress(OSError, subprocess.TimeoutExpired):
            info.process.kill()
            info.process.wait(timeout=1)


def _descendants() -> set[int]:
    return {p.pid for p in psutil.Process().children(recursive=True)}


def _stop(processes: list[psutil.Process]) -> None:
    """Processes this one started (by PID): asked to stop, then killed if they do not within seconds."""
    for p in processes:
        with contextlib.suppress(psutil.NoSuchProcess):
            p.terminate()
    _, alive = psutil.wait_procs(processes, timeout=3)
    for p in alive:
        with contextlib.suppress(psutil.NoSuchProcess):
            p.kill()


def _session_logs() -> Path | None:
    """The log folder of the local Ray this process started (its raylet, GCS and every worker)."""
    import ray

    node = getattr(ray._private.worker, "_global_node", None)
    return Path(node.get_session_dir_path()) / "logs" if node is not None else None


def _folder(package) -> str:
    """A package's folder: what py_modules uploads. A path rather than the module object, which
    ray.init deep-copies when it merges a Ray Job's runtime_env, and a module cannot be copied."""
    return str(Path(package.__file__).parent)


def _beside_job(runtime_env: dict) -> dict:
    """What of our runtime_env a Ray Job's own leaves to set. Submitted with `ray job submit
    --runtime-env-json`, a job's settings reach ray.init, which refuses a key set twice; the user's
    choice for the job wins (their env_vars, their py_modules or image)."""
    job = json.loads(os.environ.get(JOB_CONFIG_VAR) or "{}").get("runtime_env") or {}
    ours = {k: v for k, v in runtime_env.items() if k != "env_vars" and k not in job}
    env_vars = {k: v for k, v in runtime_env.get("env_vars", {}).items() if k not in job.get("env_vars", {})}
    return {**ours, "env_vars": env_vars} if env_vars else ours


def _missing_dependency(error: BaseException) -> str | None:
    """One line naming a third-party module a stage could not import and the nodes that lack it, or
    None. Ray wraps a worker's ModuleNotFoundError differently for tasks, actors and deserialisation
    (sometimes only as text), so the module name is looked for in all of them and then confirmed on
    the nodes themselves: an error that merely mentions a module never becomes this message."""
    module = _module_not_found(error)
    if module is None or module.split(".")[0] in OUR_PACKAGES:
        return None
    nodes = _nodes_without(module)
    if not nodes:
        return None
    where = ", ".join(nodes)
    dists = importlib.metadata.packages_distributions().get(module.split(".")[0])
    pip = f" (pip install {' '.join(sorted(set(dists)))})" if dists else ""
    return (f"the Ray node{'s' if len(nodes) > 1 else ''} {where} {'have' if len(nodes) > 1 else 'has'} no Python "
            f"module '{module}'{pip}, which a stage needs: install it there, or ship it with the job "
            f"(a runtime_env with pip, uv or conda, or a container image; see docs/cluster.md)")


def _unseen_local_file(error: BaseException) -> str | None:
    """One line for a file this machine has and the nodes that failed to open it lack, or None: a path a
    stage's option names (a model, a block list) on a cluster whose nodes share no disk. The run's own
    input and output are asked before any pass (`node_paths`); this catches what the stages read."""
    from pipeline import node_paths

    for e in _causes(error):
        named = getattr(e, "filename", None) if isinstance(e, FileNotFoundError) else None
        said = LOCAL_FILE_NOT_OPENED.search(str(e))
        found = named or (said and (said.group(1) or said.group(2)))
        if found and os.path.isabs(found) and os.path.exists(found):
            try:
                nodes = node_paths.unseen([found])[0][0]
            except Exception:  # a cluster that cannot answer now: the worker's own error stands
                return None
            if nodes:
                return node_paths.said(found, nodes)
    return None


def _out_of_disk(error: BaseException, local: bool) -> str | None:
    """One line for a node whose object store is full and whose disk is too (past Ray's 95% limit), so
    Ray cannot spill: Ray's own words come as a traceback from deep in a worker, and a disk nearly full is
    something the user must fix."""
    import ray

    if not any(isinstance(e, ray.exceptions.OutOfDiskError) for e in _causes(error)):
        return None
    ip = next(filter(None, (TASK_NODE_IP.search(str(c)) for c in _causes(error))), None)
    return spill_watch.cannot_spill(f"the Ray node {ip.group(1)}" if ip else "a Ray node",
                                    spill_watch.spill_disk() if local else None, local)


def _causes(error: BaseException):
    """The error and what lies behind it, each once: a Ray task error's exception raised in the worker,
    `raise ... from`, and the exception being handled when it was raised."""
    seen: set[int] = set()
    e: BaseException | None = error
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        yield e
        inner = getattr(e, "cause", None)  # a Ray task error: the exception raised in the worker
        e = inner if isinstance(inner, BaseException) else (e.__cause__ or e.__context__)


def _module_not_found(error: BaseException) -> str | None:
    for e in _causes(error):
        if isinstance(e, ModuleNotFoundError) and e.name:
            return e.name
        found = NO_MODULE.search(str(e))
        if found:
            return found.group(1)
    return None


def live_nodes() -> set[str]:
    """The ids of the cluster's live nodes, as the GCS knows them now."""
    import ray

    return {n["NodeID"] for n in ray.nodes() if n["Alive"]}


def _nodes_without(module: str) -> list[str]:
    """The live nodes whose workers (in this job's runtime_env) cannot find `module`, by name and id."""
    return sorted(node for node, found in on_each_node(_has_module, module).items() if not found)


def on_each_node(fn: Callable, *args) -> dict[str, Any]:
    """`fn(*args)` in a worker of each live node, by the node's name and id ("10.0.0.7 (id 58ba7024)"); a
    node that does not answer in time, or went away meanwhile, is left out rather than blamed."""
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    nodes = [n for n in ray.nodes() if n["Alive"]]
    probe = ray.remote(num_cpus=0, max_retries=0)(fn)
    refs = {probe.options(scheduling_strategy=NodeAffinitySchedulingStrategy(n["NodeID"], soft=False)).remote(*args):
            n for n in nodes}
    ready, _ = ray.wait(list(refs), num_returns=len(refs), timeout=NODE_CHECK_TIMEOUT_S)
    answers = {}
    for ref in ready:
        try:
            answer = ray.get(ref)
        except ray.exceptions.RayError:
            continue
        node = refs[ref]
        answers[f"{node.get('NodeName') or node['NodeManagerAddress']} (id {node['NodeID'][:8]})"] = answer
    return answers


def _has_module(name: str) -> bool:
    import importlib.util

    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):  # a parent package that is missing, or a broken one
        return False
