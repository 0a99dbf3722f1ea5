"""`spikescope frequency`: which 2D-DCT frequencies of each spiking layer's maps the decision uses."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Callable

import pandas as pd

from .. import distributed
from ..checkpoint import bundled_checkpoint
from ..compare import parse_groups
from ..errors import SpikescopeError
from ..frequency.bands import BAND_SETS, DEFAULT_BAND_SETS
from ..frequency.checkpoint import frequency_checkpoint
from ..frequency.comparison import FrequencyComparison, compare_frequency, default_frequency_comparison_folder
from ..frequency.result import FrequencyAblation
from ..report.fsta_frequencies import reading
from ..report.folder import check_output_folder, default_report_folder
from .analyze import layers_argument
from .compare import group_argument
from .common import add_data_flags, add_model_flags, command_line, non_negative_int, positive_int, warn_trust_pickle

EXAMPLES = """examples:
  spikescope frequency                                 # the bundled demo model on the bundled sample, every band
  spikescope frequency runs/baseline/checkpoint.pt --bands axis --limit 500
  spikescope frequency runs/fsta/checkpoint.pt --layers block1.lif,block5.lif --bands axis,dc --draws 5
  spikescope frequency runs/baseline/checkpoint.pt --coefficients 3 --bands dc    # every coefficient of a 3x3 block
  spikescope frequency runs/baseline/checkpoint.pt --binarize   # the next layer sees spikes (threshold 0.5)
  spikescope frequency runs/fsta/checkpoint.pt --fsta --bands axis   # also the DCT bases FSTA's attention reads
  spikescope frequency runs/baseline/checkpoint.pt runs/fsta/checkpoint.pt --bands axis     # two models compared
  spikescope frequency --group baseline=runs/arms/baseline/seed0/checkpoint.pt,runs/arms/baseline/seed1/checkpoint.pt \
                       --group fsta=runs/arms/fsta/seed0/checkpoint.pt,runs/arms/fsta/seed1/checkpoint.pt --bands axis

bands: axis (axis_vertical: variation along the height, i.e. horizontal stripes; axis_horizontal: along the width),
wedge (wedge_vertical, wedge_horizontal), radial (band_low, band_mid, band_high), dc. Each band is removed from one
layer's output at a time and read against --draws energy-matched controls (random coefficients removing the same
share of the layer's spectral power). The ablated maps are not binary unless --binarize. Definitions:
docs/metrics.md, "Frequency ablation".

