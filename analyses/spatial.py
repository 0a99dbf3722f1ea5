"""Claim 1 of the FSTA paper: "shallow layers tend to focus on learning vertical variations, while deeper
layers gradually learn horizontal variations of features".

The wording has two readings, and both are tested: (a) "vertical variation" is variation along the height
(horizontal stripes; our orientation index OI > 0), (b) it is vertical edges or stripes (variation along
the width; OI < 0). Each reading is tested in a strict form (the sign of OI flips from the shallowest to the
deepest layer, in every seed) and a trend form (Spearman correlation of OI with depth, mean and 95% CI over
seeds). "Learn" needs references: the input images' own OI (depth 0), and the same architecture untrained
(the initial weights of the same seeds); the learned effect is trained minus untrained, per layer. The
verdict is also checked against a second definition of the spectrum (power of the channel-averaged map
instead of power per map), followed over training (the runs track 500 test images every epoch), and
controlled on a network trained on gratings, whose orientation content is known.

The claim is also tested functionally (_functional.py): each layer's vertical and horizontal bands are removed from
its spike maps on the way to the next layer, against energy-matched random controls, and the functional orientation
index FOI (> 0: the decision depends more on variation along the height, beyond the power removed) is judged by
depth with the same readings and rules, on the trained networks, the untrained ones and what training adds; a
network trained on gratings must depend on the band its stripes live in at every depth. KL is the primary measure
(an untrained network's accuracy sits at chance), the accuracy drop is reported beside it. Writes reports/spatial/.

    python analyses/spatial.py                       # defaults: about 10 minutes on an idle 2-core CPU
    python analyses/spatial.py --seeds 5 --limit 0 --epochs 10 --device cuda

Resumable: finished runs are kept (runs/studies/...), so a rerun only analyses.
"""
from __future__ import annotations

import dataclasses
import time

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch

import _functional as F
import spikescope
from _recipe import arguments, network_name, recipe, runs_folder
from _report import interval, layer_roles, markdown_table, save_figure, study_folder, verdict, with_roles

SPLITS = ("axis", "wedge")
OI_BOUNDS = {"trained": (-1, 1), "untrained": (-1, 1), "trained, channel-averaged spectrum": (-1, 1),
             "learned (trained − untrained)": (-2, 2)}  # intervals shown within the quantity's range
READINGS = {"a": ("variation along the height (OI > 0) shallow, along the width deep", +1),
            "b": ("vertical stripes (OI < 0) shallow, horizontal stripes deep", -1)}  # sign of the shallow OI
GRATINGS_TEST = 500  # the gratings networks' test images (their vertical- and horizontal-stripe ones are used)
RESIDUAL_NOTE = """Layers in depth order. A block's inner neurons fire on its first convolution alone; its output
neurons fire on the residual sum (second convolution plus shortcut), the stream the next block reads. The verdict
table also judges each kind of layer alone.

"""
ALL_LAYERS = "all"
GRATINGS_ABLATED = 150  # the first of them are ablated (about 100 stripe images): enough for their large effects


def test_loader(data: str, limit: int, labels: list[int] | None = None) -> torch.utils.data.DataLoader:
    """The first `limit` test images (optionally only those with one of `labels`), normalised as in training."""
    dataset = spikescope.load_dataset(data, "test", limit=limit)
    if labels is not None:
        dataset = dataset.take(torch.isin(dataset.labels, torch.tensor(labels)))
    return spikescope.make_loader(dataset, 100)


def orientation(model: torch.nn.Module, loader, channel_mean: bool = False) -> pd.DataFrame:
    """Per layer (in depth order): axis and wedge OI of one model on `loader`."""
    result = spikescope.analyze(model, loader, metrics=[spikescope.Spectrum(channel_mean=channel_mean)])
    return result.layers.set_index("layer")[["axis_OI", "wedge_OI"]]


def flips(oi: np.ndarray, shallow_sign: int) -> bool:
    """The sign flips from the shallowest to the deepest layer in the claimed direction."""
    return bool(shallow_sign * oi[0] > 0 and shallow_sign * oi[-1] < 0)


