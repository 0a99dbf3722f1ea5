"""What `spikescope frequency` does, in one line from Python:

    ablation, files = spikescope.frequency_checkpoint("runs/baseline/checkpoint.pt", bands="axis", limit=1000)
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from .. import __version__, distributed
from ..checkpoint import bundled_checkpoint
from ..data import make_loader
from ..errors import SpikescopeError, note, recorded_warnings
from ..fsta import FSTA
from ..pipeline import _cannot_run, _check_counts, prepare_file
from ..report.folder import check_output_folder, default_report_folder
from ..report.frequency import write_frequency_outputs
from .ablation import frequency_ablation
from .fsta_frequencies import fsta_frequencies, fsta_modules
from .bands import DEFAULT_BAND_SETS, parse_band_sets
from .result import FrequencyAblation


def frequency_checkpoint(checkpoint: str | Path | None = None, out: str | Path | None = None,
                         layers: str | Sequence[str] = "all", bands: str | Sequence[str] = DEFAULT_BAND_SETS,
                         coefficients: int = 0, draws: int = 3, seed: int = 0, binarize: bool = False,
                         data: str | None = None, data_root: str | None = None, limit: int | None = None,
                         batch_size: int = 100, device: str = "cpu", arch: str | None = None,
                         arch_kwargs: dict[str, Any] | None = None, T: int | None = None, trust_pickle: bool = False,
                         time_first_input: bool = False, fold: str | None = None, batch_first: bool | None = None,
                         tokens: str | Sequence[int] | None = None, command: str | None = None,
                         progress: bool = False, fsta: bool = False) -> tuple[FrequencyAblation, dict[str, Path]]:
    """Load a model file and its test images (`pipeline.prepare_file`), run `frequency_ablation` on them and write
    the report folder `out` (default `reports/<name>-frequency`, checked before anything is loaded, written whole
    or not at all); returns `(ablation, files)`. With no `checkpoint`, the bundled baseline demo model on the
    bundled sample. `draws` (at least 1) energy-matched controls per band; the rest as for `frequency_ablation`
    and `analyze_checkpoint`. `fsta` also ablates each DCT basis and temporal descriptor of every FSTA module on the
    same images (`fsta_frequencies`; `result.fsta`)."""
    band_sets = checked_request(bands, coefficients, draws, batch_size)
    source = Path(checkpoint) if checkpoint is not None else bundled_checkpoint("baseline")
    destination = check_output_folder(out if out is not None else default_report_folder("frequency", [source]),
                                      "frequency")
    with recorded_warnings() as warnings_seen:
        prepared = prepare_file(checkpoint, data, data_root, limit, device, arch, arch_kwargs, T, trust_pickle,
                                time_first_input, fold, batch_first, tokens)
        if fsta:
            fsta_modules(prepared.model)  # a model without FSTA is refused before any pass
        try:
            result = frequency_ablation(prepared.model, make_loader(prepared.dataset, batch_size), layers, band_sets,
                                        coefficients, draws, seed, binarize, prepared.T, device, prepared.run, fold,
                                        batch_first, tokens, progress)
            if fsta:
                result.fsta = fsta_frequencies(prepared.model, make_loader(prepared.dataset, batch_size), prepared.T,
                                               device, prepared.run, progress)
            elif any(isinstance(module, FSTA) for module in prepared.model.modules()):
                note("the model has FSTA: --fsta (fsta=True) also measures which DCT frequencies and temporal "
                     "descriptors its attention draws on")
        except RuntimeError as error:  # shape and dtype mismatches between the user's model and the data
            raise _cannot_run(prepared.dataset, error) from None
    result.info["warnings"] = list(dict.fromkeys(warnings_seen + result.info.get("warnings", [])))
    description = {"model": prepared.meta.get("arch", type(prepared.model).__name__),
                   "arch_kwargs": prepared.meta.get("arch_kwargs", {}), "checkpoint": str(prepared.path),
                   "dataset": f"{prepared.dataset.name} (test split)", "dataset_name": prepared.dataset.name,
                   "T": result.info["T"], "version": __version__,
                   "command": command or "spikescope.frequency_checkpoint(...) (Python)"}
    if not distributed.is_main():  # under torchrun every process holds the whole result; rank 0 writes
        return result, {}
    return result, write_frequency_outputs(result, description, destination)


def checked_request(bands: str | Sequence[str], coefficients: int, draws: int, batch_size: int) -> tuple[str, ...]:
    """The band sets asked for, with every count checked before anything loads (one-line errors): at least one
    control per band (a band's effect means something only against its controls) and one image per batch."""
    band_sets = parse_band_sets(bands)
    if coefficients < 0:
        raise SpikescopeError(f"--coefficients must be at least 0 (0: no single coefficients), got {coefficients}")
    _check_counts(draws=draws, batch_size=batch_size)
    return band_sets
