"""LLM clients and generation algorithms. Ray-free; nothing here imports the engine or stages."""
