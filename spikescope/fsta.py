"""FSTA: frequency-based spatial-temporal attention (docs/metrics.md, "FSTA") and `add_fsta(model)`.

FSTA rescales the input current `X: [T, B, C, H, W]` of a spiking layer before the neuron
integrates it: a temporal gate `w_t[b, t]` from pooled descriptors mixed across time, a
spatial gate `w_s[b, h, w]` from a fixed bank of local 2D DCT-II filters applied to the
time-averaged, channel-summed current, and a learnable fusion `Y = (m X_t + n X_s) / 2`.

The module computes exactly these equations in a cheaper order: `Y = X * gain` with one small
`gain = (1 + w_t) (m + n (1 + w_s)) / 2`, so the full-size current is read once for the
descriptors and the channel sum and multiplied once. The DCT bank and the first fusion
convolution are both linear, so on the summed map they act as one operator (`composed_operator`):
each output reads `kf + k - 1` rows of the map instead of `k*k` DCT maps through a `k*k`-channel
convolution. On maps too wide for that to pay, the DCT bank runs as two 1-D passes (the basis is
separable) and the fusion convolution as 1x1 products followed by shifted sums. In training, the
current's mean, maximum and channel sum come from one autograd function (`PooledCurrent`) whose
backward writes their gradient in one full-size pass.
"""
from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from .dct import dct_matrix
from .errors import SpikescopeError

Branches = Literal["both", "temporal", "spatial"]
BRANCHES = ("both", "temporal", "spatial")


def fsta_branches(fsta: bool | str) -> Branches | None:
    """What a model's `fsta` argument asks for: no FSTA (False), the whole module (True or 'both'), or one branch."""
    if fsta is False or fsta is None:
        return None
    if fsta is True:
        return "both"
    if fsta not in BRANCHES:
        raise SpikescopeError(f"fsta must be True, False or one of {', '.join(BRANCHES)}; got {fsta!r}")
    return fsta
FUSION_KERNEL = 7  # the learnable k*k -> 1 fusion convolution is 7x7 in the reference code


