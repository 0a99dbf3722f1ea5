"""The self-contained HTML report: plotly figures, tables and definitions; plotly.js sits next to the page."""
from __future__ import annotations

import html
from typing import Any

import pandas as pd

from ..analyze import AnalysisResult
from ..attribution import Attribution
from ..claims import read_claims
from . import figures
from .attribution import attribution_section
from .page import PLOTLY_JS, figure_block, page
from .tables import model_name, table


def _header(meta: dict[str, Any], result: AnalysisResult) -> str:
    accuracy, processes = result.info.get("accuracy"), result.info.get("processes", 1)
    rows = {
        "model": model_name(meta), "parameters": f"{meta.get('parameters', 0):,}",
        "checkpoint": meta.get("checkpoint", "–"), "dataset": meta.get("dataset", "?"),
        "timesteps T": result.info["T"], "samples analysed": f"{result.info['samples']:,}",
        "accuracy on them": f"{accuracy:.2%}" if accuracy is not None else "– (no labels)",
        "runtime": f"{result.info['runtime_s']:.1f} s" + (f" on {processes} processes" if processes > 1 else ""),
        "command": meta.get("command", "–"),
        "spikescope": meta.get("version", "?"),
        "seeds": (f"one trained model (training seed {meta['train_config']['seed']})"
                  if "seed" in meta.get("train_config", {}) else "one model; its training seeds are not recorded"),
    }
    return _key_values(rows)


def _key_values(rows: dict[str, Any]) -> str:
    """A two-column table: what, and its value."""
    body = "".join(f'<tr><th class="text">{html.escape(k)}</th><td class="text">{html.escape(str(v))}</td></tr>'
                   for k, v in rows.items())
    return f"<table>{body}</table>"


def _warnings(warnings: list[str]) -> str:
    return "<ul>" + "".join(f"<li>{html.escape(w)}</li>" for w in warnings) + "</ul>"


def _claims(result: AnalysisResult) -> str:
    items = []
    for claim in read_claims(result.layers, result.similarity):
        items.append(f"<li><b>Paper: “{html.escape(claim['claim'])}”</b><br>"
                     f"<span class='verdict'>Here: {html.escape(claim['verdict'])}.</span><br>"
                     f"{html.escape(claim['evidence'])}<br><i>Rule: {html.escape(claim.get('rule', ''))}</i></li>")
    return ("<p>What this one model on this one dataset says about the FSTA paper's claims 1 and 2 (claim 3, that "
            "FSTA lowers the firing rate while raising accuracy, needs models trained with and without FSTA, "
            "analysed on the same images).</p><ul>" + "".join(items) + "</ul>")


NO_MAPS = ("<p>No analysed layer emits 2D spike maps ([T, B, C, H, W]); the DCT spectrum and the orientation "
           "index need them, so this network has no frequency content to show. Firing, similarity and energy "
           "below cover every layer.</p>")


def _frequency_section(result: AnalysisResult) -> str:
    if not result.spectra:
        return NO_MAPS
    maps = result.layers[result.layers["height"].notna()]
    flat = [name for name in result.layers["layer"] if name not in set(maps["layer"])]
    note = (f"<p class='caption'>Without 2D maps, left out here: {html.escape(', '.join(flat))}.</p>" if flat else "")
    return (figure_block("spectra", figures.spectra(result),
                    "DCT-II power of every spike map, summed over samples, channels and timesteps; colour = log10 of "
                    "the share of the layer's power. Rows: vertical frequency u/H (change along the height); "
                    "columns: horizontal frequency v/W.")
            + figure_block("orientation", figures.orientation_by_depth(result),
                      "Orientation index against depth. OI = (E_vert - E_horz) / (E_vert + E_horz); positive when "
                      "variation along the height dominates. Per-timestep lines can be switched on in the legend.")
            + table(maps, {"layer": "layer", "height": "H", "width": "W", "dc_fraction": "DC share",
                           "axis_OI": "OI (axis)", "wedge_OI": "OI (wedge)", "band_low": "low band",
                           "band_mid": "mid band", "band_high": "high band", "parseval_error": "Parseval error"})
            + note)


