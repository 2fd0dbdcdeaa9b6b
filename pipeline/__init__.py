"""Instruction-data pipeline: the engine (config, registry, Ray runner, readers, sinks, reports, CLI)."""

__version__ = "0.1.0"
