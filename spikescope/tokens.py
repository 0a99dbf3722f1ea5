"""What a spiking layer's tensor is, beyond `[T, B]`: image maps, tokens, head-split attention, or vectors.

Spiking transformers lay tokens out `[T, B, N, D]` or `[T, B, D, N]` and split them into heads
`[T, B, heads, d, N]` (or `[.., heads, N, d]`). Shapes alone cannot tell these apart, so the geometry of
each layer is decided once, after the first forward pass, from evidence (docs/metrics.md, "Token layers"):

- the patch grid `h x w` of the stem: declared (`tokens=(8, 8)`, `--tokens 8x8`) or the last image map before
  the token layer (so each stage of a multi-stage transformer has its own); a token axis has `N = h * w` entries;
- which axis the model's own layers treat as features: `nn.Linear` and `nn.LayerNorm` act on the last axis,
  `nn.Conv1d` on the channel axis of `[.., C, N]`; the layers of the innermost module around a layer that has
  any speak for it (a classifier's `nn.Linear` elsewhere in the model does not);
- attention modules' head counts (an int `num_heads` or `heads` attribute).

Where the evidence cannot tell `[N, D]` from `[D, N]`, the layer is named in a warning and read as non-spatial,
never guessed. Channels are features (D, or C for images) in every layout; metrics receive token layers on the
grid as maps `[T, B, D, h, w]`, and other token and head-split layers as `[T, B, D, N]` (no spectrum).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Sequence

import torch
from torch import nn

from .errors import SpikescopeError

IMAGE, TOKENS, HEADS, VECTOR, UNKNOWN = "image", "tokens", "head-split", "vector", "unknown"
FEATURES_LAST, FEATURES_FIRST = "[N, D]", "[D, N]"  # token axes; head-split layers: "[d, N]" or "[N, d]"
QKV_NAME = re.compile(r"(q|k|v|qk|kv|qkv|query|key|value)(_.*)?$", re.IGNORECASE)  # q_lif, qkv_lif, qk_lif, value


@dataclass(frozen=True)
class Geometry:
    """One layer's geometry: its `kind`, the order of its last two axes (tokens, head-split), the patch grid its
    tokens form (`grid`, tokens only) and its number of attention heads (head-split layers and Q/K/V token layers
    that are split into heads); `parts` names what a Q/K/V token layer holds, part by part along its features
    ("q", or "qkv" for fused Q, K and V), each split into `heads` heads."""

    kind: str = IMAGE
    order: str = ""
    grid: tuple[int, int] | None = None
    heads: int | None = None
    parts: str = ""

    def label(self) -> str:
        """The `geometry` column of the layers table."""
        if self.kind == TOKENS and self.grid:
            return f"tokens on {self.grid[0]} x {self.grid[1]} grid"
        return self.kind

    @property
    def spatial(self) -> bool:
        """True when the metrics receive 2D maps (spectra, SAM, Grad-CAM)."""
        return spatial_label(self.label())


def spatial_label(label: str) -> bool:
    """True for a `geometry` column value whose layer has 2D maps: an image or tokens on the patch grid."""
    return label == IMAGE or label.startswith(f"{TOKENS} on ")


@dataclass
class ModelEvidence:
    """What the model's modules say about token axes, by module name: the feature sizes each reads on the last axis
    (Linear, LayerNorm) or on the channel axis (Conv1d), and the head count of every attention module."""

    last_axis: dict[str, set[int]] = field(default_factory=dict)
    channel_axis: dict[str, set[int]] = field(default_factory=dict)
    heads: dict[str, int] = field(default_factory=dict)

    def near(self, name: str) -> tuple[set[int], set[int]]:
        """The feature sizes read on the last axis and on the channel axis by the modules inside the innermost
        module around layer `name` that holds any (at most the whole model)."""
        prefix = name
        while True:
            prefix = prefix.rpartition(".")[0]
            last, channel = (set().union(*(sizes for module, sizes in axis.items()
                                            if not prefix or module.startswith(prefix + ".")))
                             for axis in (self.last_axis, self.channel_axis))
            if last or channel or not prefix:
                return last, channel


def parse_grid(text: str) -> tuple[int, int]:
    """`"8x8"` -> `(8, 8)`: the patch grid as `--tokens HxW` gives it."""
    match = re.fullmatch(r"\s*(\d+)\s*[xX×]\s*(\d+)\s*", text)
    if not match or 0 in (int(match[1]), int(match[2])):
        raise SpikescopeError(f"--tokens takes the patch grid as HxW (e.g. 8x8), got {text!r}")
    return int(match[1]), int(match[2])


def declared_grid(tokens: str | Sequence[int] | None) -> tuple[int, int] | None:
    """The patch grid a user declared (`"8x8"` or `(8, 8)`), checked; None if none was."""
    if tokens is None:
        return None
    if isinstance(tokens, str):
        return parse_grid(tokens)
    grid = tuple(tokens)
    if len(grid) != 2 or not all(isinstance(n, int) and n > 0 for n in grid):
        raise SpikescopeError(f"tokens must be the patch grid (height, width), e.g. tokens=(8, 8); got {tokens!r}")
    return grid


def model_evidence(model: nn.Module) -> ModelEvidence:
    """Read the feature axes and head counts the model's modules declare (see `ModelEvidence`)."""
    evidence = ModelEvidence()
    for name, module in model.named_modules():
        if isinstance(module, nn.Linear):
            evidence.last_axis[name] = {module.in_features, module.out_features}
        elif isinstance(module, nn.LayerNorm):
            evidence.last_axis[name] = {module.normalized_shape[-1]}
        elif isinstance(module, nn.Conv1d):
            evidence.channel_axis[name] = {module.in_channels, module.out_channels}
        heads = getattr(module, "num_heads", getattr(module, "heads", None))
        if isinstance(heads, int) and not isinstance(heads, bool) and heads > 0:
            evidence.heads[name] = heads
    return evidence