def _membrane_section(result: AnalysisResult) -> str:
    per_step = {f"t = {t}": {layer: counts[t] for layer, counts in result.membrane.items()}
                for t in range(result.info["T"])}
    rows = result.layers[result.layers["layer"].isin(list(result.membrane))]
    return (figure_block("membrane", figures.membrane_histograms(per_step),
                         "Membrane potential u in units of the layer's threshold, at the spike decision, of the "
                         "neurons that did not fire, as a share of all neurons, per timestep; the rest fired (hover "
                         "for their share). The triangle left of each line, apart from it, holds every neuron "
                         "below -6; the dotted line is the threshold.")
            + table(rows, {"layer": "layer", "membrane_mean": "mean u / threshold", "membrane_sd": "SD",
                           "near_threshold_share": "within 10 % below threshold", "reset_share": "reset (fired)"})
            + "<p class='caption'>Mean and SD over the neurons that did not fire; shares of all neurons and "
              "timesteps.</p>")


ENERGY_COLUMNS = {"sops_per_image": "SOPs (exact)", "sops_approx_per_image": "SOPs (fr x T x FLOPs)",
                  "macs_per_image": "MACs", "energy_pj_per_image": "energy (pJ)"}
DENSE_READING_COLUMNS = {"macs_dense_reading_per_image": "MACs, spike sums dense",
                         "energy_pj_dense_reading_per_image": "energy (pJ), spike sums dense"}
SHARES = {"share": "energy_share", "share_approx": "energy_share_approx",
          "share_dense_reading": "energy_share_dense_reading"}  # `energy_by_part`'s shares, named for the table
OPEN_DETAILS_ROWS = 12  # an energy table this short is shown whole; a longer one folds each part's rows


def _energy_section(result: AnalysisResult) -> str:
    """Which energy model priced it; every row's energy split into the model's terms beside its ANN twin's, and
    the totals per term; the energy per part under each reading (spikescope's events, paper-style, spike sums
    dense), the attention's products, every costed operation by part (folded for long tables), and what could not
    be costed."""
    energy = result.energy
    if energy.empty:  # no energy metric ran, or nothing was costed
        return "<p>No synaptic operation was costed.</p>" + _uncosted(result)
    parts = result.energy_by_part().rename(columns=SHARES)
    parts["operations"] = parts["part"].map(energy["part"].value_counts())
    total = pd.DataFrame([{"part": "total", "operations": len(energy), **result.energy_totals(),
                           **parts[list(SHARES.values())].sum()}])
    return (_energy_model(result)
            + figure_block("energy-terms", figures.energy_terms(result),
                           "Energy per image of every costed operation, then of every spiking layer's own updates "
                           "(under memory-aware models), and in total, split into the model's terms: per row the "
                           "SNN's bar and, hatched, its ANN twin's (ANN: the same architecture run once per image as a "
                           "dense network; a spiking layer's twin, an activation function, costs nothing).")
            + _energy_totals(result)
            + figure_block("energy", figures.energy(result),
                           f"Energy per image and part under each reading. {_readings(result)}")
            + table(pd.concat([parts, total]), {
                "part": "part", "operations": "operations", **ENERGY_COLUMNS, "energy_share": "share of energy",
                "energy_pj_approx_per_image": "energy (pJ), fr x FLOPs", "energy_share_approx": "share, fr x FLOPs",
                **DENSE_READING_COLUMNS, "energy_share_dense_reading": "share, spike sums dense"})
            + "<p class='caption'>All counts per image. spikescope counts spikes and spike sums as events: a sum of "
              "k spikes is k accumulates (SOPs (exact)). The paper-style reading costs fr x T x FLOPs accumulates "
              "(SOPs (fr x T x FLOPs)). Read dense, an operation fed spike sums costs MACs over every element, as "
              "SpikingJelly's MACCounter and most papers cost residual sums (docs/metrics.md, Operators and "
              "conventions).</p>"
            + figure_block("energy-operations", figures.energy_operations(result),
                           "Energy per image of every costed operation, in the order the network runs them, under "
                           "each reading.")
            + _attention_products(energy) + _energy_details(energy, parts) + _uncosted(result))


def _energy_model(result: AnalysisResult) -> str:
    """Which energy model produced the section's numbers: its description (constants and source)."""
    described = result.info.get("energy_model_description", result.info.get("energy_model", "fp32"))
    return (f"<p>Energy model <b>{html.escape(described)}</b>. Its terms and formulas: "
            'docs/metrics.md, "Energy models".</p>')


def _readings(result: AnalysisResult) -> str:
    """What each reading of the part figure includes: the model's total, and the operations alone for the other
    two."""
    pj = result.info.get("energy_pj", {})
    if figures.priced_terms(result.energy_totals()) == ["ops"]:
        return (f"Every reading prices operations only (E_MAC = {pj.get('mac')} pJ, E_AC = {pj.get('ac')} pJ); "
                "memory access is not included.")
    return (f"Spike sums as events: the model's total ({', '.join(figures.TERM_NAMES.values())}). The paper-style "
            f"and dense readings price operations only (E_MAC = {pj.get('mac')} pJ, E_AC = {pj.get('ac')} pJ), "
            "without addressing or memory, so they are far below it.")


