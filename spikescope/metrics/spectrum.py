"""2D-DCT power spectra of spike maps, orientation energies and radial bands (docs/metrics.md).

For every spike map `S` (one sample, channel and timestep) `X = D_H S D_W^T` (orthonormal DCT-II);
the power `X**2` is summed over samples and channels per layer and timestep. Row index `u` is
the vertical frequency (variation along the height), column index `v` the horizontal one.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from ..dct import dct_matrix
from .base import Metric, MetricResult, mean_off_diagonal

DEFINITIONS = {
    "spectrum": "P[u, v] = sum over samples and channels of (D_H S D_W^T)[u, v]^2, orthonormal DCT-II of each "
                "spike map S; u = vertical frequency (variation along the height), v = horizontal frequency "
                "(along the width); sum(P) = number of spikes (Parseval)",
    "axis split": "E_vert = sum P[u > 0, v = 0], E_horz = sum P[u = 0, v > 0]",
    "wedge split": "E_vert = sum P[u/H > v/W], E_horz = sum P[v/W > u/H] (diagonal and DC excluded)",
    "orientation index": "OI = (E_vert - E_horz) / (E_vert + E_horz) in [-1, 1]; positive = vertical variation "
                         "(along the height, e.g. horizontal stripes) dominates",
    "radial bands": "share of non-DC power at normalised radius rho = sqrt((u/H)^2 + (v/W)^2): "
                    "low rho < 1/3, mid 1/3 <= rho < 2/3, high rho >= 2/3",
    "spectral cosine": "cosine between the power spectra of timesteps t and t' (summed over samples and "
                       "channels): equal frequency content gives 1 even when the amount of firing differs",
    "spectral cosine (AC)": "the same with DC left out; DC holds a large, firing-rate-like share of the power "
                            "and pushes the full cosine towards 1",
}


def frequency_masks(height: int, width: int) -> dict[str, np.ndarray]:
    """Boolean `[H, W]` masks of the orientation splits, radial bands and DC for one map size."""
    u = np.arange(height)[:, None] / height
    v = np.arange(width)[None, :] / width
    dc = (u == 0) & (v == 0)
    rho = np.sqrt(u ** 2 + v ** 2)
    return {
        "dc": dc,
        "axis_vertical": (u > 0) & (v == 0),
        "axis_horizontal": (u == 0) & (v > 0),
        "wedge_vertical": u > v,
        "wedge_horizontal": v > u,
        "band_low": ~dc & (rho < 1 / 3),
        "band_mid": (rho >= 1 / 3) & (rho < 2 / 3),
        "band_high": rho >= 2 / 3,
    }


NEGLIGIBLE = 1e-9  # power below this share of the total is float32 rounding, not signal


def orientation_summary(power: np.ndarray) -> dict[str, float]:
    """Orientation energies, indices, DC share and radial band shares of one `[H, W]` power spectrum.

    Indices and shares whose denominator is negligible (a constant or empty map) are NaN.
    """
    masks = frequency_masks(*power.shape)
    energy = {name: float(power[mask].sum()) for name, mask in masks.items()}
    total = float(power.sum())
    ac = total - energy["dc"]
    floor = NEGLIGIBLE * total
    summary = {"power": total, "dc_fraction": energy["dc"] / total if total else float("nan")}
    for split in ("axis", "wedge"):
        vert, horz = energy[f"{split}_vertical"], energy[f"{split}_horizontal"]
        summary[f"{split}_E_vert"] = vert
        summary[f"{split}_E_horz"] = horz
        summary[f"{split}_OI"] = (vert - horz) / (vert + horz) if vert + horz > floor else float("nan")
    for band in ("low", "mid", "high"):
        summary[f"band_{band}"] = energy[f"band_{band}"] / ac if ac > floor else float("nan")
    return summary


SUMMARY_COLUMNS = tuple(orientation_summary(np.ones((2, 2))))


def image_orientation(images: torch.Tensor) -> dict[str, float]:
    """The orientation summary (`orientation_summary`) of images `[N, C, H, W]` with the spike maps' definition:
    DCT power of every image and channel, summed; the input's own orientation, a study's depth 0."""
    spectrum = Spectrum()
    spectrum.update("images", images.float().unsqueeze(0))
    return orientation_summary(spectrum.states["images"]["power"].sum(dim=0).cpu().numpy())
LAYER_COLUMNS = ("layer", "height", "width", *SUMMARY_COLUMNS, "parseval_error",
                 "spectral_cosine_ac_mean_off_diagonal")



def spectral_cosine(power: np.ndarray, include_dc: bool = True) -> np.ndarray:
    """`[T, T]` cosine similarity of per-timestep spectra `power: [T, H, W]`, with or without DC."""
    flat = power.reshape(power.shape[0], -1)[:, 0 if include_dc else 1:]  # index 0 is DC
    norms = np.linalg.norm(flat, axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (flat @ flat.T) / np.outer(norms, norms)


def _one_product(height: int, width: int) -> bool:
    """True when the 2D transform is cheaper as one `[HW, HW]` product than as two 1-D passes (maps up to ~8x8)."""
    return height * width <= 4 * (height + width)


class Spectrum(Metric):
    """States per conv layer: DCT power `[T, H, W]` and the sum of squared spikes `[T]` (the Parseval check).

    Layers with no spatial map (`[T, B, N]`) are skipped. With `channel_mean`, each sample's maps are
    averaged over channels before the transform (the power of the mean map, a second definition a
    study may check its verdict against; Parseval then holds for the mean maps).
    """

    reductions = {"power": "sum", "squares": "sum"}
    float_sums = ("power",)

    def __init__(self, channel_mean: bool = False) -> None:
        super().__init__()
        self.channel_mean = channel_mean
        self._matrices: dict[tuple, tuple[torch.Tensor, torch.Tensor]] = {}

    def _dct_matrices(self, height: int, width: int, device: torch.device) -> tuple[torch.Tensor, ...]:
        """`(D_H, D_W)`, or for small maps the single `[HW, HW]` matrix `D_H (x) D_W` (see `_power`)."""
        key = (height, width, device)
        if key not in self._matrices:
            d_h, d_w = (dct_matrix(n, dtype=torch.float32, device=device) for n in (height, width))
            self._matrices[key] = (torch.kron(d_h, d_w).T.contiguous(),) if _one_product(height, width) else (d_h, d_w)
        return self._matrices[key]

    def _power(self, maps: torch.Tensor) -> torch.Tensor:
        """DCT power `[T, H, W]` of `maps: [T, B, C, H, W]`, summed over samples and channels.

        Small maps take the whole 2D transform as one matrix product over flattened maps (one pass,
        no small batched products); larger ones the two 1-D passes, which cost fewer operations.
        """
        T, _, _, H, W = maps.shape
        matrices = self._dct_matrices(H, W, maps.device)
        if len(matrices) == 1:
            coefficients = maps.reshape(T, -1, H * W) @ matrices[0]
            return coefficients.mul_(coefficients).sum(dim=1).view(T, H, W)  # squared in place: no second tensor
        d_h, d_w = matrices
        coefficients = d_h @ maps @ d_w.T
        return coefficients.mul_(coefficients).sum(dim=(1, 2))

    def update(self, layer: str, spikes: torch.Tensor) -> None:
        """`spikes: [T, B, C, H, W]`; other shapes carry no 2D map and are ignored."""
        if spikes.dim() != 5:
            return
        maps = spikes.float()
        if self.channel_mean:
            maps = maps.mean(dim=2, keepdim=True)
        squares = torch.stack([torch.dot(step, step) for step in maps.reshape(maps.shape[0], -1)])  # no temporary
        self._accumulate(layer, {"power": self._power(maps).double(), "squares": squares.double()})

    def compute(self) -> MetricResult:
        rows, steps, spectra, cosines, ac_cosines = [], [], {}, {}, {}
        for layer, s in self.states.items():
            power = s["power"].cpu().numpy()
            T, H, W = power.shape
            squares = float(s["squares"].sum())
            spectra[layer] = power
            cosines[layer] = spectral_cosine(power)
            ac_cosines[layer] = spectral_cosine(power, include_dc=False)
            rows.append({"layer": layer, "height": H, "width": W, **orientation_summary(power.sum(axis=0)),
                         "parseval_error": abs(power.sum() - squares) / squares if squares else 0.0,
                         "spectral_cosine_ac_mean_off_diagonal": mean_off_diagonal(ac_cosines[layer])})
            steps += [{"layer": layer, "t": t, **orientation_summary(power[t])} for t in range(T)]
        return MetricResult(pd.DataFrame(rows, columns=LAYER_COLUMNS),
                            pd.DataFrame(steps, columns=("layer", "t", *SUMMARY_COLUMNS)),
                            {"spectrum": spectra, "spectral_cosine": cosines, "spectral_cosine_ac": ac_cosines},
                            dict(DEFINITIONS))
