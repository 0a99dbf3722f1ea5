"""spikescope side by side with today's practice: SpikingJelly's OutputMonitor, numpy and scipy.fft.dctn.

    python benchmarks/practice.py [--sizes 1000,2000,4000,10000] [--batch-size 128] [--repeats 2]

On the bundled baseline and the first N Fashion-MNIST test images, it measures
  (a) the bare forward pass (torch.no_grad);
  (b) spikescope.analyze with every default metric;
  (c) today's practice done well: OutputMonitor(net, instance=LIF) keeps every spiking layer's output on the
      CPU; after the run each layer is stacked into one numpy array and analysed vectorised: firing rates per
      layer and timestep, DCT power per layer and timestep (scipy.fft.dctn, orthonormal type II), the
      orientation index (axis split), per-sample spike cosines between timesteps and exact SOPs,
checks that (b) and (c) agree, and prints the time ratios b/a and c/b and the peak memory of each method.

Every (method, size) runs in a fresh process (the script re-invokes itself with --worker); the methods
alternate; time and memory are each the lowest of --repeats runs. Time excludes imports and loading. Memory is
the peak resident set during the run (VmHWM, reset once the model and images are loaded) minus the resident
set at that point. ru_maxrss is not used: a child process starts with its parent's high-water mark (Linux carries
it across fork and exec), so it would report the parent's peak. (c) holds every output until the run ends:
a size at which its predicted peak exceeds 40% of MemAvailable is not run (the machine is shared), and its
time and memory there are extrapolated linearly from the sizes that ran, and marked so.

glibc's malloc moves its mmap threshold as a process runs, so the same run's peak varies by tens of MB. For
memory without that noise, run with MALLOC_MMAP_THRESHOLD_=131072 (the workers inherit it); every large
tensor is then a fresh mapping, which slows all three methods, so take times from a run without it.
"""
from __future__ import annotations

import argparse
import os
import pickle
import subprocess
import sys
import tempfile
import time
import types
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np
import scipy.fft
import torch
from torch import nn

import spikescope
from spikescope.data import load_dataset, make_loader
from spikescope.neurons import LIF

METHODS = {"a": "bare forward pass", "b": "spikescope.analyze, every default metric",
           "c": "OutputMonitor + numpy / scipy.fft.dctn"}
MEMORY_SHARE = 0.40  # (c) runs only while its predicted peak stays below this share of MemAvailable
# Before any (c) run its peak is predicted as this many times the recorded outputs: the outputs themselves,
# the largest layer stacked into one array, its DCT coefficients and scipy's work buffer (each at most 0.4x).
PRACTICE_PEAK_PER_OUTPUT_BYTE = 2.5
COST_TARGET = 1.5  # the target: (c) takes at least 1.5x as long as (b)
FLATNESS_TARGET = 0.10  # the issue's target: (b)'s peak varies by at most 10% across sizes
MB = 2 ** 20

# Which synaptic layer each spiking layer of the bundled CompactCNN feeds, and whether 2x2 max pooling lies
# between them: the wiring a researcher writes down to count SOPs from recorded outputs.
COMPACT_CNN_FEEDS = {"block1.lif": ("block2.conv", False), "block2.lif": ("block3.conv", True),
                     "block3.lif": ("block4.conv", False), "block4.lif": ("block5.conv", True),
                     "block5.lif": ("classifier", False)}


@dataclass
class Statistics:
    """What (b) and (c) both compute, per spiking layer (docs/metrics.md, "Firing rate", "2D-DCT spectrum",
    "Similarity across timesteps"), and exact SOPs per image per synaptic layer fed spikes."""

    firing_rate: dict[str, float]
    firing_rate_t: dict[str, np.ndarray]  # [T]
    power: dict[str, np.ndarray]  # [T, H, W], summed over samples and channels
    oi: dict[str, float]  # axis split, of the power summed over timesteps
    oi_t: dict[str, np.ndarray]  # [T]
    spike_cosine: dict[str, np.ndarray]  # [T, T]
    left_out: dict[str, np.ndarray]  # [T, T]
    sops_per_image: dict[str, float]