def _energy_totals(result: AnalysisResult) -> str:
    """Per term (where the model prices more than operations) the SNN's and its ANN twin's energy per image, with
    their ratio; then the totals and the SNN/ANN ratio."""
    totals = result.energy_totals()
    terms = figures.beside_total(figures.priced_terms(totals))
    rows = [{"term": figures.TERM_NAMES[term], **_sides(totals, term)} for term in terms]
    rows.append({"term": "total", **_sides(totals, None)})
    return (table(pd.DataFrame(rows), {"term": "term", "energy_pj_per_image": "SNN (pJ)",
                                       "ann_energy_pj_per_image": "ANN twin (pJ)", "snn_ann_ratio": "SNN / ANN"})
            + "<p class='caption'>Per image. SNN / ANN: the SNN's energy over its twin's (– where the twin spends "
              "nothing); the total's is the network's SNN/ANN ratio.</p>")


def _sides(totals: dict[str, float], term: str | None) -> dict[str, float]:
    """The SNN's and the twin's energy of `term` (None: the total) and their ratio, under the table's columns."""
    snn, ann = (totals[figures.term_column(side, term)] for side in figures.SIDES)
    return {"energy_pj_per_image": snn, "ann_energy_pj_per_image": ann,
            "snn_ann_ratio": snn / ann if ann else float("nan")}


def _attention_products(energy: pd.DataFrame) -> str:
    """The attention's operations between activations (Q·Kᵀ, attn·V, masks, column sums): operands, SOPs and the
    share of zero outputs of products of two spike operands. Empty for a network without attention."""
    rows = energy[(energy["part"] == "attention") & ~energy["kind"].isin(["conv", "transposed conv", "linear"])]
    if rows.empty:
        return ""
    return ("<p>Attention: operations between activations (no weights).</p>"
            + table(rows, {"layer": "operation", "operator": "operator", "operands": "operands",
                           "input_firing_rate": "input firing rate", "sops_per_image": "SOPs (exact)",
                           "sops_approx_per_image": "SOPs (fr x T x FLOPs)", "output_sparsity": "zero outputs",
                           "energy_pj_per_image": "energy (pJ)"})
            + "<p class='caption'>Two spike operands cost one accumulate per coincidence; zero outputs is the share "
              "of the product's outputs that are 0 (of Q·Kᵀ, for example).</p>")


def _energy_details(energy: pd.DataFrame, parts: pd.DataFrame) -> str:
    """Every costed operation, one table per part, folded unless the whole table is short."""
    shown = " open" if len(energy) <= OPEN_DETAILS_ROWS else ""
    columns = {"layer": "operation", "operator": "operator", "input": "input", "operands": "operands",
               "input_firing_rate": "input firing rate", **ENERGY_COLUMNS, **DENSE_READING_COLUMNS}
    return "".join(f"<details{shown}><summary>{html.escape(part)}: {count:,} operation{'s' * (count != 1)}, "
                   f"{pj_total:,.0f} pJ per image</summary>{table(energy[energy['part'] == part], columns)}</details>"
                   for part, count, pj_total in parts[["part", "operations", "energy_pj_per_image"]].itertuples(
                       index=False))


def _uncosted(result: AnalysisResult) -> str:
    """The operations on spikes or weights that no rule costs: their cost is missing from every total."""
    uncosted = result.info.get("uncosted", [])
    if not uncosted:
        return ""
    named = ", ".join(f"{u['module'] or '(model)'} ({u['type']}): {u['operator']}" for u in uncosted)
    return f"<p class='caption'><b>Not costed</b> (missing from the totals): {html.escape(named)}.</p>"


def render_attribution(attribution: Attribution, meta: dict[str, Any], plotly_src: str = PLOTLY_JS) -> str:
    """The page `spikescope attribute` writes: what was attributed on which model, the attribution section and
    the definitions."""
    rows = {"model": model_name(meta), "checkpoint": meta.get("checkpoint", "–"),
            "dataset": meta.get("dataset", "?"), "images": len(attribution.images), "timesteps T": attribution.T,
            "command": meta.get("command", "–"), "spikescope": meta.get("version", "?")}
    sections = [("Model and data", _key_values(rows)), ("Attribution", attribution_section(attribution)),
                ("Definitions", _key_values(attribution.definitions()))]
    if meta.get("warnings"):
        sections.append(("Warnings", _warnings(meta["warnings"])))
    title = f"{meta.get('model', 'model')}: {attribution.method} on {len(attribution.images)} images"
    return page("spikescope attribution", title, sections, plotly_src)


