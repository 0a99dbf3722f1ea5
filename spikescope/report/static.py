"""Static matplotlib figures for papers (`--png`): firing rates, channel rates, orientation vs depth, spectra,
similarity. Figures that need 2D spike maps are left out for networks without them."""
from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from ..analyze import AnalysisResult  # noqa: E402


def _save(fig: plt.Figure, path: Path) -> Path:
    fig.savefig(path, dpi=150, bbox_inches="tight", format="png")
    plt.close(fig)
    return path


def write_png_figures(result: AnalysisResult, folder: Path) -> list[Path]:
    """Write the paper figures into `folder` (created; the caller stages it, see `report_folder`); returns them."""
    folder.mkdir(parents=True, exist_ok=True)
    layers = result.layers
    paths = []

    fig, ax = plt.subplots(figsize=(7, 3.2))
    ax.bar(layers["layer"], layers["firing_rate"], color="#9ecae1", label="all timesteps")
    for t, steps in result.timesteps.groupby("t"):
        ax.plot(steps["layer"], steps["firing_rate"], marker="o", label=f"t = {t}")
    ax.set_ylabel("firing rate")
    ax.legend(frameon=False)
    ax.tick_params(axis="x", rotation=45)
    paths.append(_save(fig, folder / "firing_rate.png"))

    if len(result.channels):
        groups = list(result.channels.groupby("layer", sort=False))
        fig, ax = plt.subplots(figsize=(7, 3.2))
        ax.boxplot([rows["firing_rate"] for _, rows in groups], showfliers=True)
        ax.set_xticks(range(1, len(groups) + 1), [layer for layer, _ in groups], rotation=45)
        ax.set_ylabel("firing rate per channel")
        paths.append(_save(fig, folder / "channel_firing_rate.png"))

    conv = layers[layers["height"].notna()]
    if len(conv):
        fig, ax = plt.subplots(figsize=(7, 3.2))
        ax.plot(conv["layer"], conv["axis_OI"], marker="o", label="axis split")
        ax.plot(conv["layer"], conv["wedge_OI"], marker="s", linestyle="--", label="wedge split")
        ax.axhline(0, color="#999999", linewidth=0.8)
        ax.set_ylim(-1, 1)
        ax.set_ylabel("orientation index\n(+ vertical variation)")
        ax.legend(frameon=False)
        ax.tick_params(axis="x", rotation=45)
        paths.append(_save(fig, folder / "orientation_by_depth.png"))

    names = list(result.spectra)
    if names:
        columns = min(4, len(names))
        rows = math.ceil(len(names) / columns)
        fig, axes = plt.subplots(rows, columns, figsize=(3 * columns, 2.8 * rows), squeeze=False)
        for ax, name in zip(axes.flat, names):
            power = result.spectra[name].sum(axis=0)
            image = ax.imshow(np.log10(np.maximum(power / max(power.sum(), 1e-300), 1e-8)), cmap="viridis",
                              extent=(0, 1, 1, 0))
            ax.set_title(name, fontsize=9)
            ax.set_xlabel("horizontal freq. v/W")
            ax.set_ylabel("vertical freq. u/H")
            fig.colorbar(image, ax=ax, fraction=0.046, label="log10 share")
        for ax in list(axes.flat)[len(names):]:
            ax.axis("off")
        fig.tight_layout()
        paths.append(_save(fig, folder / "spectra.png"))

    names = list(result.similarity)
    keys = ("spike_cosine", "spectral_cosine", "spectral_cosine_ac", "cka")
    fig, axes = plt.subplots(len(keys), len(names), figsize=(2.2 * len(names), 2.2 * len(keys)), squeeze=False)
    for column, name in enumerate(names):
        for row, key in enumerate(keys):
            ax = axes[row, column]
            matrix = result.similarity[name].get(key)
            if matrix is None:
                ax.axis("off")
                continue
            ax.imshow(matrix, vmin=0, vmax=1, cmap="Blues")
            for (i, j), value in np.ndenumerate(matrix):
                ax.text(j, i, f"{value:.2f}", ha="center", va="center", fontsize=7)
            ax.set_title(f"{name}\n{key.replace('_', ' ')}", fontsize=8)
            ax.set_xticks(range(matrix.shape[0]))
            ax.set_yticks(range(matrix.shape[0]))
    fig.tight_layout()
    paths.append(_save(fig, folder / "similarity.png"))
    return paths
