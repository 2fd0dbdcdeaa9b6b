"""Packed rows through variable-length attention: each example attends only to itself, with no mask at all.

transformers keeps a packed row's examples apart under `sdpa` and `eager` by building a dense
[tokens, tokens] block-diagonal mask, which also turns off SDPA's flash backend; only
`flash_attention_2` (a separate package to build) takes the example boundaries as cumulative lengths.
torch ships the same variable-length flash kernel as `torch.nn.attention.varlen.varlen_attn` (CUDA,
fp16/bf16), so `attention: varlen` registers a small attention function under transformers'
`AttentionInterface` that feeds it the boundaries the collator computed (`cu_seq_lens_*`, the names
flash_attention_2 reads too), or derives them from restarting position ids. Anything else, such as a
padded batch or a decoding step, goes to transformers' own SDPA path with transformers' own mask.
On CPU the kernel is replaced by one causal SDPA call per example: the same numbers, for tests.
"""

from __future__ import annotations

import functools
import inspect

import torch

from pipeline.errors import UserError

VARLEN = "pipeline_varlen"


def register() -> str:
    """Make `attn_implementation=VARLEN` loadable (idempotent); returns the name."""
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface

    AttentionInterface.register(VARLEN, varlen_attention)
    AttentionMaskInterface.register(VARLEN, _mask)
    return VARLEN


def available() -> bool:
    try:
        from torch.nn.attention.varlen import varlen_attn  # noqa: F401
    except ImportError:
        return False
    return True


def _mask(*args, **kwargs):
    """No mask for a row without padding (packed or not: the boundaries travel separately); transformers'
    SDPA mask when there is padding, for the SDPA fallback."""
    if kwargs.get("attention_mask") is None:
        return None
    from transformers.masking_utils import sdpa_mask

    return sdpa_mask(*args, **kwargs)


def cu_seqlens_from_positions(position_ids: torch.Tensor) -> tuple[torch.Tensor, int]:
    """Cumulative example lengths of one packed row whose position ids restart at 0 for each example,
    and the longest example. Reads the device (one sync): the collator's precomputed values avoid it."""
    positions = position_ids.reshape(-1)
    starts = torch.nonzero(positions == 0).reshape(-1)
    if starts.numel() == 0 or int(starts[0]) != 0:
        starts = torch.cat([starts.new_zeros(1), starts])
    cu = torch.cat([starts, starts.new_tensor([positions.numel()])]).to(torch.int32)
    return cu, int(cu.diff().max())


def varlen_attention(module, query, key, value, attention_mask, dropout: float = 0.0, scaling=None,
                     sliding_window=None, softcap=None, s_aux=None, **kwargs):
    """transformers' attention signature: q/k/v [batch, heads, tokens, dim]; returns [batch, tokens, heads, dim]."""
    single_row = query.shape[0] == 1 and query.shape[2] > 1 and key.shape[2] == query.shape[2]
    if attention_mask is not None or not single_row:
        from transformers.integrations.sdpa_attention import sdpa_attention_forward

        return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout, scaling=scaling,
                                      sliding_window=sliding_window, softcap=softcap, s_aux=s_aux, **kwargs)
    if softcap is not None or s_aux is not None or dropout:
        raise UserError("attention: varlen has no attention soft-capping, sinks or dropout; "
                        "use attention: flash_attention_2 or sdpa for this model")
    cu, longest = kwargs.get("cu_seq_lens_q"), kwargs.get("max_length_q")
    if cu is None:
        position_ids = kwargs.get("position_ids")
        if position_ids is None:
            cu = torch.tensor([0, query.shape[2]], dtype=torch.int32, device=query.device)
            longest = query.shape[2]
        else:
            cu, longest = cu_seqlens_from_positions(position_ids)
    cu = cu.to(device=query.device, dtype=torch.int32)
    # [1, heads, tokens, dim] -> [tokens, heads, dim], the kernel's layout
    q, k, v = (t[0].transpose(0, 1) for t in (query, key, value))
    scale = scaling if scaling is not None else q.shape[-1] ** -0.5
    window = None if sliding_window is None else (sliding_window - 1, 0)
    kernel = _cuda_kernel if q.is_cuda else _cpu_kernel
    out = kernel(q, k, v, cu, int(longest), scale, window)
    return out.unsqueeze(0), None


@functools.cache
def _kernel_parameters() -> frozenset[str]:
    """varlen_attn's keywords differ between torch versions (2.10: is_causal; 2.11: window_size, ...)."""
    from torch.nn.attention.varlen import varlen_attn

    return frozenset(inspect.signature(varlen_attn).parameters)


def _cuda_kernel(q, k, v, cu, longest: int, scale: float, window):
    from torch.nn.attention.varlen import varlen_attn

    params = _kernel_parameters()
    dtype = q.dtype
    if dtype not in (torch.float16, torch.bfloat16):  # fp32 activations under 16-bit autocast
        dtype = torch.get_autocast_dtype("cuda") if torch.is_autocast_enabled("cuda") else torch.bfloat16
    q, k, v = q.to(dtype), k.to(dtype), v.to(dtype)
    kwargs = {}
    if k.shape[1] != q.shape[1]:  # grouped-query attention: one key/value head serves several query heads
        if "enable_gqa" in params:
            kwargs["enable_gqa"] = True
        else:
            k, v = _repeat_heads(k, q.shape[1]), _repeat_heads(v, q.shape[1])
    if "window_size" in params:  # torch >= 2.11: causal is a window of (anything, 0)
        kwargs["window_size"] = window or (-1, 0)
    elif window is None:  # torch 2.10
        kwargs["is_causal"] = True
    else:
        raise UserError("attention: varlen needs torch >= 2.11 for sliding-window models; use sdpa")
    if "scale" in params:
        kwargs["scale"] = scale
    else:
        q = q * (scale * q.shape[-1] ** 0.5)
    return varlen_attn(q, k, v, cu, cu, longest, longest, **kwargs)


def _cpu_kernel(q, k, v, cu, longest: int, scale: float, window):
    """One causal SDPA call per example: what the CUDA kernel computes, where there is no such kernel."""
    if window is not None:
        raise UserError("attention: varlen on CPU has no sliding window; use sdpa")
    bounds = cu.tolist()
    pieces = []
    for start, end in zip(bounds[:-1], bounds[1:]):
        one = [t[start:end].transpose(0, 1) for t in (q, _repeat_heads(k, q.shape[1]), _repeat_heads(v, q.shape[1]))]
        out = torch.nn.functional.scaled_dot_product_attention(*one, is_causal=True, scale=scale)
        pieces.append(out.transpose(0, 1))
    return torch.cat(pieces)


def _repeat_heads(t: torch.Tensor, heads: int) -> torch.Tensor:
    """[tokens, kv_heads, dim] -> [tokens, heads, dim], each key/value head repeated for its query heads."""
    return t if t.shape[1] == heads else t.repeat_interleave(heads // t.shape[1], dim=1)
