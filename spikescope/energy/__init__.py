"""Costing what a spiking network's forward pass computes (docs/metrics.md, "Synaptic operations and energy").

`operators` watches every operator of a forward pass (a `TorchDispatchMode`; `attention` sees attention calls
as the model makes them) and attributes each to the innermost module that ran it; `conventions` decides what
an operand is (spikes, spike sums, weights, dense values) and what each operator costs; `geometry` gives a
convolution's fan-outs; `parts` names the part of a network a row belongs to; `peers` runs SpikingJelly's own
counters for cross-checks. The counts land in the `Energy` metric (`metrics/energy.py`), whose states merge
like every other metric's.
"""

SPIKES, SUMS, DENSE, WEIGHTS = "spikes", "spike sums", "analog", "weights"  # what an operand is
EVENTS = (SPIKES, SUMS)
MODEL_ROW = "(model)"  # the module name of operations the model's own forward runs


def row_module(row: str) -> str:
    """The module an energy row belongs to: `"blocks.0.attn: matmul 1"` -> `"blocks.0.attn"`, `"(model): add 1"`
    -> `""`, a module's own row -> its name."""
    module = row.split(": ", 1)[0]
    return "" if module == MODEL_ROW else module
