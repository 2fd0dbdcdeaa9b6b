"""`pipeline eval`: did the data help? Base against fine-tuned on benchmarks (through lm-evaluation-harness),
on the run's own held-out prompts, and by a length-controlled judge, with each benchmark's contamination
in the training data beside its score.

Ray-free: the command and the fine-tune's `eval:` section call `run.evaluate`, which loads models itself.
"""
