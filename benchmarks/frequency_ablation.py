"""What one ablated pass costs against a plain forward pass, and what a whole frequency ablation costs.

    python benchmarks/frequency_ablation.py [--model baseline] [--limit 1000] [--batch-size 100] [--repeats 3]
                                            [--full]

Per layer of the bundled model, a plain pass and a pass with one band removed from that layer (the hook's DCT,
masking and inverse) run in turns over the same images, so that drift hits both alike; the best time of each is
kept and the ratio printed. A whole ablation runs `1 + layers x conditions` passes per batch; `--full` times one
(every band, 3 controls) and prints its time per pass against the plain pass measured in the same run.
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import torch

import spikescope
from spikescope.data import load_dataset, make_loader
from spikescope.frequency.bands import band_masks
from spikescope.frequency.intercept import BandRemover
from spikescope.tokens import Geometry


def plain_pass(model: torch.nn.Module, loader) -> float:
    started = time.perf_counter()
    with torch.no_grad():
        for images, _ in loader:
            model(images)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="baseline", choices=("baseline", "fsta"))
    parser.add_argument("--limit", type=int, default=1000)
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--full", action="store_true", help="also time a whole ablation (every band, 3 controls)")
    args = parser.parse_args()

    model, _ = spikescope.load(spikescope.bundled_checkpoint(args.model))
    model.eval()
    loader = make_loader(load_dataset("fashion-mnist-sample", "test", limit=args.limit), args.batch_size)
    images = len(loader.dataset)
    layers = [f"block{i}.lif" for i in range(1, 6)]
    plain = min(plain_pass(model, loader) for _ in range(args.repeats))
    print(f"{args.model}: {images} images, batch {args.batch_size}, {torch.get_num_threads()} threads; plain pass "
          f"{images / plain:,.0f} images/s")
    for layer in layers:
        module = model.get_submodule(layer)
        height, width = _map_size(model, module, loader)
        gain = 1.0 - band_masks(height, width)["axis_vertical"].astype(np.float64)
        plain_times, ablated_times = [], []
        with BandRemover(module, Geometry()) as remover:
            for _ in range(args.repeats):  # in turns, so that drift hits both alike
                remover.set_gain(None)
                plain_times.append(plain_pass(model, loader))
                remover.set_gain(gain)
                ablated_times.append(plain_pass(model, loader))
        ablated = min(ablated_times)
        print(f"  {layer:11s} {height:2d}x{width:<2d} one band removed: {images / ablated:,.0f} images/s, "
              f"{ablated / min(plain_times):.2f}x the plain pass")
    if args.full:
        started = time.perf_counter()
        result = spikescope.frequency_ablation(model, loader, T=model.T)
        seconds = time.perf_counter() - started
        passes = 1 + sum(len(c) for c in result.conditions.values())
        print(f"whole ablation (every band, 3 controls): {passes} passes per batch in {seconds:.0f} s, "
              f"{seconds / passes / plain:.2f}x the plain pass per pass (the first pass, the spectra, included)")


def _map_size(model: torch.nn.Module, module: torch.nn.Module, loader) -> tuple[int, int]:
    seen = []
    handle = module.register_forward_hook(lambda m, a, out: seen.append(out.shape[-2:]))
    with torch.no_grad():
        model(next(iter(loader))[0][:2])
    handle.remove()
    return tuple(seen[0])


if __name__ == "__main__":
    main()
