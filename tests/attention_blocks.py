"""Small spiking transformers written from the papers, for tests: Fashion-MNIST-sized images `[B, 1, 28, 28]` in,
logits `[B, 10]` out, multi-step neurons on time-first tensors.

- `spikformer_block`: Spikformer (Zhou et al. 2023). SPS stem (conv-BN-LIF and max pooling down to an 8 x 8
  patch grid, a conv-BN-LIF relative position embedding added to it), tokens `[T, B, C, N]` (N = 64), one
  block of spiking self-attention (Q, K, V by conv1d-BN-LIF, split into heads `[T, B, heads, d, N]`,
  attn = Q Kᵀ * scale, out = attn V, an LIF on the head-split `[T, B, heads, d, N]`, projection conv1d-BN-LIF)
  and an MLP, each with the residual `x + f(x)`.
- `spikformer_block_nd`: the same block on tokens `[T, B, N, D]` (linear-BN instead of conv1d-BN), heads split as
  `[T, B, heads, N, d]`.
- `spike_driven_block`: Spike-driven Transformer (Yao et al. 2023): membrane shortcuts (neurons first, conv-BN
  after), attention by Hadamard masks Q ⊙ column-sum over tokens of (K ⊙ V), an LIF on the `[T, B, heads, d, 1]`
  column sums.

`neuron="lif"` uses spikescope's `LIF`, `neuron="spikingjelly"` SpikingJelly's multi-step `LIFNode`.
"""
from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from spikescope.neurons import LIF

GRID = (8, 8)  # the stem's patch grid: 64 tokens


def make_neuron(kind: str = "lif") -> Callable[[], nn.Module]:
    """A constructor of multi-step neurons `[T, B, ...]` -> spikes: spikescope's LIF or SpikingJelly's LIFNode."""
    if kind == "lif":
        return LIF
    if kind == "spikingjelly":
        from spikingjelly.activation_based import neuron
        return lambda: neuron.LIFNode(tau=2.0, v_threshold=0.5, detach_reset=True, step_mode="m")
    raise ValueError(f"neuron must be 'lif' or 'spikingjelly', got {kind!r}")


