"""Linear centered kernel alignment (CKA) of whole representations (docs/metrics.md, "CKA"): between the timesteps
of a layer, and between the layers of two models seen on the same images.

Linear CKA of n samples with features X (n x p) and Y (n x q), both centred over the samples, is
`||Y^T X||_F^2 / (||X^T X||_F ||Y^T Y||_F)`. Only the sample count, the feature sums and the
products `X^T X`, `Y^T Y`, `Y^T X` are needed, and those add up over batches: memory grows with the
number of features, never with the number of images.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from ..errors import warn
from .base import Metric, MetricResult, mean_off_diagonal

DEFINITION = ("linear CKA[t, t'] = ||Yc^T Xc||_F^2 / (||Xc^T Xc||_F ||Yc^T Yc||_F), X and Y the layer's features at "
              "timesteps t and t' (one row per sample: each channel's spikes averaged over the positions, or over "
              "each cell of a grid x grid partition, row h in block floor(h grid / H), columns alike), centred over "
              "the samples; 1 for representations equal up to a rotation and a scale")


MAX_FEATURES = 4096  # per layer (T x p across timesteps): the products alone then take 128 MiB of float64


def features(spikes: torch.Tensor, grid: int = 1) -> torch.Tensor:
    """`[T, B, p]` float64 features: of `[T, B, C, H, W]` maps each channel averaged over the positions, or over
    each cell of a `grid x grid` partition (p = C x grid^2, see `partition`); of `[T, B, N]` vectors the N values;
    of any other `[T, B, C, ...]` each channel (dimension 2) averaged over the rest (p = C)."""
    T, B = spikes.shape[:2]
    if spikes.dim() == 3:
        return spikes.double()
    if spikes.dim() != 5 or grid == 1:
        flat = spikes.reshape(T, B, spikes.shape[2], -1)
        return flat.sum(dim=3, dtype=torch.float32).double() / flat.shape[3]  # spike counts: exact in float32
    rows, columns = (partition(side, grid, spikes.device) for side in spikes.shape[3:])
    cells = rows @ spikes.flatten(0, 1).float() @ columns.T  # [T * B, C, g_h, g_w] sums: exact in float32
    sizes = torch.outer(rows.sum(dim=1), columns.sum(dim=1)).double()
    return (cells.double() / sizes).view(T, B, -1)


def partition(side: int, grid: int, device: torch.device | None = None) -> torch.Tensor:
    """`[g, side]` 0/1 matrix splitting positions `0..side-1` into `g = min(grid, side)` contiguous blocks, position
    h in block `floor(h g / side)`: every position in exactly one block, sizes `floor(side / g)` or one more."""
    blocks = min(grid, side)
    block_of = torch.arange(side, device=device) * blocks // side
    return (block_of == torch.arange(blocks, device=device)[:, None]).float()


def cka_from_sums(count: float, sums_x: torch.Tensor, sums_y: torch.Tensor, xx: torch.Tensor, yy: torch.Tensor,
                  yx: torch.Tensor) -> float:
    """Linear CKA from `count` samples' feature sums and products (`xx = X^T X`, `yy = Y^T Y`, `yx = Y^T X`);
    NaN when either representation is constant over the samples."""
    cxx = xx - torch.outer(sums_x, sums_x) / count
    cyy = yy - torch.outer(sums_y, sums_y) / count
    cyx = yx - torch.outer(sums_y, sums_x) / count
    denominator = float(torch.linalg.matrix_norm(cxx) * torch.linalg.matrix_norm(cyy))
    return float(torch.linalg.matrix_norm(cyx) ** 2) / denominator if denominator > 0 else float("nan")


def cka_matrix(count: float, sums: torch.Tensor, products: torch.Tensor, blocks_x: list[slice],
               blocks_y: list[slice]) -> np.ndarray:
    """CKA between every block of features `blocks_x` and every block `blocks_y` of one joint feature vector whose
    sums and products (`[P]`, `[P, P]`) were accumulated together."""
    return np.array([[cka_from_sums(count, sums[x], sums[y], products[x, x], products[y, y], products[y, x])
                      for y in blocks_y] for x in blocks_x])


def _mib(features: int) -> str:
    return f"{features * features * 8 / 2 ** 20:,.0f} MiB"


class TimestepCKA(Metric):
    """States per layer: samples at every timestep `[T]`, and the sums `[T * p]` and products `[T * p, T * p]` of
    its features at every timestep side by side (see `features`)."""

    reductions = {"count": "sum", "sums": "sum", "products": "sum"}
    float_sums = ("sums", "products")

    def __init__(self, grid: int = 1) -> None:
        super().__init__()
        if grid < 1:
            raise ValueError(f"grid must be at least 1, got {grid}")
        self.grid = grid
        self._too_large: set[str] = set()

    def update(self, layer: str, spikes: torch.Tensor) -> None:
        """`spikes: [T, B, ...]`; a layer with more than `MAX_FEATURES` features over its timesteps is named once
        and left out."""
        f = features(spikes, self.grid)
        if f.shape[0] * f.shape[2] > MAX_FEATURES:
            if layer not in self._too_large:
                self._too_large.add(layer)
                warn(f"layer {layer} has {f.shape[0]} x {f.shape[2]} features, more than linear CKA across timesteps "
                     f"keeps ({MAX_FEATURES}; its sums would take {_mib(f.shape[0] * f.shape[2])}): left out")
            return
        side_by_side = f.transpose(0, 1).reshape(f.shape[1], -1)  # [B, T * p]
        self._accumulate(layer, {
            "count": torch.full((f.shape[0],), f.shape[1], dtype=torch.int64, device=f.device),
            "sums": side_by_side.sum(dim=0),
            "products": side_by_side.T @ side_by_side,
        })

    def compute(self) -> MetricResult:
        rows, matrices = [], {}
        for layer, s in self.states.items():
            T = s["count"].numel()
            p = s["sums"].shape[0] // T
            blocks = [slice(t * p, (t + 1) * p) for t in range(T)]
            matrix = cka_matrix(float(s["count"][0]), s["sums"], s["products"], blocks, blocks)
            matrices[layer] = matrix
            rows.append({"layer": layer, "cka_mean_off_diagonal": mean_off_diagonal(matrix)})
        return MetricResult(pd.DataFrame(rows, columns=("layer", "cka_mean_off_diagonal")), None, {"cka": matrices},
                            {"linear CKA": DEFINITION + (f"; grid = {self.grid}" if self.grid > 1 else "")})


class CrossCKA:
    """Linear CKA between every layer of a reference model and every layer of another, both seen on the same
    samples: `update` takes each model's per-layer features of one batch (`[B, p_i]`, in the same sample order).

    States: the sample count, per-layer feature sums and products (`[p_i, p_i]`), and the cross products of
    all the other model's features with all the reference's (`[P_other, P_reference]`). Every state is a sum
    over samples, so batches add up and processes are summed by `all_reduce`.
    """

    def __init__(self) -> None:
        self.states: dict[str, torch.Tensor] = {}
        self.reference_layers: list[str] = []
        self.layers: list[str] = []

    def update(self, reference: dict[str, torch.Tensor], other: dict[str, torch.Tensor]) -> None:
        if not self.states:
            self.reference_layers, self.layers = list(reference), list(other)
        a, b = (torch.cat([x.double() for x in f.values()], dim=1) for f in (reference, other))
        values = {"count": torch.tensor(float(len(a)), dtype=torch.float64, device=a.device),
                  "sums_reference": a.sum(dim=0), "sums": b.sum(dim=0), "cross": b.T @ a}
        values.update({f"reference:{name}": x.double().T @ x.double() for name, x in reference.items()})
        values.update({f"layer:{name}": x.double().T @ x.double() for name, x in other.items()})
        for name, value in values.items():
            self.states[name] = self.states[name] + value if name in self.states else value

    def all_reduce(self) -> "CrossCKA":
        """Sum the states over the processes of a torch.distributed group (nothing changes in one process)."""
        from ..distributed import all_reduce_states

        self.states = all_reduce_states({"cka": self.states}, {name: "sum" for name in self.states})["cka"]
        return self

    def compute(self) -> np.ndarray:
        """`[reference layers, layers]` linear CKA of the models' time-averaged channel features."""
        def blocks(layers: list[str], prefix: str) -> list[slice]:
            sizes = [self.states[f"{prefix}:{name}"].shape[0] for name in layers]
            edges = np.cumsum([0, *sizes])
            return [slice(int(start), int(end)) for start, end in zip(edges[:-1], edges[1:])]

        count, s = float(self.states["count"]), self.states
        return np.array([[cka_from_sums(count, s["sums_reference"][x], s["sums"][y], s[f"reference:{a}"],
                                        s[f"layer:{b}"], s["cross"][y, x])
                          for b, y in zip(self.layers, blocks(self.layers, "layer"))]
                         for a, x in zip(self.reference_layers, blocks(self.reference_layers, "reference"))])
