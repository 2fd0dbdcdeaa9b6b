"""Connecting to Ray: an embedded local Ray by default, a cluster with `ray.address` or RAY_ADDRESS.

On a cluster the workers may not have this project installed, so our packages travel with the
job as `py_modules`.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
from pathlib import Path

import psutil

from pipeline.config import RayConfig
from pipeline.console_filter import filtered_console


@contextlib.contextmanager
def ray_session(config: RayConfig, progress, log_dir: Path | None = None, env: dict[str, str] | None = None):
    """Ray for the length of the block. With `log_dir`, Ray's noise is kept off the console
    (`console_filter`) and a local Ray we start leaves its full logs there when it stops: the
    console shows only what a user needs, the logs keep the rest. `env` goes to every worker
    (an S3 endpoint, say: what the driver needs to reach the data, the workers need too)."""
    import ray

    if ray.is_initialized():
        yield
        return
    with contextlib.ExitStack() as stack:
        if log_dir is not None:
            stack.enter_context(progress.writing_to(stack.enter_context(filtered_console(log_dir / "console.log"))))
        address = config.address or os.environ.get("RAY_ADDRESS")
        before = _descendants()
        try:
            _connect(config, address, progress, env or {})
        except BaseException:  # a Ctrl-C inside ray.init: a half-started Ray that ray.shutdown may not know all of
            ray.shutdown()
            _stop([p for p in psutil.Process().children(recursive=True) if p.pid not in before])
            raise
        session_logs = _session_logs() if not address else None
        try:
            yield
        finally:
            ray.shutdown()
            if session_logs and log_dir:
                shutil.copytree(session_logs, log_dir / "ray", dirs_exist_ok=True, ignore_dangling_symlinks=True)


def _connect(config: RayConfig, address: str | None, progress, env: dict[str, str]) -> None:
    import ray
    import ray.data

    level = logging.WARNING if progress.enabled else logging.ERROR  # --quiet: errors only
    if address:
        import filters
        import generators
        import pipeline
        import stages

        progress.note(f"connecting to Ray at {address}")
        ray.init(address=address, runtime_env={"py_modules": [pipeline, stages, filters, generators], "env_vars": env},
                 logging_level=level)
    else:
        progress.note("starting a local Ray")
        ray.init(num_cpus=config.num_cpus, object_store_memory=config.object_store_memory,
                 include_dashboard=False, logging_level=level, configure_logging=True,
                 log_to_driver=False,  # what workers print stays in their logs, copied to `log_dir`
                 runtime_env={"env_vars": env} if env else None)
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False  # our own live line (pipeline.progress) says what a pass is doing
    logging.getLogger("ray.data").setLevel(level)
    ctx.execution_options.preserve_order = True
    ctx.print_on_execution_start = False
    # Our errors (RunFailed, UserError) raised in a map stage reach the driver as themselves: wrapped
    # in a UserCodeException they are lost (its cause does not survive pickling). Ray Data's console
    # copies of such an error and its traceback go: the CLI prints it in one line, or re-raises with
    # its traceback what is not ours.
    ctx.raise_original_map_exception = True
    for name in ("ray.data.exceptions", "ray.data._internal.execution.streaming_executor_state"):
        logging.getLogger(name).setLevel(logging.CRITICAL)


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
