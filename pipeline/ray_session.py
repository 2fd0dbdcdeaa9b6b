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

from pipeline.config import RayConfig


@contextlib.contextmanager
def ray_session(config: RayConfig, progress, log_dir: Path | None = None):
    """Ray for the length of the block. A local Ray we start leaves its full logs in `log_dir`
    when it stops: the console shows only what a user needs, the logs keep the rest."""
    import ray
    import ray.data

    if ray.is_initialized():
        yield
        return
    address = config.address or os.environ.get("RAY_ADDRESS")
    try:
        _connect(config, address, progress)
    except BaseException:  # a Ctrl-C inside ray.init leaves a half-started Ray that crashes the exit unless shut down
        ray.shutdown()
        raise
    session_logs = _session_logs() if not address else None
    try:
        yield
    finally:
        ray.shutdown()
        if session_logs and log_dir:
            shutil.copytree(session_logs, log_dir / "ray", dirs_exist_ok=True, ignore_dangling_symlinks=True)


def _connect(config: RayConfig, address: str | None, progress) -> None:
    import ray
    import ray.data

    level = logging.WARNING if progress.enabled else logging.ERROR  # --quiet: errors only
    if address:
        import filters
        import generators
        import pipeline
        import stages

        progress.note(f"connecting to Ray at {address}")
        ray.init(address=address, runtime_env={"py_modules": [pipeline, stages, filters, generators]},
                 logging_level=level)
    else:
        progress.note("starting a local Ray")
        ray.init(num_cpus=config.num_cpus, object_store_memory=config.object_store_memory,
                 include_dashboard=False, logging_level=level, configure_logging=True,
                 log_to_driver=False)  # what workers print stays in their logs, copied to `log_dir`
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


def _session_logs() -> Path | None:
    """The log folder of the local Ray this process started (its raylet, GCS and every worker)."""
    import ray

    node = getattr(ray._private.worker, "_global_node", None)
    return Path(node.get_session_dir_path()) / "logs" if node is not None else None
