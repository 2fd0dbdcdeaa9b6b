"""Connecting to Ray: an embedded local Ray by default, a cluster with `ray.address` or RAY_ADDRESS.

On a cluster the workers may not have this project installed, so our packages travel with the
job as `py_modules`.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys

from pipeline.config import RayConfig


@contextlib.contextmanager
def ray_session(config: RayConfig, progress):
    import ray
    import ray.data

    if ray.is_initialized():
        yield
        return
    address = config.address or os.environ.get("RAY_ADDRESS")
    for name in ("ray", "ray.data"):
        for handler in logging.getLogger(name).handlers:
            handler.addFilter(_notices_about_our_choices)
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
                 log_to_driver=progress.enabled)
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = progress.enabled and sys.stderr.isatty()
    if not ctx.enable_progress_bars:
        logging.getLogger("ray.data").setLevel(level)
    ctx.execution_options.preserve_order = True
    ctx.print_on_execution_start = False
    try:
        yield
    finally:
        ray.shutdown()


def _notices_about_our_choices(record: logging.LogRecord) -> bool:
    """Drop Ray's notices about settings this command chose for the user: progress bars off when
    stderr is not a terminal (our own progress lines stay), and token authentication, which Ray
    enables on the local Ray it starts for us."""
    return not record.getMessage().startswith(("Progress bars disabled", "Token authentication is enabled"))
