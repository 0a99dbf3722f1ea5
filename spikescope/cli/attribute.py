"""`spikescope attribute`: which input regions and timesteps drive a spiking network's predictions."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ..attribution import METHODS
from ..checkpoint import bundled_checkpoint
from ..data import DATASETS
from ..pipeline import attribute_checkpoint
from ..report.attribution import completeness_summary
from ..report.folder import check_output_folder, default_report_folder
from .analyze import layers_argument
from .common import DEVICE_HELP, add_model_flags, command_line, positive_int, warn_trust_pickle

EXAMPLES = """examples:
  spikescope attribute                                 # saliency of the bundled demo model on 16 sample images
  spikescope attribute runs/baseline/checkpoint.pt --method ig --samples 32
  spikescope attribute runs/fsta/checkpoint.pt --method gradcam --layer block3.lif --target label
  spikescope attribute runs/baseline/checkpoint.pt --method sam --layer block2.lif
  spikescope attribute sj_weights.pt --arch mypackage.models:my_snn --T 4 --time-first-input --method occlusion

methods: saliency, ig (integrated gradients), occlusion (attributions to the input; per timestep when the model
takes [T, B, ...] input, as spikescope's own models do); gradcam, layer-ig (attributions to one spiking layer's
spikes, per timestep); sam (spike activation maps, no gradients). Every method also shows the SAM of every layer.

outputs (in --out): report.html (+ plotly.min.js), attributions.npz, attribution.json
"""


def register(commands: argparse._SubParsersAction) -> dict[str, Callable[[argparse.Namespace], None]]:
    a = commands.add_parser("attribute", help="attribute predictions to input regions, timesteps and spikes",
                            epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter,
                            description="Attribute a trained SNN's predictions on test images with Captum (saliency, "
                                        "integrated gradients, occlusion, Grad-CAM, layer integrated gradients) or "
                                        "with spike activation maps, and write a report folder.")
    a.add_argument("checkpoint", nargs="?", help="model file (default: the bundled baseline demo model)")
    a.add_argument("--method", choices=METHODS, default="saliency", help="default: %(default)s")
    a.add_argument("--layer", help="spiking layer for gradcam, layer-ig and sam (default: the deepest one with 2D "
                                   "spike maps)")
    a.add_argument("--layers", default="all",
                   help="layers the recorder looks at, as in analyze: all, NAME,NAME or a regular expression (name "
                        "a neuron no framework declares, e.g. one silent on the images; default: %(default)s)")
    a.add_argument("--samples", type=positive_int, default=16, help="how many test images, from the first (default: "
                                                           "%(default)s)")
    a.add_argument("--target", default="pred", help="class attributed: pred (the prediction), label, or a class "
                                                    "index (default: %(default)s)")
    a.add_argument("--data", choices=DATASETS, help="dataset (default: the checkpoint's; the bundled sample for "
                                                    "the demo model)")
    a.add_argument("--data-root", help="folder holding the dataset files")
    a.add_argument("--device", default="cpu", help=DEVICE_HELP)
    a.add_argument("--out", help="output folder, written whole or not at all (default: reports/<checkpoint "
                                 "name>-<method>)")
    add_model_flags(a)
    return {"attribute": run_attribute}


def run_attribute(args: argparse.Namespace) -> None:
    warn_trust_pickle(args, args.checkpoint or "the bundled model")
    out = args.out
    if out is None:
        source = Path(args.checkpoint) if args.checkpoint else bundled_checkpoint("baseline")
        out = check_output_folder(default_report_folder("attribute", [source], args.method), "attribute")
        print(f"spikescope: report folder: {out}", file=sys.stderr)
    result, files = attribute_checkpoint(
        args.checkpoint, method=args.method, layer=args.layer, samples=args.samples, target=args.target, out=out,
        data=args.data, data_root=args.data_root, device=args.device, arch=args.arch, arch_kwargs=dict(args.arch_kw),
        T=args.T, trust_pickle=args.trust_pickle, time_first_input=args.time_first_input, fold=args.fold,
        batch_first=args.batch_first, tokens=args.tokens, layers=layers_argument(args.layers), command=command_line(),
        progress=True)
    scores = "" if result.infidelity is None else f", median infidelity {float(np.median(result.infidelity)):.3g}"
    images = len(result.images)
    print(f"{result.method}: {images} image{'' if images == 1 else 's'} in {result.seconds:.1f} s{scores}")
    completeness = result.info.get("completeness")
    if completeness:
        print(_coverage_line(completeness_summary(completeness)))
    print(f"report: {files['report.html']}")


def _coverage_line(completeness: dict[str, Any]) -> str:
    """The share of f(x) - f(baseline) that integrated gradients add up to, median and range over the images."""
    median, low, high = (completeness[f"covered_share_{key}"] for key in ("median", "min", "max"))
    if not np.isfinite(median):
        return "integrated gradients: f(x) - f(baseline) is 0 on every image, so no share can be given"
    return (f"integrated gradients cover {100 * median:.0f} % of f(x) - f(baseline) ({100 * low:.0f}-{100 * high:.0f} "
            "%; surrogate gradients: not a decomposition of the logit)")
