"""`spikescope compare`."""
from __future__ import annotations

import argparse
from typing import Callable

import sys

from ..compare import compare, default_comparison_folder, parse_groups
from ..errors import SpikescopeError
from ..energy.models import ENERGY_MODELS
from ..report.comparison import comparison_summary
from .analyze import layers_argument
from .common import add_data_flags, add_model_flags, command_line, warn_trust_pickle

EXAMPLES = """examples:
  spikescope compare runs/baseline/checkpoint.pt runs/fsta/checkpoint.pt --limit 2000
  spikescope compare a.pt b.pt --label before --label after --out reports/before-after
  spikescope compare runs/baseline/checkpoint.pt runs/fsta/checkpoint.pt --membrane
  spikescope compare --group baseline=runs/arms/baseline/seed0/checkpoint.pt,runs/arms/baseline/seed1/checkpoint.pt \\
                     --group fsta=runs/arms/fsta/seed0/checkpoint.pt,runs/arms/fsta/seed1/checkpoint.pt
  spikescope compare sj_a.pt sj_b.pt --arch mypackage.models:my_snn --T 4 --time-first-input --data cifar10

Every model is analysed on the same images (the first model's test set, or --data), all models in one pass
over them. The first model (or group) is the reference. With groups (seeds of one arm), every number comes
with its mean, 95% CI and number of seeds, and changes with a paired t-test that pairs the models by the
seed their checkpoints record. Model flags (--arch, --T, ...) apply to every model.
outputs (in --out): comparison.html (+ plotly.min.js), comparison.csv, comparison.json
"""


def group_argument(text: str) -> tuple[str, list[str]]:
    name, sep, members = text.partition("=")
    if not sep or not name or not members:
        raise argparse.ArgumentTypeError(f"expected NAME=a.pt,b.pt,..., got {text!r}")
    return name, [member for member in members.split(",") if member]


def register(commands: argparse._SubParsersAction) -> dict[str, Callable[[argparse.Namespace], None]]:
    c = commands.add_parser("compare", help="analyse several models on the same images, side by side",
                            epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter,
                            description="Analyse models (or groups of seeds) on the same images and write one "
                                        "report of their differences: per layer and in total, with confidence "
                                        "intervals and paired tests over seeds.")
    c.add_argument("checkpoints", nargs="*", help="model files, each its own group")
    c.add_argument("--label", action="append", default=[], help="a name per positional model (repeatable)")
    c.add_argument("--group", type=group_argument, action="append", default=[], metavar="NAME=a.pt,b.pt,...",
                   help="a group of models, e.g. one arm over seeds (repeatable)")
    add_data_flags(c, batch_size=100, what="analyze")
    c.add_argument("--layers", default="all", help="as for analyze (default: all)")
    c.add_argument("--energy", choices=tuple(ENERGY_MODELS), default="fp32",
                   help="energy model: compute only (fp32, fp16, int8), or operations, addressing and memory "
                        "(lemaire2022; lemaire2022-paper with the paper's fan-outs) (default: %(default)s)")
    c.add_argument("--membrane", action="store_true",
                   help="also compare where membrane potentials sit relative to the threshold")
    c.add_argument("--out", help="output folder, written whole or not at all; an existing one is replaced only if it "
                                 "is a comparison report (default: reports/compare-<first>-<last>)")
    add_model_flags(c)
    return {"compare": run_compare}


def run_compare(args: argparse.Namespace) -> None:
    groups = dict(args.group)
    if len(groups) != len(args.group):
        raise SpikescopeError("each --group needs its own name")
    out = args.out
    if out is None:
        out = default_comparison_folder(parse_groups(args.checkpoints, args.label, groups))
        print(f"spikescope: report folder: {out}", file=sys.stderr)
    warn_trust_pickle(args, "the model files")
    comparison, files = compare(args.checkpoints, args.label, groups, data=args.data, data_root=args.data_root,
                                limit=args.limit, batch_size=args.batch_size, device=args.device,
                                energy=args.energy, layers=layers_argument(args.layers), out=out,
                                membrane=args.membrane, command=command_line(), progress=True, arch=args.arch,
                                arch_kwargs=dict(args.arch_kw), T=args.T, trust_pickle=args.trust_pickle,
                                time_first_input=args.time_first_input, fold=args.fold, batch_first=args.batch_first,
                                tokens=args.tokens)
    print(comparison_summary(comparison, comparison.statistics()))
    print(f"report: {files['comparison.html']}")