class Folded(nn.Sequential):
    """Per-sample modules run on `[T, B, ...]` with time folded into the batch."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.flatten(0, 1)).unflatten(0, x.shape[:2])


class TokenBN(nn.Module):
    """Linear then BatchNorm1d over the features of tokens `[T, B, N, D]`."""

    def __init__(self, dim_in: int, dim_out: int) -> None:
        super().__init__()
        self.linear = nn.Linear(dim_in, dim_out)
        self.bn = nn.BatchNorm1d(dim_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.linear(x)
        return self.bn(y.flatten(0, -2)).view_as(y)


def conv1d_bn(dim_in: int, dim_out: int) -> Folded:
    """Conv1d (kernel 1) then BatchNorm1d on tokens `[T, B, C, N]`."""
    return Folded(nn.Conv1d(dim_in, dim_out, 1), nn.BatchNorm1d(dim_out))


class SPS(nn.Module):
    """Spikformer's spiking patch splitting: `[T, B, 1, 28, 28]` -> spike sums on the 8 x 8 patch grid
    `[T, B, dim, 8, 8]` (the grid plus a conv-BN-LIF relative position embedding)."""

    def __init__(self, dim: int, neuron: Callable[[], nn.Module]) -> None:
        super().__init__()
        self.conv1 = Folded(nn.Conv2d(1, dim // 2, 3, padding=3), nn.BatchNorm2d(dim // 2))  # 28 -> 32 px
        self.lif1 = neuron()
        self.pool1 = Folded(nn.MaxPool2d(2))  # 16 px
        self.conv2 = Folded(nn.Conv2d(dim // 2, dim, 3, padding=1), nn.BatchNorm2d(dim))
        self.lif2 = neuron()
        self.pool2 = Folded(nn.MaxPool2d(2))  # 8 px: the patch grid
        self.rpe = Folded(nn.Conv2d(dim, dim, 3, padding=1), nn.BatchNorm2d(dim))
        self.rpe_lif = neuron()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool1(self.lif1(self.conv1(x)))
        x = self.pool2(self.lif2(self.conv2(x)))
        return x + self.rpe_lif(self.rpe(x))


class SpikformerAttention(nn.Module):
    """Spiking self-attention on tokens `[T, B, C, N]`: heads `[T, B, heads, d, N]`, attn = Q Kᵀ * scale,
    out = attn V (no softmax), an LIF on the head-split output, then the projection. With `fused`, Q, K and V come
    from one conv1d-BN-LIF `qkv_lif` of 3C features `[T, B, 3, heads, d, N]`, as SpikingJelly's Spikformer has it."""

    def __init__(self, dim: int, heads: int, neuron: Callable[[], nn.Module], fused: bool = False) -> None:
        super().__init__()
        self.num_heads = heads
        self.scale = 0.125
        if fused:
            self.qkv, self.qkv_lif = conv1d_bn(dim, 3 * dim), neuron()
        else:
            self.q, self.k, self.v = (conv1d_bn(dim, dim) for _ in range(3))
            self.q_lif, self.k_lif, self.v_lif = neuron(), neuron(), neuron()
        self.attn_lif = neuron()
        self.proj = conv1d_bn(dim, dim)
        self.proj_lif = neuron()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        T, B, C, N = x.shape
        heads = (T, B, self.num_heads, C // self.num_heads, N)
        if hasattr(self, "qkv"):
            q, k, v = self.qkv_lif(self.qkv(x)).reshape(T, B, 3, *heads[2:]).unbind(2)
        else:
            q = self.q_lif(self.q(x)).reshape(heads)
            k = self.k_lif(self.k(x)).reshape(heads)
            v = self.v_lif(self.v(x)).reshape(heads)
        attn = (q.transpose(-2, -1) @ k) * self.scale  # [T, B, heads, N, N]
        out = (attn @ v.transpose(-2, -1)).transpose(-2, -1)  # [T, B, heads, d, N]
        return self.proj_lif(self.proj(self.attn_lif(out).reshape(T, B, C, N)))


class SpikformerMLP(nn.Module):
    """conv1d-BN-LIF twice on tokens `[T, B, C, N]`."""

    def __init__(self, dim: int, neuron: Callable[[], nn.Module]) -> None:
        super().__init__()
        self.fc1, self.fc1_lif = conv1d_bn(dim, 2 * dim), neuron()
        self.fc2, self.fc2_lif = conv1d_bn(2 * dim, dim), neuron()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2_lif(self.fc2(self.fc1_lif(self.fc1(x))))


class SpikformerAttentionND(nn.Module):
    """Spiking self-attention on tokens `[T, B, N, D]` (linear-BN): heads `[T, B, heads, N, d]`."""

    def __init__(self, dim: int, heads: int, neuron: Callable[[], nn.Module]) -> None:
        super().__init__()
        self.num_heads = heads
        self.scale = 0.125
        self.q, self.k, self.v = (TokenBN(dim, dim) for _ in range(3))
        self.q_lif, self.k_lif, self.v_lif = neuron(), neuron(), neuron()
        self.attn_lif = neuron()
        self.proj = TokenBN(dim, dim)
        self.proj_lif = neuron()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        T, B, N, D = x.shape
        q, k, v = (lif(f(x)).reshape(T, B, N, self.num_heads, D // self.num_heads).transpose(2, 3)
                   for f, lif in ((self.q, self.q_lif), (self.k, self.k_lif), (self.v, self.v_lif)))
        attn = (q @ k.transpose(-2, -1)) * self.scale  # [T, B, heads, N, N]
        out = self.attn_lif(attn @ v)  # [T, B, heads, N, d]
        return self.proj_lif(self.proj(out.transpose(2, 3).reshape(T, B, N, D)))


class SpikformerMLPND(nn.Module):
    """linear-BN-LIF twice on tokens `[T, B, N, D]`."""

    def __init__(self, dim: int, neuron: Callable[[], nn.Module]) -> None:
        super().__init__()
        self.fc1, self.fc1_lif = TokenBN(dim, 2 * dim), neuron()
        self.fc2, self.fc2_lif = TokenBN(2 * dim, dim), neuron()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2_lif(self.fc2(self.fc1_lif(self.fc1(x))))


class SpikeDrivenAttention(nn.Module):
    """Spike-driven self-attention on tokens `[T, B, C, N]` (membrane shortcut: the input is not spikes):
    out = Q ⊙ LIF(column-sum over tokens of K ⊙ V), heads `[T, B, heads, d, N]`, then conv1d-BN."""

    def __init__(self, dim: int, heads: int, neuron: Callable[[], nn.Module]) -> None:
        super().__init__()
        self.num_heads = heads
        self.shortcut_lif = neuron()
        self.q, self.k, self.v = (conv1d_bn(dim, dim) for _ in range(3))
        self.q_lif, self.k_lif, self.v_lif = neuron(), neuron(), neuron()
        self.talking_heads_lif = neuron()
        self.proj = conv1d_bn(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        T, B, C, N = x.shape
        heads = (T, B, self.num_heads, C // self.num_heads, N)
        x = self.shortcut_lif(x)
        q = self.q_lif(self.q(x)).reshape(heads)
        k = self.k_lif(self.k(x)).reshape(heads)
        v = self.v_lif(self.v(x)).reshape(heads)
        kv = self.talking_heads_lif((k * v).sum(dim=-1, keepdim=True))  # [T, B, heads, d, 1]
        return self.proj((q * kv).reshape(T, B, C, N))


class SpikeDrivenMLP(nn.Module):
    """LIF then conv1d-BN, twice (membrane shortcut)."""

    def __init__(self, dim: int, neuron: Callable[[], nn.Module]) -> None:
        super().__init__()
        self.fc1_lif, self.fc1 = neuron(), conv1d_bn(dim, 2 * dim)
        self.fc2_lif, self.fc2 = neuron(), conv1d_bn(2 * dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.fc2_lif(self.fc1(self.fc1_lif(x))))


class SpikeDrivenStem(nn.Module):
    """The Spike-driven Transformer's patch embedding: conv-BN and LIF, pooled to 8 x 8; the position embedding
    LIF-conv-BN is added to the membrane-level map `[T, B, dim, 8, 8]`."""

    def __init__(self, dim: int, neuron: Callable[[], nn.Module]) -> None:
        super().__init__()
        self.conv1 = Folded(nn.Conv2d(1, dim // 2, 3, padding=3), nn.BatchNorm2d(dim // 2))
        self.lif1 = neuron()
        self.pool1 = Folded(nn.MaxPool2d(2))
        self.conv2 = Folded(nn.Conv2d(dim // 2, dim, 3, padding=1), nn.BatchNorm2d(dim), nn.MaxPool2d(2))
        self.rpe_lif = neuron()
        self.rpe = Folded(nn.Conv2d(dim, dim, 3, padding=1), nn.BatchNorm2d(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv2(self.pool1(self.lif1(self.conv1(x))))
        return x + self.rpe(self.rpe_lif(x))


class TokenNet(nn.Module):
    """stem -> tokens -> one transformer block (`x + attn(x)`, `x + mlp(x)`) -> mean over tokens and time ->
    linear readout. `tokens_last` lays tokens out `[T, B, N, D]` instead of `[T, B, D, N]`."""

    def __init__(self, T: int, dim: int, stem: nn.Module, attn: nn.Module, mlp: nn.Module,
                 tokens_last: bool = False) -> None:
        super().__init__()
        self.T, self.tokens_last = T, tokens_last
        self.stem, self.attn, self.mlp = stem, attn, mlp
        self.head = nn.Linear(dim, 10)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = self.stem(images.unsqueeze(0).expand(self.T, *images.shape).contiguous()).flatten(3)  # [T, B, D, N]
        if self.tokens_last:
            x = x.transpose(2, 3).contiguous()  # [T, B, N, D]
        x = x + self.attn(x)
        x = x + self.mlp(x)
        return self.head(x.mean(dim=3 if not self.tokens_last else 2).mean(dim=0))


def calibrated(model: TokenNet, seed: int = 0) -> TokenNet:
    """`model` with weights drawn from `seed` and every BatchNorm's statistics set from 32 sample images (one
    pass in train mode, cumulative averages), so that its layers fire at rates like a trained network's; in
    eval mode, neuron states reset."""
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        for module in model.modules():
            if hasattr(module, "reset_parameters") and module is not model:
                module.reset_parameters()
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            module.momentum = None
    with torch.no_grad():
        model.train()(fashion_images(32))
    model.eval()
    reset_states(model)
    return model


def reset_states(model: nn.Module) -> None:
    """Reset SpikingJelly neurons (spikescope's LIF keeps no state between calls)."""
    for module in model.modules():
        if hasattr(module, "reset") and callable(module.reset):
            module.reset()


def spikformer_block(T: int = 2, dim: int = 32, heads: int = 4, neuron: str = "lif",
                     fused_qkv: bool = False) -> TokenNet:
    """Spikformer on tokens `[T, B, C, N]`, 64 tokens on an 8 x 8 grid (see the module docstring); `fused_qkv`: Q, K
    and V from one layer `attn.qkv_lif`."""
    make = make_neuron(neuron)
    return calibrated(TokenNet(T, dim, SPS(dim, make), SpikformerAttention(dim, heads, make, fused_qkv),
                               SpikformerMLP(dim, make)))


def spikformer_block_nd(T: int = 2, dim: int = 32, heads: int = 4, neuron: str = "lif") -> TokenNet:
    """Spikformer on tokens `[T, B, N, D]` (linear layers), heads `[T, B, heads, N, d]`."""
    make = make_neuron(neuron)
    return calibrated(TokenNet(T, dim, SPS(dim, make), SpikformerAttentionND(dim, heads, make),
                               SpikformerMLPND(dim, make), tokens_last=True))


def spike_driven_block(T: int = 2, dim: int = 32, heads: int = 4, neuron: str = "lif") -> TokenNet:
    """Spike-driven Transformer on tokens `[T, B, C, N]`, Hadamard attention (see the module docstring)."""
    make = make_neuron(neuron)
    return calibrated(TokenNet(T, dim, SpikeDrivenStem(dim, make), SpikeDrivenAttention(dim, heads, make),
                               SpikeDrivenMLP(dim, make)))


class PatchTokens(nn.Module):
    """A ViT-style linear patch embedding with no 2D map before its tokens: 3 x 3 patches of the central 24 x 24
    pixels (an 8 x 8 grid, 64 tokens) -> linear -> LIF on tokens `[T, B, N, D]` -> linear -> LIF -> readout. Only a
    declared grid (`tokens=(8, 8)`) lays its tokens out on the grid."""

    def __init__(self, T: int, dim: int, neuron: Callable[[], nn.Module]) -> None:
        super().__init__()
        self.T = T
        self.embed, self.embed_lif = nn.Linear(9, dim), neuron()
        self.fc, self.fc_lif = nn.Linear(dim, dim), neuron()
        self.head = nn.Linear(dim, 10)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        patches = nn.functional.unfold(images[:, :, 2:26, 2:26], 3, stride=3).transpose(1, 2)  # [B, 64, 9]
        x = self.embed_lif(self.embed(patches.unsqueeze(0).expand(self.T, *patches.shape)))
        x = self.fc_lif(self.fc(x))
        return self.head(x.mean(dim=2).mean(dim=0))


def patch_tokens(T: int = 2, dim: int = 16, neuron: str = "lif") -> PatchTokens:
    """Tokens `[T, B, 64, dim]` from a linear patch embedding, with nothing in the model that shows their grid."""
    with torch.random.fork_rng():
        torch.manual_seed(0)
        return PatchTokens(T, dim, make_neuron(neuron)).eval()


def fashion_images(count: int = 8) -> torch.Tensor:
    """The first `count` test images of the bundled Fashion-MNIST sample, normalised, `[count, 1, 28, 28]`."""
    from spikescope.data import load_dataset
    return load_dataset("fashion-mnist-sample")[:count][0]
