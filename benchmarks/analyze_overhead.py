"""How much slower `analyze` (all metrics) is than a plain forward pass over the same images.

    python benchmarks/analyze_overhead.py [--data fashion-mnist] [--limit 2048] [--batch-sizes 32,64,128,256]
                                          [--model fsta] [--metrics] [--repeats 5]

For every batch size, the plain pass and `analyze` run in turns (plain, analyze, plain, analyze, ...)
so that a machine's drift hits both alike, and the best time of each is kept. Prints images/s and the
ratio to the plain pass measured in the same run; `--metrics` adds each metric alone.
"""
from __future__ import annotations

import argparse
import time
from typing import Callable

import torch

import spikescope
from spikescope.data import load_dataset, make_loader
from spikescope.metrics.cka import TimestepCKA
from spikescope.metrics.energy import Energy
from spikescope.metrics.firing import FiringRate
from spikescope.metrics.spectrum import Spectrum
from spikescope.metrics.temporal import TemporalSimilarity
from spikescope.record import default_metrics

ALL = [type(metric) for metric in default_metrics()]  # what `analyze` measures by default
ALONE = {"firing rate": [FiringRate], "DCT spectrum": [Spectrum], "temporal similarity": [TemporalSimilarity],
         "linear CKA": [TimestepCKA], "energy (SOPs)": [Energy]}


def seconds(work: Callable[[], object]) -> float:
    started = time.perf_counter()
    work()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="fashion-mnist-sample", help="dataset (default: %(default)s)")
    parser.add_argument("--limit", type=int, default=2048)
    parser.add_argument("--batch-sizes", default="32,64,128,256", help="comma-separated (default: %(default)s)")
    parser.add_argument("--model", default="baseline", choices=("baseline", "fsta"))
    parser.add_argument("--metrics", action="store_true", help="also time each metric alone")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    model, _ = spikescope.load(spikescope.bundled_checkpoint(args.model))
    dataset = load_dataset(args.data, "test", limit=args.limit)
    images = len(dataset)
    print(f"{args.model} model, {images} images ({dataset.name}), {torch.get_num_threads()} threads, "
          f"plain and analyze in turns, best of {args.repeats}")
    print(f"{'batch':>6}  {'pass':<28}{'seconds':>9}{'images/s':>10}{'ratio':>8}")
    for batch_size in map(int, args.batch_sizes.split(",")):
        batches = list(make_loader(dataset, batch_size))

        def plain() -> None:
            with torch.no_grad():
                for x, _ in batches:
                    model(x)

        variants = {"all metrics": ALL, **(ALONE if args.metrics else {})}
        work = {"plain forward": plain, **{
            f"analyze: {name}": (lambda kinds=kinds: spikescope.analyze(model, batches, metrics=[k() for k in kinds]))
            for name, kinds in variants.items()}}
        best = {name: seconds(run) for name, run in work.items()}  # the first round warms up and counts too
        for _ in range(args.repeats - 1):
            for name, run in work.items():
                best[name] = min(best[name], seconds(run))
        for name, taken in best.items():
            print(f"{batch_size:>6}  {name:<28}{taken:>9.2f}{images / taken:>10.0f}"
                  f"{taken / best['plain forward']:>8.2f}")


if __name__ == "__main__":
    main()
