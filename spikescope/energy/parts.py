"""Which part of a network an energy row belongs to, read from its module path: the split papers print.

Attention (a word `attn`, `attention`, `ssa`, `sdsa`, `tssa`, `qk`, `mhsa`, `msa` of any path component,
words split at `_` and digits: `self_attn`, `attn_lif`), MLP (`mlp`, `ffn`, `feedforward`),
the stem (a top-level `patch_embed`, `sps`, `stem`, `embed`, `tokenizer`, `conv1`, `bn1`), the head (a
top-level `head`, `classifier`, `fc`, `readout`, and the model's own averages before it); otherwise adds
of spikes and anything fed spike sums are the residual path, other convolutions and linear layers `conv`,
FSTA `FSTA`, spiking layers' own updates (memory-aware energy models) `neurons`, the rest `other`.
"""
from __future__ import annotations

import re

from . import row_module

ATTENTION = {"attn", "attention", "ssa", "sdsa", "tssa", "qk", "mhsa", "msa"}  # words of a path component
MLP = {"mlp", "ffn", "feedforward"}
STEM = re.compile(r"(patch_embed|sps|stem|embed|tokenizer|conv1|bn1)\d*", re.IGNORECASE)
HEAD = re.compile(r"(head|classifier|fc|readout)\d*", re.IGNORECASE)
PARTS = ("stem", "attention", "MLP", "conv", "residual", "head", "FSTA", "neurons", "other")


def part_of(row: str, kind: str, source: str) -> str:
    """One of `PARTS` for the energy row `row` (`"blocks.0.attn: matmul 1"` or a module name)."""
    if kind == "fsta":
        return "FSTA"
    if kind == "neuron":
        return "neurons"
    components = [c for c in row_module(row).split(".") if c]
    words = {word for c in components for word in re.split(r"[_\d]+", c.lower()) if word}
    if words & ATTENTION:
        return "attention"
    if words & MLP:
        return "MLP"
    if components and STEM.fullmatch(components[0]):
        return "stem"
    if (components and HEAD.fullmatch(components[0])) or (not components and kind in ("reduction", "pooling")):
        return "head"  # a classifier, or the model's own average over tokens, positions or time before it
    if kind == "add" or source == "spike sums":
        return "residual"
    return "conv" if kind in ("conv", "transposed conv", "linear") else "other"
