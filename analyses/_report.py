"""Writing a study's report folder: a README with the verdict, tables, PNG figures, one shared plotly.js."""
from __future__ import annotations

import math
import os
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
from plotly.offline import get_plotlyjs  # noqa: E402

import spikescope  # noqa: E402
from spikescope.models.resnet import BasicBlock  # noqa: E402
from spikescope.neurons import LIF  # noqa: E402
from _recipe import report_folder  # noqa: E402

SHARED_PLOTLY = "plotly.min.js"  # one copy in reports/, loaded by every comparison page below it


def study_folder(args, study: str) -> Path:
    """The study's report folder for the network of `args` (`_recipe.report_folder`), created, with the shared
    plotly.js in `reports/`."""
    folder = report_folder(args, study)
    folder.mkdir(parents=True, exist_ok=True)
    shared = Path(args.reports) / SHARED_PLOTLY
    if not shared.exists():
        shared.write_text(get_plotlyjs())
    return folder


def compare_groups(groups: dict, args, study: str, membrane: bool = False, energy: str = "fp32",
                   folder: str = "comparison") -> tuple[spikescope.Comparison, dict]:
    """The groups' comparison on the study's test images (with membrane potentials if asked, under the `energy`
    model), written to `reports/<study>/<folder>/` (loading the shared plotly.js), and its statistics."""
    out = study_folder(args, study) / folder
    shared = Path(os.path.relpath(Path(args.reports) / SHARED_PLOTLY, out)).as_posix()
    comparison, _ = spikescope.compare(groups=groups, limit=args.test_limit, device=args.device, energy=energy,
                                       out=out, membrane=membrane, plotly_js=shared,
                                       command=f"python analyses/{study}.py")
    return comparison, comparison.statistics()


def interval(summary: dict, scale: float = 1.0, digits: int = 3, unit: str = "",
             bounds: tuple[float, float] = (-math.inf, math.inf)) -> str:
    """`mean [low, high] (n=...)` of a `summarize` result, the interval clipped to `bounds` (a correlation's
    [-1, 1]); the mean alone when there is no interval."""
    mean = summary["mean"] * scale
    if summary["n"] > 1 and not math.isnan(summary["ci_low"]):
        low, high = max(summary["ci_low"], bounds[0]) * scale, min(summary["ci_high"], bounds[1]) * scale
        return f"{mean:.{digits}f}{unit} [{low:.{digits}f}, {high:.{digits}f}] (n={summary['n']})"
    return f"{mean:.{digits}f}{unit} (n={summary['n']})"


def markdown_table(frame: pd.DataFrame) -> str:
    """A GitHub-flavoured markdown table of `frame` (cells as they are)."""
    header = "| " + " | ".join(map(str, frame.columns)) + " |"
    rule = "|" + "|".join("---" for _ in frame.columns) + "|"
    rows = ["| " + " | ".join(str(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join([header, rule, *rows])


def save_figure(fig: plt.Figure, path: Path) -> str:
    """Save `fig` as a PNG and return the markdown that shows it."""
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)
    return f"![{path.stem}]({path.name})"


def verdict(low: float, high: float, predicted_sign: int) -> str:
    """Supported if the 95% CI lies on the predicted side of 0, contradicted if on the other, else inconclusive."""
    if math.isnan(low) or math.isnan(high):
        return "inconclusive (no interval)"
    if predicted_sign * low > 0 and predicted_sign * high > 0:
        return "supported"
    if predicted_sign * low < 0 and predicted_sign * high < 0:
        return "contradicted"
    return "inconclusive (the interval includes 0)"


def layer_roles(model) -> dict[str, str]:
    """Each spiking layer's place in a residual network: a block's output neurons fire on the sum of the residual
    branch and the shortcut, its inner neurons on the branch alone, the rest (stem) on a plain convolution.
    Empty for a network without residual blocks, whose layers need no such label."""
    roles = {}
    for name, module in model.named_modules():
        if isinstance(module, BasicBlock):
            roles[f"{name}.conv_bn_lif.lif"] = "block inner"
            roles[f"{name}.lif"] = "block output (residual sum)"
    if not roles:
        return {}
    return {name: roles.get(name, "stem") for name, module in model.named_modules() if isinstance(module, LIF)}


def with_roles(rows: list[dict], roles: dict[str, str]) -> list[dict]:
    """`rows` (each with a "layer") with the layer's role next to it, where the network has roles."""
    if not roles:
        return rows
    return [{key: value for key, value in row.items() if key == "layer"} | {"role": roles.get(row["layer"], "–")}
            | {key: value for key, value in row.items() if key != "layer"} for row in rows]
