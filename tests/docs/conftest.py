"""The docs' tests use the tiny local model the generation-backend tests build (one per session)."""

from tests.llm.conftest import tiny_model

__all__ = ["tiny_model"]  # a fixture, found by pytest here
