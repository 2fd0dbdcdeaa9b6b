"""The built-in trainer: LoRA (or full) SFT and DPO on the pipeline's shards, in plain PyTorch."""