def _token_tables(result: AnalysisResult) -> str:
    """Per attention head, its firing rate; per token layer, how its tokens' firing rates spread (every token's is
    in tokens.csv). Empty for a model without token layers."""
    parts = []
    if len(result.heads):
        parts.append("<p>Firing rate of every attention head: head-split layers, and the Q, K and V token layers "
                     "split into heads (features part by part, head by head). The numbers are in heads.csv.</p>"
                     + table(result.heads, {"layer": "layer", "part": "part", "head": "head",
                                            "firing_rate": "firing rate"}))
    if len(result.tokens):
        rates = result.tokens.groupby("layer", sort=False)
        spread = pd.DataFrame({"tokens": rates.size(), "lowest": rates["firing_rate"].min().map("{:.4f}".format),
                               "highest": rates["firing_rate"].max().map("{:.4f}".format),
                               "silent": rates["silent_fraction"].apply(lambda s: f"{(s == 1).sum()}")}).reset_index()
        parts.append("<p>Token layers: channels are features, and each token (patch) has its own firing rate, spikes "
                     "at the token / (T x samples x features). The rate of every token, with its row and column on "
                     "the patch grid, is in tokens.csv.</p>"
                     + table(spread, {"layer": "layer", "tokens": "tokens", "lowest": "lowest token rate",
                                      "highest": "highest token rate", "silent": "tokens that never fired"},
                             numbers=False))
    return "".join(parts)


def render(result: AnalysisResult, meta: dict[str, Any], plotly_src: str = PLOTLY_JS) -> str:
    """The report page as a string; it loads plotly.js from `plotly_src` (by default the copy beside it)."""
    layers = result.layers
    sections = [
        ("Model and data", _header(meta, result)),
        ("Against the paper's claims", _claims(result)),
        ("Firing rates", figure_block("firing", figures.firing_rates(result),
                                 "Firing rate = spikes / (T x samples x neurons). Lines: per timestep. Right: share "
                                 "of neurons that never fired on the analysed samples. Analog layers (named "
                                 "explicitly, not spiking) have no firing rate.")
         + table(layers, {"layer": "layer", "found_by": "found by", "layout": "time layout", "geometry": "geometry",
                          "output": "output", "neurons": "neurons", "firing_rate": "firing rate",
                          "silent_fraction": "silent neurons"})
         + figure_block("channels", figures.channel_rates(result),
                   "Firing rate of every channel (for linear layers, every neuron), per layer: how evenly a layer's "
                   "firing is spread. The numbers are in channels.csv.")
         + _token_tables(result)),
        ("Frequency content (2D DCT)", _frequency_section(result)),
        ("Similarity across timesteps", figure_block("similarity", figures.similarity(result),
                                                "T x T cosine similarity per layer: of the spike vectors (mean "
                                                "over samples), of the power spectra, and of the power spectra "
                                                "without DC (DC alone pushes the full spectral cosine towards 1), "
                                                "and the linear CKA of the layer's channel features (each "
                                                "channel's spikes averaged over positions) over the samples.")
         + table(layers, {"layer": "layer", "spike_cosine_mean_off_diagonal": "mean spike cosine (t ≠ t')",
                          "cka_mean_off_diagonal": "mean CKA (t ≠ t')",
                          "similarity_left_out_max": "samples left out of an entry (no spike), at most"})),
        ("Synaptic operations and energy", _energy_section(result)),
    ]
    if result.membrane:
        sections.append(("Membrane potentials", _membrane_section(result)))
    if any(spikes.ndim == 5 for spikes in result.captured.values()):
        sections.append(("Example spike maps", figure_block("spikes", figures.spike_maps(result),
                                                       "Share of each layer's channels firing at every position, "
                                                       "for the first analysed samples, per timestep.")))
    definitions = dict(result.definitions)
    if result.attribution is not None:
        sections.append(("Attribution", attribution_section(result.attribution, result.sam,
                                                            result.info["samples"])))
        definitions.update(result.attribution.definitions())
    sections.append(("Definitions", _key_values(definitions)))
    if result.info.get("warnings"):
        sections.append(("Warnings", _warnings(result.info["warnings"])))
    title = f"{meta.get('model', 'model')} on {meta.get('dataset', 'data')}, {result.info['samples']:,} samples"
    return page("spikescope report", title, sections, plotly_src)
