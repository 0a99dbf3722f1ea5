"""Orthonormal DCT-II matrices and 2D bases, generated from the formula (docs/metrics.md, "2D-DCT spectrum").

`D_N[k, n] = a_k cos(pi (2n + 1) k / 2N)` with `a_0 = sqrt(1/N)`, `a_k = sqrt(2/N)`.
For a map `S` of size `H x W`, `X = D_H S D_W^T`: row index `u` of `X` is the vertical
frequency (variation along the height), column index `v` the horizontal frequency.
"""
from __future__ import annotations

import math

import torch


def dct_matrix(n: int, *, dtype: torch.dtype = torch.float64, device: torch.device | str | None = None) -> torch.Tensor:
    """The `n x n` orthonormal DCT-II matrix `D` (so `D @ D.T == I`)."""
    if n < 1:
        raise ValueError(f"DCT size must be at least 1, got {n}")
    k = torch.arange(n, dtype=torch.float64).unsqueeze(1)
    i = torch.arange(n, dtype=torch.float64).unsqueeze(0)
    matrix = torch.cos(math.pi * (2 * i + 1) * k / (2 * n))
    scale = torch.full((n, 1), math.sqrt(2.0 / n), dtype=torch.float64)
    scale[0, 0] = math.sqrt(1.0 / n)
    return (scale * matrix).to(dtype=dtype, device=device)


def dct_basis_2d(size: int, *, dtype: torch.dtype = torch.float32,
                 device: torch.device | str | None = None) -> torch.Tensor:
    """The `size*size` 2D DCT-II basis images, shape `[size*size, size, size]`.

    Filter `u * size + v` is `outer(D[u], D[v])`: it varies along the height with vertical
    frequency `u` and along the width with horizontal frequency `v`. The filters are
    orthonormal: flattened, their Gram matrix is the identity.
    """
    d = dct_matrix(size)
    basis = torch.einsum("uh,vw->uvhw", d, d).reshape(size * size, size, size)
    return basis.to(dtype=dtype, device=device)


def dct2(maps: torch.Tensor) -> torch.Tensor:
    """Orthonormal 2D DCT-II over the last two axes of `maps` (`[..., H, W]`), on its device."""
    h, w = maps.shape[-2:]
    d_h = dct_matrix(h, dtype=maps.dtype, device=maps.device)
    d_w = dct_matrix(w, dtype=maps.dtype, device=maps.device)
    return d_h @ maps @ d_w.T