# (field, what it is, rtol, atol): counts are exact; float32 DCTs agree to float32 rounding, and the
# orientation index, a difference over a sum, gets an absolute floor of the same size.
CHECKS = (("firing_rate", "firing rate per layer", 1e-12, 0.0),
          ("firing_rate_t", "firing rate per timestep", 1e-12, 0.0),
          ("power", "DCT power per timestep", 1e-5, 0.0),
          ("oi", "orientation index (axis)", 1e-5, 1e-6),
          ("oi_t", "orientation index per timestep", 1e-5, 1e-6),
          ("spike_cosine", "spike cosine between timesteps", 1e-5, 0.0),
          ("left_out", "samples left out of the cosine", 0.0, 0.0),
          ("sops_per_image", "exact SOPs per image", 1e-12, 0.0))


def bare_forward(model: nn.Module, loader) -> None:
    """(a): the forward pass alone."""
    with torch.no_grad():
        for images, _ in loader:
            model(images)


def spikescope_statistics(model: nn.Module, loader) -> Statistics:
    """(b): `spikescope.analyze` with every default metric, reduced to the numbers (c) computes too."""
    result = spikescope.analyze(model, loader)
    layers = result.layers.set_index("layer")
    steps = {layer: rows.sort_values("t") for layer, rows in result.timesteps.groupby("layer")}
    return Statistics(
        firing_rate=layers["firing_rate"].to_dict(),
        firing_rate_t={layer: rows["firing_rate"].to_numpy() for layer, rows in steps.items()},
        power=dict(result.spectra),
        oi=layers["axis_OI"].to_dict(),
        oi_t={layer: rows["axis_OI"].to_numpy() for layer, rows in steps.items()},
        spike_cosine={layer: s["spike_cosine"] for layer, s in result.similarity.items()},
        left_out={layer: s["left_out"] for layer, s in result.similarity.items()},
        sops_per_image={r.layer: r.sops_per_image for r in result.energy.itertuples() if r.input == "spikes"})


def output_monitor_class() -> type:
    """SpikingJelly's OutputMonitor. Its module imports tensorboard for GPUMonitor alone; where tensorboard is
    not installed, a stand-in `torch.utils.tensorboard` lets the module import (OutputMonitor never uses it)."""
    try:
        from spikingjelly.activation_based.monitor import OutputMonitor
    except ModuleNotFoundError as error:
        if error.name != "tensorboard":
            raise
        stand_in = types.ModuleType("torch.utils.tensorboard")
        stand_in.SummaryWriter = None
        sys.modules["torch.utils.tensorboard"] = stand_in
        try:
            from spikingjelly.activation_based.monitor import OutputMonitor
        finally:
            del sys.modules["torch.utils.tensorboard"]
    return OutputMonitor


def practice_statistics(model: nn.Module, loader) -> Statistics:
    """(c): record every LIF output with OutputMonitor, then analyse each layer as one numpy array.

    Each layer's batches are freed once stacked, so the peak is all outputs plus one layer's working arrays.
    """
    monitor = output_monitor_class()(model, instance=LIF, function_on_output=lambda s: s.detach().cpu())
    with torch.no_grad():
        for images, _ in loader:
            model(images)
    monitor.remove_hooks()
    stats = Statistics(*({} for _ in fields(Statistics)))
    for layer in monitor.monitored_layers:
        indices = monitor.name_records_index[layer]
        spikes = np.concatenate([monitor.records[i].numpy() for i in indices], axis=1)  # [T, N, C, H, W]
        for i in indices:
            monitor.records[i] = None
        practice_layer(model, layer, spikes, stats)
    monitor.clear_recorded_data()
    return stats


