"""What the model libraries print that a user of ours can do nothing about, off, in `finetune` and `eval`.

transformers draws a bar for loading and for saving the weights of even a tiny model, `datasets` one
for "generating" a benchmark's split from its local file, and peft probes a property transformers 5
deprecated, which warns on every adapter. Our own lines say what the command is doing; the libraries'
errors and their other warnings still show.
"""

from __future__ import annotations

import warnings


def quiet_libraries() -> None:
    from datasets.utils import logging as datasets_logging
    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()
    datasets_logging.disable_progress_bar()
    warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing", category=FutureWarning)
