"""How much slower `analyze` (all metrics) is than a plain forward pass over the same images.

    python benchmarks/analyze_overhead.py [--data fashion-mnist] [--limit 1000] [--batch-size 100] [--model fsta]

Prints images/s for the plain pass and for analyze with each metric alone and all together,
and each as a ratio to the plain pass measured in the same run.
"""
from __future__ import annotations

import argparse
import time

import torch

import spikescope
from spikescope.data import load_dataset, make_loader
from spikescope.metrics.energy import Energy
from spikescope.metrics.firing import FiringRate
from spikescope.metrics.spectrum import Spectrum
from spikescope.metrics.temporal import TemporalSimilarity


def best_of(repeats: int, work) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        work()
        times.append(time.perf_counter() - started)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="fashion-mnist-sample", help="dataset (default: %(default)s)")
    parser.add_argument("--limit", type=int, default=1000)
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--model", default="baseline", choices=("baseline", "fsta"))
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    model, checkpoint = spikescope.load(spikescope.bundled_checkpoint(args.model))
    dataset = load_dataset(args.data, "test", limit=args.limit)
    batches = list(make_loader(dataset, args.batch_size))
    images = len(dataset)

    def plain() -> None:
        with torch.no_grad():
            for x, _ in batches:
                model(x)

    plain_s = best_of(args.repeats, plain)
    print(f"{args.model} model, {images} images ({dataset.name}), batch {args.batch_size}, "
          f"{torch.get_num_threads()} threads, best of {args.repeats}")
    print(f"{'pass':<28}{'seconds':>9}{'images/s':>10}{'ratio':>8}")
    print(f"{'plain forward':<28}{plain_s:>9.2f}{images / plain_s:>10.0f}{1.0:>8.2f}")
    variants = {"firing rate": [FiringRate], "DCT spectrum": [Spectrum], "temporal similarity": [TemporalSimilarity],
                "energy (SOPs)": [Energy], "all metrics": [FiringRate, Spectrum, TemporalSimilarity, Energy]}
    for name, metric_types in variants.items():
        seconds = best_of(args.repeats, lambda: spikescope.analyze(model, batches,
                                                                    metrics=[m() for m in metric_types]))
        print(f"{'analyze: ' + name:<28}{seconds:>9.2f}{images / seconds:>10.0f}{seconds / plain_s:>8.2f}")


if __name__ == "__main__":
    main()