def _token_order(name: str, shape: Sequence[int], grid: tuple[int, int] | None,
                 evidence: ModelEvidence) -> str | None:
    """`[N, D]` or `[D, N]` for layer `name`'s per-sample shape `(a, b)`: by the axis the layers near it read as
    features, else by the patch grid when exactly one axis has its `h * w` entries; None when nothing tells."""
    a, b = shape
    last_axis, channel_axis = evidence.near(name)
    last, first = b in last_axis, a in channel_axis
    if last != first:
        return FEATURES_LAST if last else FEATURES_FIRST
    if grid is not None and (a == grid[0] * grid[1]) != (b == grid[0] * grid[1]):
        return FEATURES_LAST if a == grid[0] * grid[1] else FEATURES_FIRST
    return None


def _heads_of(name: str, evidence: ModelEvidence) -> int | None:
    """The head count of the innermost attention module holding layer `name`."""
    owners = [owner for owner in evidence.heads if owner and name.startswith(owner + ".")]
    return evidence.heads[max(owners, key=len)] if owners else None


def _head_split(name: str, shape: Sequence[int], tokens: set[int], features: set[int], token_features: set[int],
                evidence: ModelEvidence) -> Geometry | None:
    """A per-sample shape `(heads, d, N)` or `(heads, N, d)` whose N is a token count (or 1: a sum over tokens): in
    an attention module of `heads` heads, preferring the reading whose heads x d is a feature count seen before
    (`features`: of token layers and image maps); where no module declares heads, only a reading whose heads x d is
    a token layer's feature count (`token_features`)."""
    heads, x, y = shape
    declared = _heads_of(name, evidence)
    if declared is not None and declared != heads:
        return None
    known = features if declared else token_features
    readings = [(order, d) for order, d, n in (("[d, N]", x, y), ("[N, d]", y, x)) if n in tokens | {1}]
    fitting = [order for order, d in readings if heads * d in known]
    order = fitting[0] if fitting else readings[0][0] if declared and readings else None
    return Geometry(HEADS, order, heads=heads) if order else None


def decide_geometries(shapes: dict[str, tuple[int, ...]], declared: tuple[int, int] | None,
                      evidence: ModelEvidence) -> tuple[dict[str, Geometry], list[str]]:
    """Every spiking layer's geometry from its per-sample shape (`shapes`: after `[T, B]`, in forward order), the
    declared grid and the model's evidence; with the warnings to give. Layers are read in order: a token layer's grid
    is the declared one, else that of the last image map before it (each stage of a multi-stage transformer has
    its own), and a 3D layer may be the head split of the tokens or maps before it. A declared grid that no token
    layer has is a `SpikescopeError`."""
    geometries: dict[str, Geometry] = {}
    warnings: list[str] = []
    grid, counts, features, token_features = declared, set(), set(), set()
    for name, shape in shapes.items():
        if len(shape) == 1:
            geometry = Geometry(VECTOR)
        elif len(shape) == 2:
            geometry = _tokens(name, shape, grid, evidence, warnings)
            if geometry.kind == TOKENS:
                count, width = _tokens_and_features(shape, geometry)
                counts.add(count)
                token_features.add(width)
        elif len(shape) == 3:
            geometry = _head_split(name, shape, counts, features | token_features, token_features,
                                   evidence) or Geometry(IMAGE)
            if geometry.kind == IMAGE:  # a map's positions are tokens too, for attention on maps
                counts.add(shape[1] * shape[2])
                features.add(shape[0])
                grid = declared or tuple(shape[1:])
        else:
            geometry = Geometry(UNKNOWN)
        geometries[name] = geometry
    _check_declared(declared, shapes, geometries)
    return geometries, warnings