outputs (in --out): report.html (+ plotly.min.js), effects.csv, controls.csv, frequency.json, ablation.npz (and
fsta.csv with --fsta)
With several models or --group, every model is ablated on the same images and the report compares each band's
specific effect (band minus its controls) across groups, paired seed by seed as compare pairs them: report.html
(+ plotly.min.js), statistics.csv, models.csv, comparison.json (default: reports/compare-<first>-<last>-frequency).
"""


def register(commands: argparse._SubParsersAction) -> dict[str, Callable[[argparse.Namespace], None]]:
    f = commands.add_parser("frequency", help="remove 2D-DCT bands from spiking layers and measure what the "
                                              "decision loses", epilog=EXAMPLES,
                            formatter_class=argparse.RawDescriptionHelpFormatter,
                            description="Remove each frequency band from each spiking layer's 2D maps on the way to "
                                        "the next layer, against energy-matched random controls, measure the change "
                                        "in accuracy, target logit and KL per image, and write a report folder.")
    f.add_argument("checkpoints", nargs="*", help="model file (default: the bundled baseline demo model); several "
                                                  "files are compared, each its own group")
    f.add_argument("--label", action="append", default=[], help="a name per positional model, when comparing "
                                                                 "(repeatable)")
    f.add_argument("--group", type=group_argument, action="append", default=[], metavar="NAME=a.pt,b.pt,...",
                   help="a group of models to compare, e.g. one arm over seeds (repeatable)")
    f.add_argument("--layers", default="all",
                   help="all, NAME,NAME,... or a regular expression, as in analyze; layers without 2D maps are "
                        "skipped (default: all)")
    f.add_argument("--bands", default=",".join(DEFAULT_BAND_SETS),
                   help=f"band sets, comma-separated, from {', '.join(BAND_SETS)} (default: %(default)s)")
    f.add_argument("--coefficients", type=non_negative_int, default=0, metavar="K",
                   help="also remove every single coefficient of the K x K low-frequency block (default: 0, none)")
    f.add_argument("--draws", type=positive_int, default=3, metavar="N",
                   help="energy-matched controls per band (default: %(default)s)")
    f.add_argument("--seed", type=int, default=0, help="seed of the controls' random coefficients (default: "
                                                       "%(default)s)")
    f.add_argument("--binarize", action="store_true",
                   help="threshold the ablated maps at 0.5 so the next layer sees spikes (default: pass them on "
                        "real-valued)")
    f.add_argument("--fsta", action="store_true",
                   help="for a model with FSTA: also ablate each DCT basis of every FSTA module's spatial branch and "
                        "each temporal descriptor, and report which frequencies its attention draws on")
    add_data_flags(f, batch_size=100, what="ablate on")
    f.add_argument("--out", help="output folder, written whole or not at all; an existing one is replaced only if it "
                                 "is a frequency report holding only what it wrote (default: "
                                 "reports/<checkpoint name>-frequency)")
    add_model_flags(f)
    return {"frequency": run_frequency}


def run_frequency(args: argparse.Namespace) -> None:
    distributed.init_from_environment(args.device)
    if len(args.checkpoints) > 1 or args.group:
        run_comparison(args)
        return
    if args.label:
        raise SpikescopeError("--label names models that are compared: give two or more model files (or --group)")
    checkpoint = args.checkpoints[0] if args.checkpoints else None
    main = distributed.is_main()
    if main:
        warn_trust_pickle(args, checkpoint or "the bundled model")
    out = args.out
    if out is None:
        source = Path(checkpoint) if checkpoint else bundled_checkpoint("baseline")
        out = check_output_folder(default_report_folder("frequency", [source]), "frequency")
        if main:
            print(f"spikescope: report folder: {out}", file=sys.stderr)
    result, files = frequency_checkpoint(
        checkpoint, out=out, layers=layers_argument(args.layers), bands=args.bands,
        coefficients=args.coefficients, draws=args.draws, seed=args.seed, binarize=args.binarize, data=args.data,
        data_root=args.data_root, limit=args.limit, batch_size=args.batch_size, device=args.device, arch=args.arch,
        arch_kwargs=dict(args.arch_kw), T=args.T, trust_pickle=args.trust_pickle,
        time_first_input=args.time_first_input, fold=args.fold, batch_first=args.batch_first, tokens=args.tokens,
        command=command_line(), progress=True, fsta=args.fsta)
    if main:
        print(summary_lines(result))
        if result.fsta is not None:
            print("\n".join(reading(result.fsta, position) for position in result.fsta.positions))
        print(f"report: {files['report.html']}")


def run_comparison(args: argparse.Namespace) -> None:
    """Several models or groups: `compare_frequency`, then each group's axis bands against the reference."""
    groups = dict(args.group)
    if len(groups) != len(args.group):
        raise SpikescopeError("each --group needs its own name")
    if args.fsta:
        raise SpikescopeError("--fsta measures one model's FSTA modules: run it on each model file alone")
    main = distributed.is_main()
    out = args.out
    if out is None:
        out = default_frequency_comparison_folder(parse_groups(args.checkpoints, args.label, groups))
        if main:
            print(f"spikescope: report folder: {out}", file=sys.stderr)
    if main:
        warn_trust_pickle(args, "the model files")
    comparison, files = compare_frequency(
        args.checkpoints, args.label, groups, data=args.data, data_root=args.data_root, limit=args.limit,
        batch_size=args.batch_size, device=args.device, layers=layers_argument(args.layers), bands=args.bands,
        coefficients=args.coefficients, draws=args.draws, seed=args.seed, binarize=args.binarize, out=out,
        command=command_line(), progress=True, arch=args.arch, arch_kwargs=dict(args.arch_kw), T=args.T,
        trust_pickle=args.trust_pickle, time_first_input=args.time_first_input, fold=args.fold,
        batch_first=args.batch_first, tokens=args.tokens)
    if main:
        print(comparison_lines(comparison))
        print(f"report: {files['report.html']}")


