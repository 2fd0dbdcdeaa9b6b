"""The docs' tests use the tiny local model the generation-backend tests build (one per session)."""

from tests.llm.conftest import tiny_model  # noqa: F401
