"""LLM clients and generation algorithms, for the generation stages and for use on their own.

Ray-free except the `ray_vllm` backend (`backends/ray_vllm.py`), which runs vLLM engines inside
Ray Data and imports `ray.data` when it is used (`factory.make_client` imports a backend only
when an `llms:` entry chooses it). Of the engine only `pipeline.storage` is used (a response cache
in object storage); nothing here imports the runner or the stages.
"""