def comparison_lines(comparison: FrequencyComparison) -> str:
    """Per group but the reference, layer and axis band (each band, without the axis set): the change of the band's
    specific effect on accuracy against the reference, in percentage points, with its interval and p-value."""
    stats = comparison.statistics()
    changes = stats[(stats["measure"] == "accuracy_change_specific") & (stats["group"] != comparison.reference)]
    axis = changes[changes["band"].isin(BAND_SETS["axis"])]
    shown = axis if len(axis) else changes
    lines = pd.DataFrame({
        "group": shown["group"], "layer": shown["layer"], "band": shown["band"],
        "specific effect": shown["mean"].map(lambda v: f"{100 * v:+.1f} pp"),
        "change [95 % CI]": [_change(r) for r in shown.itertuples()],
        "p": shown["p_value"].map(lambda v: "–" if pd.isna(v) else f"{v:.3g}") if "p_value" in shown else "–"})
    return (f"specific effect of removing each band on accuracy (band minus its controls), against "
            f"{comparison.reference}:\n" + lines.to_string(index=False))


def summary_lines(result: FrequencyAblation) -> str:
    """Per layer, the accuracy change of removing each axis band (each band, without the axis set) against its
    controls, in percentage points."""
    controls = result.against_controls()
    if not len(controls):
        return "no band has a matched control"
    axis = controls[controls["band"].isin(BAND_SETS["axis"])]
    shown = axis if len(axis) else controls[controls["kind"] == "band"]
    lines = pd.DataFrame({
        "layer": shown["layer"], "band": shown["band"],
        "power removed": shown["removed_power_share"].map(lambda v: f"{100 * v:.1f} %"),
        "accuracy change": shown["accuracy_change"].map(lambda v: f"{100 * v:+.1f} pp"),
        "controls": shown["accuracy_change_control"].map(lambda v: f"{100 * v:+.1f} pp"),
        "specific [95 % CI]": [_specific(r) for r in shown.itertuples()]})
    info = result.info
    maps = "binarized" if info["binarize"] else "real-valued"
    layers = f"{len(result.layers)} layer{'' if len(result.layers) == 1 else 's'}"
    head = (f"frequency ablation of {layers} on {info['images']} images in {info['seconds']:.1f} s "
            f"({info['draws']} control{'' if info['draws'] == 1 else 's'} per band, {maps} maps):")
    return head + "\n" + lines.to_string(index=False)


def _change(row: tuple) -> str:
    """`+1.0 pp [-2.0, +4.0]`, or the bare change where the groups are compared unpaired."""
    low, high = getattr(row, "change_ci_low", float("nan")), getattr(row, "change_ci_high", float("nan"))
    interval = "" if pd.isna(low) else f" [{100 * low:+.1f}, {100 * high:+.1f}]"
    return f"{100 * row.change_mean:+.1f} pp{interval}"


def _specific(row: tuple) -> str:
    """`+1.0 pp [-2.0, +4.0]`: a band's specific effect on accuracy and its interval, in percentage points."""
    return (f"{100 * row.accuracy_change_specific:+.1f} pp [{100 * row.accuracy_change_specific_ci_low:+.1f}, "
            f"{100 * row.accuracy_change_specific_ci_high:+.1f}]")
