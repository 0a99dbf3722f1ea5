"""What FSTA costs: training and inference time against the same network without it, and its MACs.

    python benchmarks/fsta_overhead.py [--batches 12] [--batch-size 64] [--repeats 3] [--resnet]

Times one training step (forward, backward, Adam step) and one inference pass of the compact CNN
at T = 2 on Fashion-MNIST-sized input, with and without FSTA, interleaved and best of `--repeats`,
and prints each as a ratio to the baseline measured in the same run. `--resnet` adds ResNet-20 on
32x32 input (batch 16). It also prints FSTA's analytic MACs per image next to the baseline's
operations as `analyze` counts them (dense FLOPs of the network), for both networks.
"""
from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F

import spikescope
from spikescope.models import build


def step_time(model: torch.nn.Module, batches: list, train: bool) -> float:
    """Seconds for one pass over `batches`: training steps (forward, backward, Adam) or inference."""
    optimizer = torch.optim.Adam(model.parameters(), 1e-3)
    model.train(train)
    started = time.perf_counter()
    for images, labels in batches:
        if train:
            loss = F.cross_entropy(model(images), labels)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        else:
            with torch.no_grad():
                model(images)
    return time.perf_counter() - started


def operations(model: torch.nn.Module, shape: tuple[int, ...]) -> tuple[float, float]:
    """`(FSTA MACs, every other layer's dense FLOPs)` per image, as the energy metric counts them."""
    energy = spikescope.analyze(model, [torch.randn(2, *shape)], T=model.T).energy
    fsta = energy["kind"] == "fsta"
    rest = energy[~fsta]
    spikes = rest["input"] == "spikes"  # paper-style SOPs = fr_in x T x FLOPs, so FLOPs = SOPs(approx.) / fr_in
    dense = rest.loc[~spikes, "macs_per_image"].sum() + (rest.loc[spikes, "sops_approx_per_image"]
                                                          / rest.loc[spikes, "input_firing_rate"]).sum()
    return float(energy.loc[fsta, "macs_per_image"].sum()), float(dense)


def compare(name: str, arch: str, kwargs: dict, shape: tuple[int, ...], batch_size: int, count: int,
            repeats: int) -> None:
    generator = torch.Generator().manual_seed(0)
    batches = [(torch.randn(batch_size, *shape, generator=generator),
                torch.randint(0, 10, (batch_size,), generator=generator)) for _ in range(count)]
    models = {arm: build(arch, **kwargs, fsta=arm == "FSTA") for arm in ("baseline", "FSTA")}
    print(f"\n{name}, T={kwargs['T']}, input {list(shape)}, batch {batch_size}, {count} batches, "
          f"{torch.get_num_threads()} threads, best of {repeats} (interleaved)")
    for train in (True, False):
        best = {arm: float("inf") for arm in models}
        for _ in range(repeats):
            for arm, model in models.items():
                best[arm] = min(best[arm], step_time(model, batches, train))
        per_image = {arm: 1000 * seconds / (batch_size * count) for arm, seconds in best.items()}
        print(f"  {'training' if train else 'inference':<10} baseline {per_image['baseline']:.2f} ms/image, "
              f"FSTA {per_image['FSTA']:.2f} ms/image: ratio {best['FSTA'] / best['baseline']:.2f}")
    fsta_macs, dense = operations(models["FSTA"].eval(), shape)
    print(f"  FSTA {fsta_macs / 1e6:.2f} M MACs per image against {dense / 1e6:.2f} M dense FLOPs of the rest "
          f"({100 * fsta_macs / dense:.1f} %)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batches", type=int, default=12)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--resnet", action="store_true", help="also ResNet-20 on 32x32 input")
    args = parser.parse_args()
    torch.manual_seed(0)
    compare("compact CNN", "compact_cnn", {"T": 2}, (1, 28, 28), args.batch_size, args.batches, args.repeats)
    if args.resnet:
        compare("ResNet-20", "resnet20", {"T": 2}, (3, 32, 32), 16, max(2, args.batches // 4), args.repeats)


if __name__ == "__main__":
    main()