def practice_layer(model: nn.Module, layer: str, spikes: np.ndarray, stats: Statistics) -> None:
    """Fill `stats` for one layer from its spikes `[T, N, C, H, W]` (float32, in {0, 1})."""
    T, N = spikes.shape[:2]
    per_step = spikes.sum(axis=(1, 2, 3, 4), dtype=np.float64)  # spikes at each timestep, exact
    neurons = spikes[0, 0].size
    stats.firing_rate[layer] = float(per_step.sum()) / (T * N * neurons)
    stats.firing_rate_t[layer] = per_step / (N * neurons)

    flat = spikes.reshape(T, N, -1)
    gram = np.array([[np.einsum("bn,bn->b", flat[t], flat[s]) for s in range(T)] for t in range(T)],
                    dtype=np.float64)  # [T, T, N] co-firing counts, exact in float32 below 2**24
    norms = np.sqrt(gram[np.arange(T), np.arange(T)])  # [T, N]
    denominator = norms[:, None, :] * norms[None, :, :]
    valid = denominator > 0  # a sample with no spike at t or t' is left out
    with np.errstate(invalid="ignore", divide="ignore"):
        stats.spike_cosine[layer] = np.where(valid, gram / denominator, 0.0).sum(axis=2) / valid.sum(axis=2)
    stats.left_out[layer] = (~valid).sum(axis=2)

    feeds, pooled = COMPACT_CNN_FEEDS[layer]
    inputs = spikes.reshape(T, N, spikes.shape[2], spikes.shape[3] // 2, 2, -1, 2).max(axis=(4, 6)) \
        if pooled else spikes
    counts = inputs.sum(axis=(0, 1), dtype=np.float64)  # input spikes per element, over time and samples
    synapse = model.get_submodule(feeds)
    fan_out = synapse.out_features if isinstance(synapse, nn.Linear) else conv_fan_out(synapse, *counts.shape[1:])
    stats.sops_per_image[feeds] = float((counts * fan_out).sum()) / N

    coefficients = scipy.fft.dctn(spikes, type=2, norm="ortho", axes=(-2, -1))
    power = np.square(coefficients, out=coefficients).sum(axis=(1, 2), dtype=np.float64)  # [T, H, W]
    stats.power[layer] = power
    stats.oi[layer] = axis_orientation_index(power.sum(axis=0))
    stats.oi_t[layer] = np.array([axis_orientation_index(p) for p in power])


def axis_orientation_index(power: np.ndarray) -> float:
    """OI of one `[H, W]` power spectrum, axis split: (E_vert - E_horz) / (E_vert + E_horz), NaN if both are 0."""
    vertical, horizontal = power[1:, 0].sum(), power[0, 1:].sum()
    return float((vertical - horizontal) / (vertical + horizontal)) if vertical + horizontal > 0 else float("nan")


def conv_fan_out(conv: nn.Conv2d, height: int, width: int) -> np.ndarray:
    """`[H, W]`: how many weights one input spike at each position meets in `conv` (zero padding)."""
    def taps(size: int, kernel: int, stride: int, padding: int, dilation: int) -> np.ndarray:
        outputs = (size + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1
        offset = np.arange(size)[:, None] + padding - dilation * np.arange(kernel)[None, :]  # output x stride
        return ((offset % stride == 0) & (offset >= 0) & (offset // stride < outputs)).sum(axis=1)

    geometry = list(zip(conv.kernel_size, conv.stride, conv.padding, conv.dilation))
    return conv.out_channels // conv.groups * np.outer(taps(height, *geometry[0]), taps(width, *geometry[1]))


def compare(b: Statistics, c: Statistics) -> list[tuple[str, float, float, bool]]:
    """Per check: what it compares, the largest relative difference (against atol where that is larger), rtol,
    and whether every entry of every layer agrees; layers or shapes that differ disagree."""
    rows = []
    for name, label, rtol, atol in CHECKS:
        ours, theirs = getattr(b, name), getattr(c, name)
        worst = 0.0 if set(ours) == set(theirs) else float("inf")
        for layer in set(ours) & set(theirs):
            x, y = np.asarray(ours[layer], dtype=np.float64), np.asarray(theirs[layer], dtype=np.float64)
            if x.shape != y.shape:
                worst = float("inf")
                continue
            difference = np.where(np.isnan(x) & np.isnan(y), 0.0, np.abs(x - y))  # NaN where one side only is NaN
            scale = np.maximum(np.abs(y), atol)
            with np.errstate(invalid="ignore", divide="ignore"):
                relative = np.where(difference == 0, 0.0, difference / scale)
            worst = max(worst, float(np.nan_to_num(relative, nan=np.inf, posinf=np.inf).max(initial=0.0)))
        rows.append((label, worst, rtol, worst <= rtol))
    return rows


def status_kb(field: str) -> int:
    """A `kB` field of /proc/self/status (VmRSS: resident set now; VmHWM: its peak)."""
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith(field + ":"))


def reset_peak_memory() -> bool:
    """Set this process's peak resident set (VmHWM) to its current one; False where the kernel refuses."""
    try:
        with open("/proc/self/clear_refs", "w") as clear_refs:
            clear_refs.write("5")
        return True
    except OSError:
        return False


RUNS = {"a": bare_forward, "b": spikescope_statistics, "c": practice_statistics}


def worker(method: str, size: int, batch_size: int, result_path: Path) -> None:
    """Run one method on the first `size` images in this fresh process; pickle time, memory and statistics."""
    model, _ = spikescope.load(spikescope.bundled_checkpoint("baseline"))
    model.eval()
    dataset = load_dataset("fashion-mnist", "test", limit=size)
    loader = make_loader(dataset, batch_size)
    output_monitor_class()  # imported before timing, as a script would at its top
    loaded_kb = status_kb("VmRSS")
    peak_reset = reset_peak_memory()
    bare_forward(model, [dataset[:batch_size]])  # warm-up: the same for every method, inside the memory window
    started = time.perf_counter()
    stats = RUNS[method](model, loader)
    seconds = time.perf_counter() - started
    result = {"seconds": seconds, "loaded_mb": loaded_kb / 1024, "peak_mb": status_kb("VmHWM") / 1024,
              "peak_reset": peak_reset, "stats": stats}
    result_path.write_bytes(pickle.dumps(result))


def output_bytes_per_image(model: nn.Module, image: torch.Tensor) -> tuple[int, list[str]]:
    """Bytes of spiking-layer outputs one image leaves in OutputMonitor, and the layers' shapes `T x C x H x W`."""
    monitor = output_monitor_class()(model, instance=LIF)
    bare_forward(model, [(image, None)])
    monitor.remove_hooks()
    shapes = [" x ".join(map(str, (r.shape[0], *r.shape[2:]))) for r in monitor.records]
    return sum(r.element_size() * r.numel() for r in monitor.records), shapes


def mem_available_mb() -> float:
    with open("/proc/meminfo") as meminfo:
        return next(int(line.split()[1]) for line in meminfo if line.startswith("MemAvailable:")) / 1024


def linear_fit(points: dict[int, float]) -> tuple[float, float]:
    """`(intercept, slope)` of a least-squares line through `{images: value}`; through 0 for a single point."""
    x, y = np.array(list(points), dtype=float), np.array(list(points.values()))
    if len(x) == 1:
        return 0.0, float(y[0] / x[0])
    slope, intercept = np.polyfit(x, y, 1)
    return float(intercept), float(slope)


def practice_would_not_fit(size: int, runs: dict[tuple[str, int], list[dict]], per_image: int) -> str | None:
    """Why (c) must not run at `size` (its predicted peak exceeds MEMORY_SHARE of MemAvailable), or None.

    The prediction is a line through the largest peaks (c) reached at the sizes it ran, or before any run,
    PRACTICE_PEAK_PER_OUTPUT_BYTE times the outputs it records.
    """
    measured = {s: max(r["peak_mb"] - r["loaded_mb"] for r in results) for (method, s), results in runs.items()
                if method == "c"}
    intercept, slope = linear_fit(measured) if measured else (0.0, PRACTICE_PEAK_PER_OUTPUT_BYTE * per_image / MB)
    predicted, limit = intercept + slope * size, MEMORY_SHARE * mem_available_mb()
    if predicted <= limit:
        return None
    return (f"(c) not run at {size:,} images: its predicted peak, +{predicted:,.0f} MB, exceeds "
            f"{MEMORY_SHARE:.0%} of MemAvailable ({limit:,.0f} MB)")


def run_worker(method: str, size: int, batch_size: int, folder: Path) -> dict:
    path = folder / f"{method}-{size}.pickle"
    command = [sys.executable, str(Path(__file__).resolve()), "--worker", method, str(size),
               "--batch-size", str(batch_size), "--result", str(path)]
    if subprocess.run(command).returncode != 0:
        raise SystemExit(f"the worker for ({method}) at {size:,} images failed; its error is printed above")
    return pickle.loads(path.read_bytes())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="1000,2000,4000,10000", help="numbers of images (default: %(default)s)")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=2, help="best of this many runs per method and size")
    parser.add_argument("--worker", nargs=2, metavar=("METHOD", "SIZE"), help=argparse.SUPPRESS)
    parser.add_argument("--result", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.worker[0], int(args.worker[1]), args.batch_size, args.result)
        return

    try:
        sizes = sorted({int(s) for s in args.sizes.split(",")})
    except ValueError:
        parser.error(f"--sizes must be whole numbers separated by commas, got {args.sizes!r}")
    available = len(load_dataset("fashion-mnist", "test"))
    if sizes[0] < 1 or sizes[-1] > available or args.repeats < 1 or args.batch_size < 1:
        parser.error(f"sizes must lie between 1 and {available:,} (the Fashion-MNIST test set); "
                     "--repeats and --batch-size must be positive")
    model, _ = spikescope.load(spikescope.bundled_checkpoint("baseline"))
    per_image, shapes = output_bytes_per_image(model.eval(), load_dataset("fashion-mnist", "test", limit=1)[:1][0])
    print(f"bundled baseline, first N Fashion-MNIST test images, batch {args.batch_size}, best of {args.repeats}; "
          f"{torch.get_num_threads()} torch threads, {os.cpu_count()} cores "
          f"({len(os.sched_getaffinity(0))} usable, load average {os.getloadavg()[0]:.1f}), "
          f"{mem_available_mb() / 1024:.1f} GB MemAvailable at start")
    print(f"(c) records {per_image / MB:.2f} MB of float32 outputs per image (spiking layers "
          f"{', '.join(shapes)}), kept until the run ends")
    for key, name in METHODS.items():
        print(f"  ({key}) {name}")

    started = time.perf_counter()
    runs: dict[tuple[str, int], list[dict]] = {}
    skipped: dict[int, str] = {}
    with tempfile.TemporaryDirectory(prefix="spikescope-practice-") as folder:
        for size in sizes:
            for repeat in range(args.repeats):
                for method in list(METHODS)[repeat % 3:] + list(METHODS)[:repeat % 3]:  # rotate the order
                    if method == "c" and repeat == 0 and (reason := practice_would_not_fit(size, runs, per_image)):
                        skipped[size] = reason
                        print(reason, file=sys.stderr, flush=True)
                    if method == "c" and size in skipped:
                        continue
                    result = run_worker(method, size, args.batch_size, Path(folder))
                    runs.setdefault((method, size), []).append(result)
                    print(f"[{time.perf_counter() - started:5.0f} s] ({method}) {size:,} images: "
                          f"{result['seconds']:.2f} s, peak +{result['peak_mb'] - result['loaded_mb']:,.0f} MB",
                          file=sys.stderr, flush=True)
    report(sizes, runs, skipped, time.perf_counter() - started)


def report(sizes: list[int], runs: dict[tuple[str, int], list[dict]], skipped: dict[int, str],
           elapsed: float) -> None:
    """Print the table of times, ratios and memory, the agreement check and the issue's targets."""
    seconds = {run: min(r["seconds"] for r in results) for run, results in runs.items()}
    growth = {run: min(r["peak_mb"] - r["loaded_mb"] for r in results) for run, results in runs.items()}
    total = {run: min(r["peak_mb"] for r in results) for run, results in runs.items()}
    ran = [s for s in sizes if s not in skipped]
    if ran and skipped:
        (t0, t1), (m0, m1) = (linear_fit({s: seconds[("c", s)] for s in ran}),
                              linear_fit({s: growth[("c", s)] for s in ran}))
        for size in skipped:
            seconds[("c", size)], growth[("c", size)] = t0 + t1 * size, m0 + m1 * size
    checks = {size: compare(runs[("b", size)][0]["stats"], runs[("c", size)][0]["stats"]) for size in ran}

    columns = {"(a) s": 9, "(b) s": 9, "(c) s": 10, "b/a": 7, "c/b": 8, "(a) MB": 9, "(b) MB": 9, "(c) MB": 10}
    print("\n" + f"{'images':>8}" + "".join(f"{name:>{width}}" for name, width in columns.items()) + "  (b) = (c)")
    for size in sizes:
        mark = "*" if size in skipped else ""
        a, b, c = seconds[("a", size)], seconds[("b", size)], seconds.get(("c", size))
        cells = [f"{a:.2f}", f"{b:.2f}", f"{mark}{c:.2f}" if c else "-", f"{b / a:.2f}",
                 f"{mark}{c / b:.2f}" if c else "-", f"+{growth[('a', size)]:,.0f}", f"+{growth[('b', size)]:,.0f}",
                 f"{mark}+{growth[('c', size)]:,.0f}" if c else "-"]
        agreement = ("yes" if all(row[3] for row in checks[size]) else "NO") if size in checks else "not run"
        print(f"{size:>8,}" + "".join(f"{cell:>{width}}" for cell, width in zip(cells, columns.values()))
              + f"  {agreement}")
    loaded = sorted({round(r["loaded_mb"]) for results in runs.values() for r in results})
    exact = all(r["peak_reset"] for results in runs.values() for r in results)
    print(f"s: seconds, the best run. MB: the peak resident set during the run minus the resident set once the model "
          f"and images were loaded ({'-'.join(f'{m:,}' for m in loaded[::max(len(loaded) - 1, 1)])} MB), the lowest "
          "over the runs" + ("" if exact else " (the kernel refused to reset the peak: it may include loading)"))
    time_spread = {run: max(r["seconds"] for r in rs) / seconds[run] for run, rs in runs.items()}
    memory_spread = {run: max(r["peak_mb"] - r["loaded_mb"] for r in rs) - growth[run] for run, rs in runs.items()}
    noisy, wide = max(time_spread, key=time_spread.get), max(memory_spread, key=memory_spread.get)
    print(f"noise between runs: time up to {time_spread[noisy]:.1f}x (({noisy[0]}) at {noisy[1]:,} images), "
          f"memory up to {memory_spread[wide]:,.0f} MB (({wide[0]}) at {wide[1]:,} images); "
          f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores at the end")
    for size, reason in skipped.items():
        print(f"* {reason}; its time and memory are extrapolated linearly from "
              f"{', '.join(f'{s:,}' for s in ran) or 'no size'} images")

    if checks:
        print(f"\n(b) against (c), worst relative difference over {', '.join(f'{s:,}' for s in checks)} images:")
        for i, (_, label, rtol, _) in enumerate(CHECKS):
            worst, agree = max(checks[s][i][1] for s in checks), all(checks[s][i][3] for s in checks)
            print(f"  {label:<34}{worst:>10.1e}  (rtol {rtol:.0e})  {'agree' if agree else 'DISAGREE'}")
        print("  check: " + ("PASSED" if all(row[3] for rows in checks.values() for row in rows) else "FAILED"))

    print("\ntargets")
    ratios = {s: seconds[("c", s)] / seconds[("b", s)] for s in ran}
    if ratios:
        slowest = min(ratios, key=ratios.get)
        verdict = "met" if ratios[slowest] >= COST_TARGET else "NOT met"
        print(f"  c/b >= {COST_TARGET} at every size (c) ran: {verdict} "
              f"(smallest {ratios[slowest]:.2f}, at {slowest:,} images)")
    noise = max(memory_spread[("b", s)] for s in sizes)  # the same run's peak differs by this much
    for name, peaks, unit in (("growth", growth, "+"), ("total peak", total, "")):
        values = [peaks[("b", s)] for s in sizes]
        spread = max(values) / min(values) - 1 if min(values) > 0 else float("inf")
        verdict = "met" if spread <= FLATNESS_TARGET else (
            "NOT met" if max(values) - min(values) > noise else "not met, but within the noise between runs")
        print(f"  (b)'s {name} flat within {FLATNESS_TARGET:.0%} from {sizes[0]:,} to {sizes[-1]:,} images: {verdict} "
              f"({unit}{min(values):,.0f} to {unit}{max(values):,.0f} MB, {spread:.1%}; repeated runs of (b) differ "
              f"by up to {noise:,.0f} MB)")
    print(f"\n{len(sizes)} sizes in {elapsed / 60:.1f} min")


if __name__ == "__main__":
    main()
