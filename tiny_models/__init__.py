"""Tiny local chat models for the tests, the offline synthetic quickstart and the benchmarks.

They are built on this machine from text we ship, so nothing comes from the Hugging Face Hub. They use
the engine's trainer (`teacher`) but the engine never uses them, which is why they live outside `pipeline/`.
"""