def _tokens(name: str, shape: tuple[int, ...], grid: tuple[int, int] | None, evidence: ModelEvidence,
            warnings: list[str]) -> Geometry:
    order = _token_order(name, shape, grid, evidence)
    if order is None:
        advice = ("no layer of the model reads either axis as features" if grid else
                  "declare the patch grid with --tokens HxW (tokens=(H, W)) if its tokens form one")
        warnings.append(f"cannot tell whether layer {name}'s output [T, B, {shape[0]}, {shape[1]}] is tokens [N, D] "
                        f"or [D, N]: it is read as non-spatial, its first axis as channels ({advice})")
        return Geometry(UNKNOWN)
    count = shape[0] if order == FEATURES_LAST else shape[1]
    on_grid = grid if grid is not None and count == grid[0] * grid[1] else None
    features = shape[1] if order == FEATURES_LAST else shape[0]
    qkv = QKV_NAME.fullmatch(name.rsplit(".", 1)[-1])
    parts = {"query": "q", "key": "k", "value": "v"}.get(qkv[1].lower(), qkv[1].lower()) if qkv else ""
    heads = _heads_of(name, evidence) if parts else None
    if heads is None or features % (heads * len(parts)):
        return Geometry(TOKENS, order, on_grid)
    return Geometry(TOKENS, order, on_grid, heads, parts)


def _tokens_and_features(shape: Sequence[int], geometry: Geometry) -> tuple[int, int]:
    return (shape[0], shape[1]) if geometry.order == FEATURES_LAST else (shape[1], shape[0])


def _check_declared(declared: tuple[int, int] | None, shapes: dict[str, tuple[int, ...]],
                    geometries: dict[str, Geometry]) -> None:
    """A declared grid must be the patch grid of some token layer."""
    if declared is None or any(g.grid for g in geometries.values()):
        return
    h, w = declared
    found = ", ".join(f"{name} {list(shape)}" for name, shape in shapes.items() if len(shape) == 2) or "none"
    raise SpikescopeError(f"--tokens {h}x{w} declares {h * w} tokens, but no token layer [.., N, D] or [.., D, N] has "
                          f"{h * w} (token layers: {found}); give the patch grid of the model's stem")


def as_features(x: torch.Tensor, geometry: Geometry | None) -> torch.Tensor:
    """`x: [T, B, ...]` as the metrics read it (any leading axes: one timestep's `[B, ...]` too): features as
    channels, `[T, B, D, h, w]` for tokens on the grid, `[T, B, D, N]` for other tokens, `[T, B, heads * d, N]` for
    head-split tensors (head-major features); images, vectors, unknown layouts and layers not yet decided (None)
    unchanged."""
    if geometry is None:
        return x
    if geometry.kind == TOKENS:
        if geometry.order == FEATURES_LAST:
            x = x.transpose(-1, -2)
        return x.unflatten(-1, geometry.grid) if geometry.grid else x
    if geometry.kind == HEADS:
        return (x if geometry.order == "[d, N]" else x.transpose(-1, -2)).flatten(-3, -2)
    return x


def from_features(x: torch.Tensor, geometry: Geometry | None) -> torch.Tensor:
    """The inverse of `as_features`: a tensor read as the metrics read it, back in the layer's own layout (what
    flows on into the network after Captum's layer methods have seen the features)."""
    if geometry is None:
        return x
    if geometry.kind == TOKENS:
        x = x.flatten(-2) if geometry.grid else x
        return x.transpose(-1, -2) if geometry.order == FEATURES_LAST else x
    if geometry.kind == HEADS:
        x = x.unflatten(-2, (geometry.heads, -1))
        return x if geometry.order == "[d, N]" else x.transpose(-1, -2)
    return x


def head_rates(channel_rates: Sequence[float], geometry: Geometry) -> list[tuple[str, int, float]]:
    """`(part, head, firing rate)` of every head from the per-feature rates of a layer whose features are its parts
    (Q, K, V; one unnamed part for a head-split layer) one after the other, each `heads * d` head-major features.
    Every feature has the same number of neurons, so a head's rate is the mean of its features'."""
    parts = geometry.parts or " "
    rates = torch.as_tensor(channel_rates, dtype=torch.float64).reshape(len(parts) * geometry.heads, -1).mean(dim=1)
    return [(parts[i // geometry.heads].strip(), i % geometry.heads, float(rate)) for i, rate in enumerate(rates)]
