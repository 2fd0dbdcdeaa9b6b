"""Instruction-data pipeline: the engine (config, registry, Ray runner, readers, writers, reports, CLI)."""

__version__ = "0.1.0"