def judge(per_seed: list[np.ndarray], shallow_sign: int) -> dict:
    """Strict and trend forms of one reading over the seeds' OI-by-depth vectors."""
    strict = sum(flips(oi, shallow_sign) for oi in per_seed)
    trend = spikescope.summarize([spikescope.spearman(np.arange(len(oi)), oi) for oi in per_seed])
    return {"strict": f"{strict}/{len(per_seed)} seeds flip", "strict_ok": strict == len(per_seed),
            "trend": trend, "trend_verdict": verdict(trend["ci_low"], trend["ci_high"], -shallow_sign)}


def trend_cell(result: dict) -> str:
    """A judged trend as `Spearman mean [CI] (n): verdict`."""
    return f"{interval(result['trend'], digits=2, bounds=(-1, 1))}: {result['trend_verdict']}"


def ablations(runs: list, gratings_runs: list, config, args) -> tuple[dict, dict]:
    """The ablation tables (`_functional.ablation_table`, cached beside each run) of the trained and untrained
    networks by seed, and of the gratings networks on each kind of stripes."""
    bands, loader = ",".join(SPLITS), test_loader(config.data, args.ablation_images)
    tables = {"trained": [], "untrained": []}
    for seed, path in enumerate(runs):
        networks = {"trained": spikescope.load(path)[0],
                    "untrained": spikescope.initial_model(dataclasses.replace(config, seed=seed))}
        for network, model in networks.items():
            cache = F.cache_path(path.parent, network, args.ablation_images, bands, args.draws, seed)
            tables[network].append(F.ablation_table(model, loader, cache, bands, args.draws, seed))
    stripes_tables = {stripes: [] for stripes in F.STRIPES}
    for seed, path in enumerate(gratings_runs):
        model = spikescope.load(path)[0]
        for stripes, (label, _) in F.STRIPES.items():
            cache = F.cache_path(path.parent, stripes, GRATINGS_ABLATED, bands, args.draws, seed)
            stripes_tables[stripes].append(F.ablation_table(model, test_loader("gratings", GRATINGS_ABLATED, [label]),
                                                            cache, bands, args.draws, seed))
    return tables, stripes_tables


def layer_subsets(layers: list[str], roles: dict[str, str]) -> dict[str, list[int]]:
    """The layers a depth trend is judged over, as positions in `layers`: all of them, and in a residual network
    each kind of block neuron alone (`_report.layer_roles`; the stem is too short for a trend of its own)."""
    subsets = {ALL_LAYERS: list(range(len(layers)))}
    for role in sorted(set(roles.values()) - {"stem"}):
        subsets[f"{role} only"] = [index for index, layer in enumerate(layers) if roles[layer] == role]
    return subsets


def functional(tables: dict, stripes_tables: dict, folder, roles: dict[str, str]) -> tuple[str, bool, dict]:
    """Claim 1 tested functionally: FOI by depth judged per measure, split and reading like OI (trained, untrained,
    and what training adds); the report's section (`_functional.section`), the verdict per reading (KL, per split)
    and whether the gratings control passes."""
    found = {(split, measure): {network: [F.dependence(t, split, measure) for t in frames]
                                for network, frames in tables.items()} for split in SPLITS for measure in F.LOSSES}
    verdicts, headline = [], {}
    for (split, measure), frames in found.items():
        foi = {network: [f["FOI"].to_numpy() for f in fs] for network, fs in frames.items()}
        foi["learned"] = [t - u for t, u in zip(foi["trained"], foi["untrained"])]
        for subset, kept in layer_subsets(list(frames["trained"][0].index), roles).items():
            for reading, (_, sign) in READINGS.items():
                judged = {view: judge([v[kept] for v in vectors], sign) for view, vectors in foi.items()}
                result = F.functional_verdict(judged["trained"]["trend_verdict"],
                                              judged["learned"]["trend_verdict"])
                verdicts.append({"measure": measure, "split": split, **({"layers": subset} if roles else {}),
                                 "reading": reading, "trained: strict form": judged["trained"]["strict"],
                                 "Spearman(depth, FOI): trained": trend_cell(judged["trained"]),
                                 "untrained": trend_cell(judged["untrained"]),
                                 "learned (trained − untrained)": trend_cell(judged["learned"]), "verdict": result})
                if measure == "KL" and subset == ALL_LAYERS:
                    headline.setdefault(reading, []).append(f"{split} split: {result}")
    stripes_found = {split: {s: [F.dependence(t, split, "KL") for t in ts] for s, ts in stripes_tables.items()}
                     for split in SPLITS}
    return *F.section(found, stripes_found, pd.DataFrame(verdicts), folder, roles), headline


