"""Which part of a network an energy row belongs to, read from its module path: the split papers print.

Attention (`attn`, `attention`, `ssa`, `sdsa`, `tssa`, `qk` in any path component), MLP (`mlp`, `ffn`),
the stem (a top-level `patch_embed`, `sps`, `stem`, `embed`, `tokenizer`, `conv1`, `bn1`), the head (a
top-level `head`, `classifier`, `fc`, `readout`, and the model's own averages before it); otherwise adds
of spikes and anything fed spike sums are the residual path, other convolutions and linear layers `conv`,
FSTA `FSTA`, the rest `other`.
"""
from __future__ import annotations

import re

ATTENTION = re.compile(r"(attn|attention|ssa|sdsa|tssa|qk)", re.IGNORECASE)
MLP = re.compile(r"(mlp|ffn)", re.IGNORECASE)
STEM = re.compile(r"(patch_embed|sps|stem|embed|tokenizer|conv1|bn1)\d*", re.IGNORECASE)
HEAD = re.compile(r"(head|classifier|fc|readout)\d*", re.IGNORECASE)
PARTS = ("stem", "attention", "MLP", "conv", "residual", "head", "FSTA", "other")


def part_of(row: str, kind: str, source: str) -> str:
    """One of `PARTS` for the energy row `row` (`"blocks.0.attn: matmul 1"` or a module name)."""
    if kind == "fsta":
        return "FSTA"
    components = [c for c in row.split(": ", 1)[0].split(".") if c]
    if any(ATTENTION.search(c) for c in components):
        return "attention"
    if any(MLP.search(c) for c in components):
        return "MLP"
    if components and STEM.fullmatch(components[0]):
        return "stem"
    if (components and HEAD.fullmatch(components[0])) or (not components and kind in ("reduction", "pooling")):
        return "head"  # a classifier, or the model's own average over tokens, positions or time before it
    if kind == "add" or source == "spike sums":
        return "residual"
    return "conv" if kind in ("conv", "transposed conv", "linear") else "other"
