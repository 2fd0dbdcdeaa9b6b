"""The stage registry: the only way the engine knows about stages.

Stages register with `@register`. Every module of the `stages` package is imported when the
registry is first used, and third-party packages can add stages through the `pipeline.stages`
entry-point group. Stage modules import heavy libraries inside `setup()`, so listing is cheap.
"""

from __future__ import annotations

import importlib
import pkgutil
from importlib.metadata import entry_points

from pipeline.stage import Stage

_STAGES: dict[str, type[Stage]] = {}
_loaded = False


def register(cls: type[Stage]) -> type[Stage]:
    if cls.name in _STAGES and _STAGES[cls.name] is not cls:
        raise ValueError(f"two stages are named '{cls.name}': {_STAGES[cls.name]} and {cls}")
    _STAGES[cls.name] = cls
    return cls


def _load() -> None:
    global _loaded
    if _loaded:
        return
    _loaded = True
    import stages

    for info in pkgutil.iter_modules(stages.__path__):
        importlib.import_module(f"stages.{info.name}")
    for ep in entry_points(group="pipeline.stages"):
        ep.load()


def all_stages() -> dict[str, type[Stage]]:
    _load()
    return dict(sorted(_STAGES.items()))


def get(name: str) -> type[Stage] | None:
    _load()
    return _STAGES.get(name)


def missing_columns(stage: Stage, earlier: list[str]) -> list[str]:
    """Why `stage` would find a column it needs missing, given the names of the stages before it: a
    registered stage adds the column (`Stage.adds`) and none of the earlier ones is such a stage. A
    column no stage adds is an input's own, and only the data can tell whether it is there."""
    added = {column for name in earlier if (cls := get(name)) is not None for column in cls.adds}
    problems = []
    for column in stage.needs():
        makers = [name for name, cls in all_stages().items() if column in cls.adds]
        if makers and column not in added:
            problems.append(f"needs column '{column}', which the {' or '.join(makers)} stage adds: put one before it")
    return problems
