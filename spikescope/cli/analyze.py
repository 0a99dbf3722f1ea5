"""`spikescope analyze` and `spikescope evaluate`."""
from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path
from typing import Callable

from .. import distributed
from ..attribution import METHODS
from ..checkpoint import bundled_checkpoint
from ..errors import SpikescopeError
from ..energy.models import ENERGY_MODELS
from ..pipeline import analyze_checkpoint, evaluate_checkpoint
from ..report.folder import check_output_folder, default_report_folder
from ..summary import summary_table
from ..train import FIRING_RATE_DEFINITION
from .common import add_data_flags, add_model_flags, command_line, positive_int, warn_trust_pickle

ANALYZE_EXAMPLES = """examples:
  spikescope analyze                                   # the bundled demo model on the bundled sample
  spikescope analyze runs/baseline/checkpoint.pt --layers all --limit 1000
  spikescope analyze runs/fsta/checkpoint.pt --layers "block[1-3].lif" --energy int8 --png
  spikescope analyze runs/fsta/checkpoint.pt --energy lemaire2022     # memory too, beside the ANN twin
  spikescope analyze weights.pt --arch mypackage.models:my_snn --T 4 --data cifar10 --data-root ~/data
  spikescope analyze whole_model.pt --trust-pickle --data gratings
  spikescope analyze runs/baseline/checkpoint.pt --attribution gradcam --attribution-samples 16
  spikescope analyze runs/fsta/checkpoint.pt --membrane
  spikescope analyze runs/fsta/checkpoint.pt --neurobench --membrane   # NeuroBench's metrics in summary.json
  python -m torch.distributed.run --nproc_per_node=2 -m spikescope analyze runs/baseline/checkpoint.pt --limit 2000

Under torchrun, process r analyses batches r, r+N, ... and rank 0 writes the report of them all (the same
tables as one process; every process needs at least one batch).

outputs (in --out): report.html (+ plotly.min.js), layers.csv, timesteps.csv, channels.csv, energy.csv,
spectra.npz, similarity.npz, spikes.npz, summary.json, with --attribution attributions.npz and an Attribution
section, with --membrane membrane.npz and a Membrane potentials section, and with --png figures/*.png
"""

EVALUATE_EXAMPLES = """examples:
  spikescope evaluate                                  # the bundled demo model on the bundled sample
  spikescope evaluate runs/baseline/checkpoint.pt
  spikescope evaluate runs/baseline/checkpoint.pt --data fashion-mnist-sample --limit 500
"""


def register(commands: argparse._SubParsersAction) -> dict[str, Callable[[argparse.Namespace], None]]:
    a = commands.add_parser("analyze", help="record every spiking layer and write the HTML report",
                            epilog=ANALYZE_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter,
                            description="Run a trained SNN over a test set, record every spiking layer at every "
                                        "timestep (firing rates, 2D-DCT spectra, cross-timestep similarity, "
                                        "synaptic operations and energy) and write a report folder.")
    a.add_argument("checkpoint", nargs="?", help="model file (default: the bundled baseline demo model)")
    a.add_argument("--layers", default="all",
                   help="all, NAME,NAME,... or a regular expression; text of only letters, digits, _ and . is "
                        "one module name (default: all)")
    add_data_flags(a, batch_size=100, what="analyze")
    a.add_argument("--energy", choices=tuple(ENERGY_MODELS), default="fp32",
                   help="energy model: compute only (fp32, fp16, int8), or operations, addressing and memory "
                        "(lemaire2022; lemaire2022-paper with the paper's fan-outs) (default: %(default)s)")
    a.add_argument("--out", help="output folder, written whole or not at all; an existing one is replaced only if it "
                                 "is an analyze report holding only what it wrote (default: reports/<checkpoint "
                                 "name>, or the run folder's name for a generic file name such as checkpoint.pt)")
    a.add_argument("--png", action="store_true", help="also write static figures for papers (matplotlib)")
    add_model_flags(a)
    a.add_argument("--attribution", nargs="?", const="saliency", choices=METHODS, metavar="METHOD",
                   help="also attribute the first --attribution-samples images (METHOD: "
                        f"{', '.join(METHODS)}; default saliency) and measure every layer's mean spike activation "
                        "map; write --attribution=METHOD, or put the flag after the checkpoint")
    a.add_argument("--attribution-samples", type=positive_int, default=8, metavar="K", help="default: %(default)s")
    a.add_argument("--membrane", action="store_true",
                   help="also measure where membrane potentials sit relative to the threshold (spikescope, "
                        "SpikingJelly, snnTorch and sinabs neurons)")
    a.add_argument("--neurobench", action="store_true",
                   help="also measure NeuroBench's metrics in the same pass (activation sparsity, synaptic operations, "
                        "connection sparsity, footprint; membrane updates with --membrane), in summary.json")
    e = commands.add_parser("evaluate", help="accuracy and firing rate of a checkpoint on a test set",
                            epilog=EVALUATE_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    e.add_argument("checkpoint", nargs="?", help="a spikescope checkpoint (default: the bundled baseline demo model)")
    add_data_flags(e, batch_size=256, what="evaluate on")
    return {"analyze": run_analyze, "evaluate": run_evaluate}


def layers_argument(text: str) -> str | list[str]:
    """'all' and regular expressions stay strings; 'a,b' is a list of names, and so is one plain module name."""
    if "," not in text:
        return [text] if text != "all" and re.fullmatch(r"[\w.]+", text) else text
    names = [name for name in text.split(",") if name]
    if not names:
        raise SpikescopeError(f"--layers {text!r} names no layer")
    return names


def run_analyze(args: argparse.Namespace) -> None:
    distributed.init_from_environment(args.device)
    main = distributed.is_main()
    if main:
        warn_trust_pickle(args, args.checkpoint or "the bundled model")
    out = args.out
    if out is None:
        source = Path(args.checkpoint) if args.checkpoint else bundled_checkpoint("baseline")
        out = check_output_folder(default_report_folder("analyze", [source]), "analyze")
        if main:
            print(f"spikescope: report folder: {out}", file=sys.stderr)
    result, files = analyze_checkpoint(
        args.checkpoint, layers=layers_argument(args.layers), data=args.data, data_root=args.data_root,
        limit=args.limit, batch_size=args.batch_size, device=args.device, energy=args.energy, out=out, png=args.png,
        arch=args.arch, arch_kwargs=dict(args.arch_kw), T=args.T, trust_pickle=args.trust_pickle,
        time_first_input=args.time_first_input, fold=args.fold, batch_first=args.batch_first, tokens=args.tokens,
        attribution=args.attribution, attribution_samples=args.attribution_samples, membrane=args.membrane,
        neurobench=args.neurobench, command=command_line(),
        progress=True)
    if main:
        print(summary_table(result))
        print(f"report: {files['report.html']}")


def run_evaluate(args: argparse.Namespace) -> None:
    distributed.init_from_environment(args.device)
    result = evaluate_checkpoint(args.checkpoint, args.data, args.data_root, args.limit, args.batch_size,
                                 args.device, progress=True)
    if distributed.is_main():
        print(f"samples {result['samples']}: accuracy {result['accuracy']:.2%}, loss {result['loss']:.4f}, "
              f"firing rate {result['firing_rate']:.4f} ({FIRING_RATE_DEFINITION})")