def tracks_figure(runs: list, path) -> tuple[str, pd.DataFrame]:
    """OI (axis) of every layer over training, mean over seeds; and the depth trend per epoch."""
    tracks = pd.concat([pd.read_csv(p.parent / "tracks.csv").assign(seed=i) for i, p in enumerate(runs)])
    mean = tracks.groupby(["epoch", "layer"], sort=False)["axis_OI"].mean().unstack()
    fig, ax = plt.subplots(figsize=(7, 3.2))
    for layer in mean.columns:
        ax.plot(mean.index, mean[layer], marker="o", label=layer)
    ax.axhline(0, color="#999999", linewidth=0.8)
    ax.set_xlabel("epoch (0 = untrained)")
    ax.set_ylabel("axis OI (mean over seeds)")
    ax.legend(frameon=False, fontsize=7, ncol=2)
    trends = [{"epoch": epoch, "Spearman(depth, axis OI)": interval(spikescope.summarize(
        [spikescope.spearman(rows["depth"], rows["axis_OI"]) for _, rows in group.groupby("seed")]), digits=2,
        bounds=(-1, 1))}
        for epoch, group in tracks.groupby("epoch")]
    return save_figure(fig, path), pd.DataFrame(trends)


def main() -> None:
    parser = arguments(__doc__)
    parser.add_argument("--ablation-images", type=int, default=400,
                        help="test images of the frequency ablations (default: %(default)s)")
    parser.add_argument("--draws", type=int, default=3,
                        help="energy-matched controls per band (default: %(default)s)")
    args = parser.parse_args()
    started = time.time()
    config = recipe(args)
    runs = spikescope.train_arms(config, ["baseline"], seeds=range(args.seeds),
                                 out=runs_folder(args, config))["baseline"]
    gratings_config = recipe(args, data="gratings", limit=None, test_limit=GRATINGS_TEST)
    gratings_runs = spikescope.train_arms(gratings_config, ["baseline"], seeds=range(args.seeds),
                                          out=runs_folder(args, gratings_config))["baseline"]
    folder = study_folder(args, "spatial")
    loader = test_loader(config.data, args.test_limit)
    images = spikescope.load_dataset(config.data, "test", limit=args.test_limit).images
    source = spikescope.image_orientation(images)

    views = {"trained": [], "untrained": [], "trained, channel-averaged spectrum": []}
    for seed, path in enumerate(runs):
        model = spikescope.load(path)[0]
        views["trained"].append(orientation(model, loader))
        views["untrained"].append(orientation(spikescope.initial_model(dataclasses.replace(config, seed=seed)),
                                              loader))
        views["trained, channel-averaged spectrum"].append(orientation(model, loader, channel_mean=True))
    layers = list(views["trained"][0].index)
    roles = layer_roles(spikescope.load(runs[0])[0])
    views["learned (trained − untrained)"] = [t - u for t, u in zip(views["trained"], views["untrained"])]

    oi_tables = []
    for view, frames in views.items():
        rows = [{"layer": "input images (depth 0)", **{f"OI ({s})": f"{source[f'{s}_OI']:+.3f}" for s in SPLITS}}]
        rows = with_roles(rows + [{"layer": layer, **{f"OI ({s})": interval(spikescope.summarize(
            [f.loc[layer, f"{s}_OI"] for f in frames]), digits=3, bounds=OI_BOUNDS[view]) for s in SPLITS}}
            for layer in layers], roles)
        shown = rows[1:] if view.startswith("learned") else rows  # a difference has no input row
        oi_tables.append(f"**{view}**\n\n{markdown_table(pd.DataFrame(shown))}\n")

    verdicts, supported = [], {}
    for view in views:
        for split in SPLITS:
            per_seed = [f[f"{split}_OI"].to_numpy() for f in views[view]]
            for reading, (meaning, sign) in READINGS.items():
                result = judge(per_seed, sign)
                verdicts.append({"view": view, "split": split, "reading": reading, "strict form": result["strict"],
                                 "Spearman(depth, OI)": interval(result["trend"], digits=2, bounds=(-1, 1)),
                                 "trend form": result["trend_verdict"]})
                if view == "trained":
                    supported.setdefault(reading, []).append((result["strict_ok"],
                                                              result["trend_verdict"] == "supported"))
                    for subset, kept in list(layer_subsets(layers, roles).items())[1:]:  # each kind of block neuron
                        alone = judge([oi[kept] for oi in per_seed], sign)
                        verdicts.append({"view": f"trained, {subset}", "split": split, "reading": reading,
                                         "strict form": alone["strict"], "Spearman(depth, OI)": interval(
                                             alone["trend"], digits=2, bounds=(-1, 1)),
                                         "trend form": alone["trend_verdict"]})
    overall = {}
    for reading, results in supported.items():
        trends = [r for r in verdicts if r["view"] == "trained" and r["reading"] == reading]
        if all(strict and trend for strict, trend in results):
            overall[reading] = "supported"
        elif all(trend for _, trend in results):
            overall[reading] = "partly supported (the trend with depth, not the sign flip)"
        elif any(r["trend form"] == "contradicted" for r in trends):
            overall[reading] = "not supported (no sign flip, and OI moves with depth the other way)"
        else:
            overall[reading] = "not supported in its strict form (no sign flip); its trend form is inconclusive"
    learned = {split: judge([f[f"{split}_OI"].to_numpy() for f in views["learned (trained − untrained)"]], -1)
               for split in SPLITS}  # sign -1: reading (b) predicts a rising OI
    untrained = {split: judge([f[f"{split}_OI"].to_numpy() for f in views["untrained"]], -1) for split in SPLITS}
    inherited = np.mean([abs(np.mean([f.loc[layers[0], f"{s}_OI"] for f in views["trained"]]) - source[f"{s}_OI"])
                         for s in SPLITS])

    tracks_png, trends = tracks_figure(runs, folder / "tracks.png")
    control = {"layer": ["input images (depth 0)", *layers]}  # one column per kind of stripes, layers in rows
    control_set = spikescope.load_dataset("gratings", "test", limit=GRATINGS_TEST)
    for name, label in (("vertical stripes", 0), ("horizontal stripes", 1)):
        control_loader = test_loader("gratings", GRATINGS_TEST, [label])
        source_oi = spikescope.image_orientation(control_set.images[control_set.labels == label])["axis_OI"]
        frames = [orientation(spikescope.load(p)[0], control_loader) for p in gratings_runs]
        control[name] = [f"{source_oi:+.3f}", *(interval(spikescope.summarize([f.loc[layer, "axis_OI"]
                                                                                 for f in frames]), digits=3,
                                                         bounds=(-1, 1)) for layer in layers)]
    control_rows = with_roles(pd.DataFrame(control).to_dict("records"), roles)
    negative = all((f[f"{s}_OI"] < 0).all() for f in views["trained"] for s in SPLITS)
    positive = all((f[f"{s}_OI"] > 0).all() for f in views["trained"] for s in SPLITS)
    signs = (f"Every layer of every trained network has OI {'< 0' if negative else '> 0'}, as the input images do "
             f"(OI {source['axis_OI']:+.3f}): no sign flips at all." if negative or positive else
             "The sign of OI varies between layers or seeds; see the tables.")
    learned_rises = any(learned[s]["trend_verdict"] == "supported" for s in SPLITS)
    untrained_rises = untrained["axis"]["trend_verdict"] == "supported" or untrained["wedge"]["trend_verdict"] \
        == "supported"
    origin = ("The untrained networks show the depth trend too, and what training adds does not rise with depth: "
              "the trend comes with the architecture (smaller maps, pooling), not with learning."
              if untrained_rises and not learned_rises else
              "What training adds rises with depth: the trend is learned." if learned_rises else
              "Neither the untrained networks nor what training adds show a clear depth trend.")
    ablating = time.time()
    section, control_passes, functional_verdicts = functional(*ablations(runs, gratings_runs, config, args), folder,
                                                              roles)
    ablation_minutes = (time.time() - ablating) / 60
    minutes = (time.time() - started) / 60
    verdict_line = "; ".join(f"reading ({r}): **{v}**" for r, v in overall.items())
    functional_line = "; ".join(f"reading ({r}): {', '.join(v)}" for r, v in functional_verdicts.items())
    readme = f"""# Claim 1: "shallow layers learn vertical variations, deeper layers horizontal ones"

**Verdict** (trained networks, both splits): {verdict_line}.

**Functional verdict** (what the decision depends on: FOI by depth, KL, against the untrained networks):
{functional_line}. Gratings control: {"passes" if control_passes else "FAILS"}.
- Reading (a): {READINGS['a'][0]}. Reading (b): {READINGS['b'][0]}.
- {signs}
- Depth trend of OI (Spearman, axis split): trained
  {interval(judge([f['axis_OI'].to_numpy() for f in views['trained']], -1)['trend'], digits=2, bounds=(-1, 1))},
  untrained {interval(untrained['axis']['trend'], digits=2, bounds=(-1, 1))}, learned (trained minus untrained)
  {interval(learned['axis']['trend'], digits=2, bounds=(-1, 1))} (wedge split:
  {interval(learned['wedge']['trend'], digits=2, bounds=(-1, 1))}). {origin}
- The input images themselves have OI {source['axis_OI']:+.3f} (axis) and {source['wedge_OI']:+.3f} (wedge), before
  any layer; the first layer's OI differs from the input's by {inherited:.3f} on average over both splits. The
  learned effect (trained minus untrained, same initial weights) and the channel-averaged spectrum are judged
  below with the same rules.

Rules: strict form = the shallowest layer's OI has the claimed sign and the deepest layer's the opposite one,
in every seed; trend form = Spearman correlation of OI with depth, supported when its 95% CI over seeds lies on
the claimed side of 0 (reading (a) predicts a falling OI, reading (b) a rising one), contradicted when it lies
on the other side, inconclusive otherwise. OI = (E_vert − E_horz) / (E_vert + E_horz) of the 2D-DCT power,
DC excluded (docs/metrics.md, "2D-DCT spectrum").

## Setting
- Data: Fashion-MNIST, the first {config.limit or 'all'} training images; analysed on the first
  {args.test_limit:,} test images. Control: the gratings dataset (2,000 training images of vertical,
  horizontal and diagonal stripes), analysed on its vertical-stripe and horizontal-stripe test images.
- Model: {network_name(config)} ({len(layers)} spiking layers), T = {config.T}; {config.epochs} epochs, Adam, peak
  learning rate {config.lr}, cosine schedule, batch {config.batch_size}; seeds
  {', '.join(map(str, range(args.seeds)))}; 500 test images tracked every epoch.
- Functional test: every spiking layer's axis and wedge bands removed (`spikescope.frequency_ablation`, maps not
  re-binarised) on the first {args.ablation_images:,} test images, {args.draws} energy-matched controls per band;
  the gratings networks on their vertical- and horizontal-stripe test images (of the first {GRATINGS_ABLATED}).
- Compute: {minutes:.0f} min in this run of the script, {ablation_minutes:.0f} min of it ablating (finished runs
  and ablation tables are reused).

## Orientation index per layer (mean [95% CI] over seeds)
{RESIDUAL_NOTE if roles else ""}{chr(10).join(oi_tables)}

## Verdicts per view, split, reading and form
{markdown_table(pd.DataFrame(verdicts))}

## Over training
{tracks_png}

{markdown_table(trends)}

## Control: a network trained on gratings (axis OI per layer, mean [95% CI] over seeds)
{markdown_table(pd.DataFrame(control_rows))}

If the spectrum measures orientation faithfully, vertical stripes give negative and horizontal stripes
positive OI at every depth.

{section}
## What this does and does not show
- Small compute: {args.seeds} seeds, {config.epochs} epochs, {network_name(config)} on {config.data} (28x28,
  {len(layers)} spiking layers); the paper's networks are full-width ResNets on CIFAR, trained for hundreds of epochs.
- OI summarises spike maps summed over channels, samples and timesteps; a layer can hold vertical and
  horizontal detectors in different channels and still have OI near 0.
- The functional test removes a band from one layer at a time; a band the decision can do without may still be
  used when present (redundancy with other layers' bands), and removing coefficients makes the maps non-binary,
  which the next layer never saw in training: the energy-matched controls share that departure.
"""
    (folder / "README.md").write_text(readme)
    print(readme.split("\n## Setting")[0])


if __name__ == "__main__":
    main()