class FSTA(nn.Module):
    """FSTA for `T` timesteps; `branches` selects the full module or one branch (ablations).

    Accepts `[T, B, C, H, W]` or `[T, B, N]` (treated as `N` channels of 1x1 maps) and
    returns a tensor of the same shape. `channels=None` accepts any channel count; the
    module's parameters do not depend on it (the DCT acts on the channel sum).
    """

    def __init__(
        self,
        channels: int | None,
        T: int,
        dct_size: int = 7,
        reduction: int = 1,
        branches: Branches = "both",
    ) -> None:
        super().__init__()
        if branches not in ("both", "temporal", "spatial"):
            raise ValueError(f"branches must be 'both', 'temporal' or 'spatial', got {branches!r}")
        self.channels = channels
        self.T = T
        self.dct_size = dct_size
        self.branches = branches
        if branches in ("both", "temporal"):
            self.alpha = nn.Parameter(torch.tensor(0.5))
            self.beta = nn.Parameter(torch.tensor(0.5))
            self.time_mixer = nn.Linear(T, T, bias=False)
        if branches in ("both", "spatial"):
            n_freq = dct_size * dct_size
            self.register_buffer("dct_rows", dct_matrix(dct_size, dtype=torch.float32), persistent=False)
            pad = FUSION_KERNEL // 2
            if reduction > 1:
                hidden = max(1, n_freq // reduction)
                self.frequency_fusion = nn.Sequential(
                    nn.Conv2d(n_freq, hidden, FUSION_KERNEL, padding=pad, bias=False),
                    nn.ReLU(),
                    nn.Conv2d(hidden, 1, FUSION_KERNEL, padding=pad, bias=False),
                )
            else:
                self.frequency_fusion = nn.Conv2d(n_freq, 1, FUSION_KERNEL, padding=pad, bias=False)
        self.m = nn.Parameter(torch.tensor(0.6))
        self.n = nn.Parameter(torch.tensor(0.5))

    def pool(self, x: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor | None, torch.Tensor | None]:
        """`(mean, maximum, channel_sum)` of the current `x: [T, B, C, H, W]`: each map's mean and maximum `[T, B, C]`
        for the temporal branch, the channel sum `[T, B, 1, H, W]` for the spatial branch, `None` for a branch that
        is off. Without a gradient to route, `amax` gives the maximum ten times faster than `max` with indices."""
        if self.branches == "spatial":
            return None, None, x.sum(dim=2, keepdim=True)
        both = self.branches == "both"
        if torch.is_grad_enabled() and x.requires_grad:
            return PooledCurrent.apply(x, both)
        return x.mean(dim=(-2, -1)), x.amax(dim=(-2, -1)), x.sum(dim=2, keepdim=True) if both else None

    def temporal_weight(self, mean: torch.Tensor, maximum: torch.Tensor) -> torch.Tensor:
        """`w_t: [T, B]` in (0, 1) from `alpha * mean_hw + beta * max_hw` (`[T, B, C]` each), mixed across time."""
        mixed = torch.einsum("st,tbc->sbc", self.time_mixer.weight, self.alpha * mean + self.beta * maximum)
        return torch.sigmoid(mixed.mean(dim=-1))

    def spatial_weight(self, summed: torch.Tensor) -> torch.Tensor:
        """`w_s: [B, 1, H, W]` in (0, 1) from the local DCT coefficients of `summed: [B, 1, H, W]`, the time-averaged,
        channel-summed current. The DCT bank and the first fusion convolution act as one operator where that costs
        fewer MACs (`fusion_macs`; for k = 7, maps narrower than about 215 px), else as two 1-D passes and
        shifted products."""
        first, *rest = self.fusion_layers()
        rows = self.dct_rows.to(summed.dtype)
        height, width = summed.shape[-2:]
        composed, separable = self.fusion_macs(height, width)
        if composed <= separable:
            operator = composed_operator(first.weight, rows, height, width, first.padding[0])
            x = apply_banded(summed[:, 0], operator, first.padding[0] + self.dct_size // 2)
        else:
            x = conv_by_shifts(separable_dct(summed, rows), first.weight, first.padding[0])
        for layer in rest:
            x = conv_by_shifts(x, layer.weight, layer.padding[0]) if isinstance(layer, nn.Conv2d) else layer(x)
        return torch.sigmoid(x)

    def gain(self, x: torch.Tensor) -> torch.Tensor:
        """The factor FSTA multiplies the current `x: [T, B, C, H, W]` by, `(1 + w_t) (m + n (1 + w_s)) / 2`, shaped
        `[T, B, 1, H, W]` (temporal branch alone: `[T, B, 1, 1, 1]`)."""
        mean, maximum, channel_sum = self.pool(x)  # the spatial branch sees only the channel sum
        temporal = 1 + self.temporal_weight(mean, maximum)[:, :, None, None, None] if mean is not None else None
        if self.branches == "temporal":
            return temporal * (self.m + self.n) / 2
        summed = (channel_sum if temporal is None else channel_sum * temporal).mean(dim=0)
        spatial = (self.m + self.n * (1 + self.spatial_weight(summed))).unsqueeze(0) / 2
        return spatial if temporal is None else spatial * temporal

    def forward(self, current: torch.Tensor) -> torch.Tensor:
        if current.shape[0] != self.T:
            raise SpikescopeError(
                f"FSTA expects time-first input with T={self.T} steps, got shape {tuple(current.shape)}"
            )
        if self.channels is not None and current.shape[2] != self.channels:
            raise SpikescopeError(f"FSTA built for {self.channels} channels got input of shape {tuple(current.shape)}")
        flat = current.dim() == 3
        x = current[..., None, None] if flat else current
        y = x * self.gain(x)
        return y[..., 0, 0] if flat else y

    def macs(self, sample_shape: tuple[int, ...]) -> int:
        """Multiply-accumulates one sample costs over all T steps (`sample_shape` is `[C, H, W]` or `[N]`), as
        `forward` computes them: all act on real-valued current, so all are MACs.

        Counts the pooled descriptors, the time mixing, the channel sum and time mean of the spatial branch,
        the DCT bank and first fusion convolution (`fusion_macs`), any further fusion convolution as 1x1
        products plus shifted sums, the gain (one operation per map position and timestep) and the final
        product with the current.
        """
        channels, height, width = (tuple(sample_shape) + (1, 1))[:3]
        elements = self.T * channels * height * width
        pixels = height * width
        total = elements + self.T * pixels  # Y = X * gain, and the gain itself
        if self.branches != "spatial":
            total += 2 * elements + self.T * self.T * channels + self.T * channels  # descriptors, mixing, mean
        if self.branches != "temporal":
            total += elements + 2 * self.T * pixels  # channel sum; temporal scaling and mean over T
            total += min(self.fusion_macs(height, width))
            for conv in self.fusion_layers()[2:]:  # the second convolution of a reduction
                taps = conv.weight.shape[0] * conv.weight.shape[2] * conv.weight.shape[3]
                total += taps * conv.weight.shape[1] * pixels + taps * pixels  # 1x1 product, shifted sums
            total += pixels  # the spatial gate m + n (1 + w_s)
        return total

    def fusion_macs(self, height: int, width: int) -> tuple[int, int]:
        """MACs of the DCT bank and the first fusion convolution on one `height x width` map: `(composed, separable)`,
        as one operator (`composed_operator`: per output, `kf + k - 1` rows of `width` inputs) or as two 1-D DCT
        passes plus 1x1 products and shifted sums. `forward` takes the cheaper."""
        k, weight, pixels = self.dct_size, self.fusion_layers()[0].weight, height * width
        out, taps = weight.shape[0], weight.shape[0] * weight.shape[2] * weight.shape[3]
        separable = k * k * height * (width + k - 1) + k * k * k * pixels  # vertical then horizontal DCT pass
        composed = out * pixels * (weight.shape[2] + k - 1) * width
        return composed, separable + taps * weight.shape[1] * pixels + taps * pixels

    def fusion_layers(self) -> list[nn.Module]:
        """The fusion convolution, or the two convolutions around a ReLU of a module built with `reduction > 1`."""
        fusion = self.frequency_fusion
        return list(fusion) if isinstance(fusion, nn.Sequential) else [fusion]

    def extra_repr(self) -> str:
        return f"channels={self.channels}, T={self.T}, dct_size={self.dct_size}, branches={self.branches!r}"


class PooledCurrent(torch.autograd.Function):
    """`FSTA.pool` where the current needs a gradient: each map's mean and maximum and, with `channel_sum`, the
    channel sum. The backward writes the current's gradient in one full-size pass, where autograd would
    materialise the mean's and the maximum's (a division and a zero tensor) and add them to the channel sum's.
    The maximum's gradient goes to one position (`max` with indices), not shared among ties as with `amax`."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, channel_sum: bool) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        maximum, index = x.flatten(-2).max(dim=-1)
        ctx.save_for_backward(index)
        ctx.shape = x.shape
        return x.mean(dim=(-2, -1)), maximum, x.sum(dim=2, keepdim=True) if channel_sum else None

    @staticmethod
    def backward(ctx, grad_mean: torch.Tensor, grad_max: torch.Tensor,
                 grad_sum: torch.Tensor | None) -> tuple[torch.Tensor, None]:
        (index,) = ctx.saved_tensors
        spread = (grad_mean / (ctx.shape[-2] * ctx.shape[-1]))[..., None, None]  # [T, B, C, 1, 1]
        grad = spread.expand(ctx.shape).contiguous() if grad_sum is None else spread + grad_sum
        grad.flatten(-2).scatter_add_(-1, index[..., None], grad_max[..., None])
        return grad, None


def separable_dct(maps: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    """Local `k x k` DCT-II coefficients of `maps: [B, 1, H, W]`, `[B, k*k, H, W]` with channel `u * k + v` for
    vertical frequency u and horizontal frequency v; `rows` is the `k x k` DCT matrix. Equal to correlating with
    the 2D basis images (zero padding `k // 2` before, `(k - 1) // 2` after), in two 1-D passes."""
    k = rows.shape[0]
    near, far = k // 2, (k - 1) // 2
    padded = F.pad(maps, (near, far, near, far))
    vertical = F.conv2d(padded, rows.reshape(k, 1, k, 1))  # [B, k, H, W + k - 1]
    return F.conv2d(vertical, rows.repeat(k, 1).reshape(k * k, 1, 1, k), groups=k)


def conv_by_shifts(x: torch.Tensor, weight: torch.Tensor, padding: int) -> torch.Tensor:
    """`F.conv2d(x, weight, padding=padding)` (stride 1, no bias) as one matrix product giving a map per output
    channel and kernel tap, whose shifted copies `F.fold` sums: the same products in matrix form.

    Tap `(i, j)` of input position `q` lands on output `q - (i, j) + padding`; with the taps flipped, that is
    where `fold` scatters block `q`'s entry `(k - 1 - i, k - 1 - j)`, shifted by `k - 1 - padding`.
    """
    out_channels, in_channels, kh, kw = weight.shape
    height, width = x.shape[-2:]
    flipped = weight.flip(2, 3).permute(0, 2, 3, 1).reshape(out_channels * kh * kw, in_channels)
    taps = flipped @ x.flatten(2)  # [B, O * kh * kw, H * W]: one block per input position
    summed = F.fold(taps, (height + kh - 1, width + kw - 1), (kh, kw))  # [B, O, H + kh - 1, W + kw - 1]
    top, left = kh - 1 - padding, kw - 1 - padding
    return summed[:, :, top:top + height + 2 * padding - kh + 1, left:left + width + 2 * padding - kw + 1]


def composed_operator(weight: torch.Tensor, rows: torch.Tensor, height: int, width: int,
                      padding: int) -> torch.Tensor:
    """The local DCT bank of `separable_dct` followed by `F.conv2d(., weight, padding=padding)` on `height x width`
    maps as one linear operator, `weight: [O, k*k, kf, kf]` with `padding = kf // 2` (the map keeps its size);
    `apply_banded` applies it.

    Both are linear and shift-invariant, but the convolution's zero padding sits between them, so a position near
    the border has its own kernel. Built one axis at a time (`band_operator`) from the pixel-space kernel
    `sum_uv weight[o, uk + v, a, b] rows[u, i] rows[v, j]`: `[O, H, D, W, W]`, where output `(o, p_y, p_x)` takes
    input row `p_y + d - padding - k // 2` (`D = kf + k - 1` rows, zero outside the map), column `r_x`, with
    weight `[o, p_y, d, p_x, r_x]`.
    """
    k, near = rows.shape[0], rows.shape[0] // 2
    kernel = torch.einsum("ouvab,ui,vj->objai", weight.unflatten(1, (k, k)), rows, rows)
    vertical = band_operator(kernel, height, padding)  # [O, b, j, p_y, d]
    horizontal = band_operator(vertical.permute(0, 3, 4, 1, 2), width, padding)  # [O, p_y, d, p_x, e]
    return skew(horizontal)[..., padding + near:padding + near + width]  # column e - p_x + padding + near


def band_operator(kernel: torch.Tensor, size: int, padding: int) -> torch.Tensor:
    """Along one axis of length `size`: `[..., p, d] = sum_a kernel[..., a, d - a]` over the convolution taps `a`
    that land inside (`0 <= p + a - padding < size`), from `kernel: [..., taps, k]` (`k` DCT taps); the weight of
    input `p + d - padding - k // 2`. A DCT tap index outside `[0, k)` contributes nothing."""
    taps = kernel.shape[-2]
    landing = torch.arange(size, device=kernel.device)[:, None] + torch.arange(taps, device=kernel.device) - padding
    inside = ((landing >= 0) & (landing < size)).to(kernel.dtype)  # [size, taps]
    return inside @ skew(kernel)


def apply_banded(maps: torch.Tensor, operator: torch.Tensor, top: int) -> torch.Tensor:
    """`composed_operator`'s `operator: [O, H, D, W, W]` applied to `maps: [B, H, W]`, giving `[B, O, H, W]`: one
    matrix product per output row over the `D` input rows from `p_y - top` on (zero padded)."""
    (batch, height, width), (out, _, rows) = maps.shape, operator.shape[:3]
    windows = F.pad(maps, (0, 0, top, rows - 1 - top)).unfold(1, rows, 1)  # [B, H, W, D]
    windows = windows.permute(1, 0, 3, 2).reshape(height, batch, rows * width)
    matrices = operator.permute(1, 2, 4, 0, 3).reshape(height, rows * width, out * width)
    return torch.bmm(windows, matrices).unflatten(-1, (out, width)).permute(1, 2, 0, 3)


def skew(x: torch.Tensor) -> torch.Tensor:
    """Shift row `p` of `x: [..., n, d]` right by `p`: `[..., n, n + d - 1]` with `[..., p, p + j] = x[..., p, j]`
    and zeros elsewhere (padding each row with `n` zeros and reading the rows back one element shorter)."""
    n, d = x.shape[-2:]
    return F.pad(x, (0, n)).flatten(-2)[..., :n * (n + d - 1)].unflatten(-1, (n, n + d - 1))


def _apply_fsta(neuron: nn.Module, args: tuple) -> tuple:
    """Forward pre-hook: run the neuron's FSTA child on its input current."""
    return (neuron.fsta(args[0]),) + tuple(args[1:])


def attach_fsta(neuron: nn.Module, fsta: FSTA) -> nn.Module:
    """Make `neuron` apply `fsta` to its input current; FSTA becomes the child `neuron.fsta`.

    Existing state-dict keys keep their names; the FSTA parameters appear under `<neuron>.fsta.`.
    """
    if hasattr(neuron, "fsta"):
        raise SpikescopeError(f"{type(neuron).__name__} already has an FSTA module")
    neuron.add_module("fsta", fsta)
    neuron.register_forward_pre_hook(_apply_fsta)
    return neuron


def add_fsta(
    model: nn.Module,
    T: int,
    is_spiking_layer=None,
    dct_size: int = 7,
    reduction: int = 1,
    branches: Branches = "both",
) -> nn.Module:
    """Insert FSTA in front of every spiking layer of a time-first model; returns the model.

    `is_spiking_layer(module) -> bool` decides which modules are neurons (default:
    spikescope's `LIF`). The neurons must be called with `[T, B, ...]` input currents.
    """
    from .neurons import LIF

    predicate = is_spiking_layer or (lambda module: isinstance(module, LIF))
    neurons = [module for module in model.modules() if predicate(module) and not isinstance(module, FSTA)]
    if not neurons:
        raise SpikescopeError("add_fsta found no spiking layer in the model")
    for neuron in neurons:
        attach_fsta(neuron, FSTA(None, T, dct_size=dct_size, reduction=reduction, branches=branches))
    return model
