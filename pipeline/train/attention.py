"""Variable-length attention for packed rows on any device: SDPA run per example, no block-diagonal mask.

transformers makes packing safe without help: given restarting `position_ids` and no attention mask
it builds a block-diagonal causal mask over the whole row. That mask, and the attention it drives,
cost O(row length^2) although only the diagonal blocks matter. Here each example's slice of the row
gets plain causal SDPA instead, which is what flash-attention's varlen kernels do on GPUs: a row of
k examples of length n costs k*n^2 instead of (k*n)^2, and nothing of size row^2 is ever built.

Anything that is not a packed training row (padded batches, generation with a cache) goes to the
stock SDPA path unchanged.
"""

from __future__ import annotations

import torch

NAME = "packed_sdpa"


def packed_sdpa(module, query, key, value, attention_mask, position_ids=None, **kwargs):
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    length = query.shape[2]
    if attention_mask is not None or position_ids is None or query.shape[0] != 1 or key.shape[2] != length:
        return sdpa_attention_forward(module, query, key, value, attention_mask, **kwargs)
    starts = torch.nonzero(position_ids[0] == 0).flatten().tolist()
    bounds = ([0] if starts[:1] != [0] else []) + starts + [length]
    parts = [
        sdpa_attention_forward(module, query[:, :, a:b], key[:, :, a:b], value[:, :, a:b], None, **kwargs)[0]
        for a, b in zip(bounds, bounds[1:])
    ]
    return torch.cat(parts, dim=1), None


def _mask(*args, attention_mask=None, **kwargs):
    """No mask for packed rows (the attention splits them); the stock SDPA mask for padded batches."""
    if attention_mask is None:
        return None
    from transformers.masking_utils import sdpa_mask

    return sdpa_mask(*args, attention_mask=attention_mask, **kwargs)


def register() -> str:
    """Make `attn_implementation="packed_sdpa"` known to transformers; returns the name."""
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface

    AttentionInterface.register(NAME, packed_sdpa)
    AttentionMaskInterface.register(NAME, _mask)
    return NAME


def supports(config) -> bool:
    """Full causal attention only: sliding windows need the mask this path leaves out."""
    if getattr(config, "sliding_window", None) and getattr(config, "use_sliding_window", True):
        return False
    return "sliding_attention" not in (getattr(config, "layer_types", None) or [])
