"""spikescope's operator costs beside SpikingJelly 2.0's own counters, on SpikingJelly's seven zoo models.

    python analyses/peer_counters.py [--reports reports]

Each model of `_spikingjelly_zoo` is built small, calibrated to fire 5-30 % in every neuron layer, and run once
under spikescope (`analyze` with the `Energy` metric) and once under SpikingJelly's `SynOpCounter` and
`MACCounter`. Writes `reports/peer-counters/table.md` and `table.csv`: per model and operator kind, spikescope's
SOPs (spike sums as events, and under the dense reading of spike sums) beside SpikingJelly's SynOps, both MACs;
per model, the share of energy in attention and in operations fed spike sums under the three readings
(spikescope's events, the dense-MAC reading of spike sums, paper-style fr x FLOPs), the calibrated firing
rates, the input size, T and the batch. A few minutes on a 2-core CPU.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

import _spikingjelly_zoo as zoo
import spikescope
from _report import markdown_table
from spikescope.energy.peers import SPIKINGJELLY_OPERATORS, side_by_side, spikingjelly_counts

READINGS = {"events": "energy_pj_per_image", "dense reading": "energy_pj_dense_reading_per_image",
            "fr x FLOPs": "energy_pj_approx_per_image"}
BATCH_NORM = "native_batch_norm"
HEADINGS = {"sops_per_image": "spikescope SOPs (events)",
            "sops_dense_reading_per_image": "spikescope SOPs (dense reading)",
            "synops_per_image": "SpikingJelly SynOps",
            "macs_dense_reading_per_image": "spikescope MACs (dense reading)",
            "macs_per_image": "SpikingJelly MACs"}
COMPARED = list(HEADINGS)


def agreeing(rows: pd.DataFrame) -> int:
    """Rows whose SOPs and MACs under the dense reading equal SpikingJelly's SynOps and MACs (relative 1e-9)."""
    def close(a: pd.Series, b: pd.Series) -> pd.Series:
        return (a - b).abs() <= 1e-9 * b.abs()
    return int((close(rows.sops_dense_reading_per_image, rows.synops_per_image)
                & close(rows.macs_dense_reading_per_image, rows.macs_per_image)).sum())


def measure(name: str) -> tuple[pd.DataFrame, dict]:
    """One model's comparison per operator kind and its summary (sizes, firing rates, energy shares)."""
    model, inputs, T = zoo.build(name)
    rates = zoo.calibrate(model, inputs)
    images = inputs.shape[1] if inputs.dim() == 5 else inputs.shape[0]
    result = spikescope.analyze(model, [inputs], T=T, metrics=[spikescope.Energy()])
    energy = result.energy
    both = side_by_side(energy, spikingjelly_counts(model, inputs), images)
    kinds = energy.groupby(["module", "operator"])["kind"].first()
    both["kind"] = [kinds.get((module, op), "batch norm" if op == BATCH_NORM else op)
                    for module, op in zip(both.module, both.operator)]
    both["counted by SpikingJelly"] = both["operator"].isin(SPIKINGJELLY_OPERATORS)
    by_kind = both.groupby(["kind", "counted by SpikingJelly"], as_index=False).agg(
        operators=("operator", lambda ops: ", ".join(sorted(set(ops)))), sites=("operator", "size"),
        **{c: (c, "sum") for c in COMPARED})
    shared = both[both["counted by SpikingJelly"]]
    summary = {
        "model": name, "input": "x".join(map(str, inputs.shape[-3:])), "T": T, "batch": images,
        "firing rate (mean, min-max)": f"{sum(rates.values()) / len(rates):.3f} "
                                       f"({min(rates.values()):.3f}-{max(rates.values()):.3f})",
        "neuron layers": len(rates),
        "rows agreeing": f"{agreeing(shared)}/{len(shared)}",
        "uncosted": len(result.info.get("uncosted", [])),
    }
    for reading, column in READINGS.items():
        total = energy[column].sum()
        summary[f"energy µJ ({reading})"] = total / 1e6
        summary[f"attention share ({reading})"] = energy.loc[energy.part == "attention", column].sum() / total
        summary[f"spike-sum share ({reading})"] = energy.loc[energy.input == "spike sums", column].sum() / total
    return by_kind.assign(model=name), summary


def markdown(summaries: pd.DataFrame, kinds: pd.DataFrame) -> str:
    """The report: the summary per model, then every operator kind beside SpikingJelly's counts."""
    shares = summaries.copy()
    for column in shares.columns:
        if "share" in column:
            shares[column] = shares[column].map(lambda x: f"{100 * x:.1f} %")
        elif "µJ" in column:
            shares[column] = shares[column].map(lambda x: f"{x:.2f}")
    numbers = kinds.copy()
    for column in COMPARED:
        numbers[column] = numbers[column].map(lambda x: f"{x:,.1f}")
    numbers["counted by SpikingJelly"] = numbers["counted by SpikingJelly"].map({True: "yes", False: "no"})
    numbers = numbers.rename(columns=HEADINGS)[["model", "kind", "operators", "counted by SpikingJelly", "sites",
                                                *HEADINGS.values()]]
    return "\n".join([
        "# spikescope beside SpikingJelly's SynOpCounter and MACCounter",
        "",
        "SpikingJelly 2.0's zoo at small sizes (analyses/_spikingjelly_zoo.py), untrained, BatchNorm calibrated so",
        "every neuron layer fires 5-30 % on the first images of the bundled Fashion-MNIST sample; one forward pass",
        "per model. `python analyses/peer_counters.py` regenerates this folder. Energies: FP32, 45 nm (4.6 pJ per",
        "MAC, 0.9 pJ per accumulate), per image, compute only.",
        "",
        "Readings: *events* is spikescope's convention (spikes and spike sums are events; a spike sum k costs k",
        "accumulates); *dense reading* prices operations fed spike sums as dense MACs, as SpikingJelly's MACCounter",
        "does; *fr x FLOPs* is the paper-style estimate. *Spike-sum share*: energy of operations fed spike sums.",
        "",
        "## Per model",
        "",
        markdown_table(shares),
        "",
        "## Per operator kind (per image)",
        "",
        "Where SpikingJelly counts the operator (mm, addmm, bmm, baddbmm, convolution), spikescope's SOPs under the",
        "dense reading equal its SynOps and spikescope's MACs under the dense reading equal its MACs, row by row",
        "(module and operator); *sites* counts the (module, operator) pairs of a kind. The other rows are",
        "conventions: spikescope costs sums, Hadamard products and reductions of spikes, which SpikingJelly does",
        "not count; SpikingJelly's MACCounter counts BatchNorm's affine step at inference, which spikescope folds",
        "into the weights.",
        "",
        markdown_table(numbers),
        "",
    ])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reports", default="reports", help="where the report goes (default: %(default)s)")
    args = parser.parse_args()
    measured = [measure(name) for name in zoo.NAMES]
    kinds = pd.concat([k for k, _ in measured], ignore_index=True)
    summaries = pd.DataFrame([s for _, s in measured])
    folder = Path(args.reports) / "peer-counters"
    folder.mkdir(parents=True, exist_ok=True)
    text = markdown(summaries, kinds)
    (folder / "table.md").write_text(text)
    columns = ["model", *[c for c in kinds.columns if c != "model"]]
    kinds[columns].merge(summaries, on="model").to_csv(folder / "table.csv", index=False)
    print(text)


if __name__ == "__main__":
    main()
