"""What FSTA costs: training and inference time against the same network without it, and its MACs.

    python benchmarks/fsta_overhead.py [--batches 12] [--batch-size 64] [--repeats 3] [--resnet] [--threads 1]

Times training steps (forward, backward, Adam step) and inference passes of the compact CNN at T = 2 on
Fashion-MNIST-sized input, with and without FSTA, and prints FSTA's time as a ratio to the baseline's.
The two arms alternate step by step (which goes first alternates too), and each batch counts at its best
of `--repeats`, so a machine shared with other jobs slows both arms alike. `--resnet` adds ResNet-20 on
32x32 input (batch 8, a quarter of the batches). It also prints FSTA's analytic MACs per image, as the
design equations are written and as `FSTA.macs` counts what the module computes, next to the baseline's
dense operations as `analyze` counts them.
"""
from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F
from torch import nn

import spikescope
from spikescope.fsta import FSTA
from spikescope.models import build

EPOCH_IMAGES = {"compact_cnn": 60_000, "resnet20": 50_000}  # training sets: Fashion-MNIST, CIFAR-10


def step(model: nn.Module, optimizer: torch.optim.Optimizer, images: torch.Tensor, labels: torch.Tensor,
         train: bool) -> float:
    """Seconds for one training step (forward, backward, Adam) or one inference pass."""
    started = time.perf_counter()
    if train:
        loss = F.cross_entropy(model(images), labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    else:
        with torch.no_grad():
            model(images)
    return time.perf_counter() - started


def interleaved_best(models: dict[str, nn.Module], batches: list, train: bool, repeats: int) -> dict[str, float]:
    """Seconds per pass over `batches` for each model: every batch at its best over `repeats`, the models'
    steps alternating (and which goes first alternating) so that a load from other jobs hits them alike."""
    optimizers = {arm: torch.optim.Adam(model.parameters(), 1e-3) for arm, model in models.items()}
    for model in models.values():
        model.train(train)
    best = {arm: [float("inf")] * len(batches) for arm in models}
    for repeat in range(repeats + 1):  # the first round warms up and is not counted
        for index, (images, labels) in enumerate(batches):
            order = list(models) if (repeat + index) % 2 else list(models)[::-1]
            for arm in order:
                seconds = step(models[arm], optimizers[arm], images, labels, train)
                if repeat:
                    best[arm][index] = min(best[arm][index], seconds)
    return {arm: sum(times) for arm, times in best.items()}


def direct_macs(fsta: FSTA, shape: tuple[int, ...]) -> int:
    """MACs per sample of the design equations (docs/metrics.md, "FSTA") evaluated as written, for one FSTA
    fed `[T, B, *shape]`: descriptors, time mixing and the temporal gate per element, the `k*k` DCT filters of
    `k*k` taps, the fusion convolutions, the spatial gate per element and the fusion `(m X_t + n X_s) / 2`."""
    channels, height, width = (tuple(shape) + (1, 1))[:3]
    elements, pixels = fsta.T * channels * height * width, height * width
    total = 2 * elements
    if fsta.branches != "spatial":
        total += 2 * elements + fsta.T * fsta.T * channels + elements
    if fsta.branches != "temporal":
        fusion = sum(m.weight.numel() for m in fsta.frequency_fusion.modules() if isinstance(m, nn.Conv2d))
        total += elements + fsta.dct_size ** 4 * pixels + fusion * pixels + elements
    return total


def operations(model: nn.Module, shape: tuple[int, ...]) -> tuple[float, float, float]:
    """`(FSTA MACs as the equations read, as FSTA computes them, every other layer's dense FLOPs)` per image."""
    seen: dict[FSTA, tuple[int, ...]] = {}

    def note_shape(module: FSTA, args: tuple) -> None:
        seen[module] = tuple(args[0].shape[2:])

    hooks = [m.register_forward_pre_hook(note_shape) for m in model.modules() if isinstance(m, FSTA)]
    energy = spikescope.analyze(model, [torch.randn(2, *shape)], T=model.T).energy
    for hook in hooks:
        hook.remove()
    fsta = energy["kind"] == "fsta"
    rest = energy[~fsta]
    spikes = rest["input"] == "spikes"  # paper-style SOPs = fr_in x T x FLOPs, so FLOPs = SOPs(approx.) / fr_in
    dense = rest.loc[~spikes, "macs_per_image"].sum() + (rest.loc[spikes, "sops_approx_per_image"]
                                                          / rest.loc[spikes, "input_firing_rate"]).sum()
    direct = sum(direct_macs(module, module_shape) for module, module_shape in seen.items())
    return float(direct), float(energy.loc[fsta, "macs_per_image"].sum()), float(dense)


def compare(name: str, arch: str, shape: tuple[int, ...], batch_size: int, count: int, repeats: int) -> None:
    generator = torch.Generator().manual_seed(0)
    batches = [(torch.randn(batch_size, *shape, generator=generator),
                torch.randint(0, 10, (batch_size,), generator=generator)) for _ in range(count)]
    models = {arm: build(arch, T=2, fsta=arm == "FSTA") for arm in ("baseline", "FSTA")}
    print(f"\n{name}, T=2, input {list(shape)}, batch {batch_size}, {count} batches, "
          f"{torch.get_num_threads()} threads, best of {repeats} per batch (arms interleaved step by step)")
    for train in (True, False):
        best = interleaved_best(models, batches, train, repeats)
        ms = {arm: 1000 * seconds / (batch_size * count) for arm, seconds in best.items()}
        times = f"baseline {ms['baseline']:.2f}, FSTA {ms['FSTA']:.2f} ms per image"
        if train:
            epoch = {arm: ms[arm] * EPOCH_IMAGES[arch] / 60_000 for arm in ms}
            times += f" (an epoch of {EPOCH_IMAGES[arch]} images: {epoch['baseline']:.1f}, {epoch['FSTA']:.1f} min)"
        print(f"  {'training' if train else 'inference':<9}  {times}: ratio {best['FSTA'] / best['baseline']:.2f}")
    direct, computed, dense = operations(models["FSTA"].eval(), shape)
    print(f"  FSTA MACs per image: {direct / 1e6:.2f} M in the original formulation (the equations as written), "
          f"{computed / 1e6:.2f} M now; the rest of the network {dense / 1e6:.2f} M dense FLOPs "
          f"(FSTA now {100 * computed / dense:.1f} % of that)")

def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batches", type=int, default=12)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--resnet", action="store_true", help="also ResNet-20 on 32x32 input")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads(),
                        help="intra-op threads (default: all cores); 1 gives steadier ratios on a loaded machine")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    compare("compact CNN", "compact_cnn", (1, 28, 28), args.batch_size, args.batches, args.repeats)
    if args.resnet:
        compare("ResNet-20", "resnet20", (3, 32, 32), 8, max(2, args.batches // 4), args.repeats)


if __name__ == "__main__":
    main()
