"""How long `compare` takes against analysing each of its models alone, on the same images.

    python benchmarks/compare_passes.py [--models baseline,fsta] [--data fashion-mnist-sample] [--limit 1000]
                                        [--repeats 3]

The baseline is the sum of `analyze_file` over the models (each model's pass alone, every metric, no
report); `compare` runs those models, writes its report, and measures the CKA between their layers. Both
run in turns, best of `--repeats` each, so that a machine's drift hits both alike. A `compare` that ran
every model twice (once alone, once in lockstep for the CKA) shows a ratio near 2; one pass per model
near 1 plus the report.
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import spikescope
from spikescope.pipeline import analyze_file


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default="baseline,fsta", help="bundled models (default: %(default)s)")
    parser.add_argument("--data", default="fashion-mnist-sample", help="dataset (default: %(default)s)")
    parser.add_argument("--limit", type=int, default=1000, help="test images (default: %(default)s)")
    parser.add_argument("--repeats", type=int, default=3, help="best of N (default: %(default)s)")
    args = parser.parse_args()
    paths = [spikescope.bundled_checkpoint(name) for name in args.models.split(",")]
    alone, together = [], []
    with tempfile.TemporaryDirectory() as folder:
        for repeat in range(args.repeats):
            started = time.perf_counter()
            for path in paths:
                analyze_file(path, data=args.data, limit=args.limit, capture=0)
            alone.append(time.perf_counter() - started)
            started = time.perf_counter()
            spikescope.compare(paths, data=args.data, limit=args.limit, out=Path(folder) / f"c{repeat}")
            together.append(time.perf_counter() - started)
    print(f"{len(paths)} models, {args.limit} images of {args.data}, best of {args.repeats}")
    print(f"  each model analysed alone (sum): {min(alone):6.2f} s")
    print(f"  compare (with CKA and report):   {min(together):6.2f} s   ratio {min(together) / min(alone):.2f}")


if __name__ == "__main__":
    main()
