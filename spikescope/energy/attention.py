"""Scaled-dot-product attention as the model calls it: Q·Kᵀ and P·V, only where the mask lets a query see a key.

`AttentionTap` is a `TorchFunctionMode` beside the operator counter: it sees `F.scaled_dot_product_attention`
before any kernel rewrites it (PyTorch's unfused path scales Q first, so its spikes would no longer read as
spikes), has the counter cost it, and runs it uncounted.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode

from . import conventions as c

ATTENTION = (F.scaled_dot_product_attention, torch._C._nn.scaled_dot_product_attention)


def visible(queries: int, keys: int, mask: torch.Tensor | None, causal: bool, device) -> torch.Tensor | None:
    """Which keys each query sees (`[.., L, S]` booleans), None when it sees them all."""
    seen = None
    if causal:
        seen = torch.ones(queries, keys, dtype=torch.bool, device=device).tril()
    if mask is not None:
        allowed = mask if mask.dtype == torch.bool else mask > float("-inf")
        seen = allowed if seen is None else seen & allowed
    return seen


def masked_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, kq: str, kk: str, kv: str,
                     seen: torch.Tensor | None) -> list[c.Operation]:
    """Q·Kᵀ and P·V of one attention call. Without a mask these are two products; with one, an event meets only
    the queries (or keys) that see it, and two event operands coincide only where a query sees its key."""
    batch = c.batches(q)
    scores = c.matrix_product("attention q·kᵀ", "sdpa", "attention", q, k.transpose(-2, -1), kq, kk, batch)
    probabilities = torch.empty(*q.shape[:-1], k.shape[-2], device="meta")
    values = c.matrix_product("attention p·v", "sdpa", "attention", probabilities, v, c.DENSE, kv, batch)
    if seen is None:
        return [scores, values]
    weight = seen.double().expand(*q.shape[:-1], k.shape[-2])
    if kq in c.EVENTS and kk in c.EVENTS:
        product = (q.double() @ k.double().transpose(-2, -1)) * weight
        scores.acs, scores.out_nonzero = float(product.sum()), float(product.count_nonzero())
    elif kq in c.EVENTS:
        scores.acs = float((q.double().sum(-1) * weight.sum(-1)).sum())  # each query event meets the keys it sees
    elif kk in c.EVENTS:
        scores.acs = float((k.double().sum(-1) * weight.sum(-2)).sum())  # each key event meets the queries seeing it
    if kv in c.EVENTS:
        values.acs = float((v.double().sum(-1) * weight.sum(-2)).sum())
    for operation in (scores, values):
        operation.dr_acs = operation.acs if operation.input == c.SPIKES else operation.dr_acs
        operation.paper_fanout = operation.paper_synops = operation.acs
    return [scores, values]


class AttentionTap(TorchFunctionMode):
    """Hands every `F.scaled_dot_product_attention` call of a counted pass to `counter.attention`, then runs it with
    the counter paused (its kernel's own operators are not counted again)."""

    def __init__(self, counter) -> None:
        super().__init__()
        self.counter = counter

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func not in ATTENTION or self.counter._paused or not self.counter._counting:
            return func(*args, **kwargs)
        names = ("query", "key", "value", "attn_mask", "dropout_p", "is_causal")
        call = {**dict(zip(names, args)), **kwargs}
        self.counter.attention(call["query"], call["key"], call["value"], call.get("attn_mask"),
                               bool(call.get("is_causal", False)))
        self.counter._paused += 1
        try:
            return func(*args, **kwargs)
        finally:
            self.counter._paused -= 1
