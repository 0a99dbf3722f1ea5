"""`spikescope frequency`: which 2D-DCT frequencies of each spiking layer's maps the decision uses."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Callable

import pandas as pd

from ..checkpoint import bundled_checkpoint
from ..frequency.bands import BAND_SETS, DEFAULT_BAND_SETS
from ..frequency.checkpoint import frequency_checkpoint
from ..frequency.result import FrequencyAblation
from ..report.folder import check_output_folder, default_report_folder
from .analyze import layers_argument
from .common import add_data_flags, add_model_flags, command_line, non_negative_int, positive_int, warn_trust_pickle

EXAMPLES = """examples:
  spikescope frequency                                 # the bundled demo model on the bundled sample, every band
  spikescope frequency runs/baseline/checkpoint.pt --bands axis --limit 500
  spikescope frequency runs/fsta/checkpoint.pt --layers block1.lif,block5.lif --bands axis,dc --draws 5
  spikescope frequency runs/baseline/checkpoint.pt --coefficients 3 --bands dc    # every coefficient of a 3x3 block
  spikescope frequency runs/baseline/checkpoint.pt --binarize   # the next layer sees spikes (threshold 0.5)

bands: axis (axis_vertical: variation along the height, i.e. horizontal stripes; axis_horizontal: along the width),
wedge (wedge_vertical, wedge_horizontal), radial (band_low, band_mid, band_high), dc. Each band is removed from one
layer's output at a time and read against --draws energy-matched controls (random coefficients removing the same
share of the layer's spectral power). The ablated maps are not binary unless --binarize. Definitions:
docs/metrics.md, "Frequency ablation".

outputs (in --out): report.html (+ plotly.min.js), effects.csv, controls.csv, frequency.json, ablation.npz
"""


def register(commands: argparse._SubParsersAction) -> dict[str, Callable[[argparse.Namespace], None]]:
    f = commands.add_parser("frequency", help="remove 2D-DCT bands from spiking layers and measure what the "
                                              "decision loses", epilog=EXAMPLES,
                            formatter_class=argparse.RawDescriptionHelpFormatter,
                            description="Remove each frequency band from each spiking layer's 2D maps on the way to "
                                        "the next layer, against energy-matched random controls, measure the change "
                                        "in accuracy, target logit and KL per image, and write a report folder.")
    f.add_argument("checkpoint", nargs="?", help="model file (default: the bundled baseline demo model)")
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
    add_data_flags(f, batch_size=100, what="ablate on")
    f.add_argument("--out", help="output folder, written whole or not at all; an existing one is replaced only if it "
                                 "is a frequency report holding only what it wrote (default: "
                                 "reports/<checkpoint name>-frequency)")
    add_model_flags(f)
    return {"frequency": run_frequency}


def run_frequency(args: argparse.Namespace) -> None:
    warn_trust_pickle(args, args.checkpoint or "the bundled model")
    out = args.out
    if out is None:
        source = Path(args.checkpoint) if args.checkpoint else bundled_checkpoint("baseline")
        out = check_output_folder(default_report_folder("frequency", [source]), "frequency")
        print(f"spikescope: report folder: {out}", file=sys.stderr)
    result, files = frequency_checkpoint(
        args.checkpoint, out=out, layers=layers_argument(args.layers), bands=args.bands,
        coefficients=args.coefficients, draws=args.draws, seed=args.seed, binarize=args.binarize, data=args.data,
        data_root=args.data_root, limit=args.limit, batch_size=args.batch_size, device=args.device, arch=args.arch,
        arch_kwargs=dict(args.arch_kw), T=args.T, trust_pickle=args.trust_pickle,
        time_first_input=args.time_first_input, fold=args.fold, batch_first=args.batch_first, tokens=args.tokens,
        command=command_line(), progress=True)
    print(summary_lines(result))
    print(f"report: {files['report.html']}")


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
    head = (f"frequency ablation of {len(result.layers)} layers on {info['images']} images in {info['seconds']:.1f} s "
            f"({info['draws']} control{'' if info['draws'] == 1 else 's'} per band, {maps} maps):")
    return head + "\n" + lines.to_string(index=False)


def _specific(row: tuple) -> str:
    """`+1.0 pp [-2.0, +4.0]`: a band's specific effect on accuracy and its interval, in percentage points."""
    return (f"{100 * row.accuracy_change_specific:+.1f} pp [{100 * row.accuracy_change_specific_ci_low:+.1f}, "
            f"{100 * row.accuracy_change_specific_ci_high:+.1f}]")
