"""What an intervention did to one batch's predictions: the logits of one pass from rest, and the per-image
measures against the unablated pass (docs/metrics.md, "Frequency ablation")."""
from __future__ import annotations

from typing import Callable

import numpy as np
import torch
from torch import nn

from ..analyze import batch_logits
from ..detect import first_tensor, reset_neuron_states
from ..errors import SpikescopeError
from ..timelayout import batch_size_of


def pass_logits(model: nn.Module, run: Callable, inputs: torch.Tensor, T: int) -> torch.Tensor:
    """`[B, classes]` float64 logits on the CPU of one forward pass from rest."""
    reset_neuron_states(model)
    output = run(model, inputs)
    logits = batch_logits(output, T, batch_size_of(inputs, T))
    if logits is None:
        tensor = first_tensor(output)
        raise SpikescopeError(f"frequency ablation needs [B, classes] logits (or [T, B, classes]) from the model; it "
                              f"returned {tuple(tensor.shape) if tensor is not None else 'no tensor'}")
    return logits.detach().to("cpu", torch.float64)


def compare_predictions(base: torch.Tensor, ablated: torch.Tensor, target: torch.Tensor) -> dict[str, np.ndarray]:
    """Per image: the ablated prediction is the target; the target logit's change; KL(unablated || ablated)."""
    rows = torch.arange(len(target))
    log_base, log_ablated = base.log_softmax(1), ablated.log_softmax(1)
    return {"correct": (ablated.argmax(1) == target).numpy(),
            "logit_change": (ablated[rows, target] - base[rows, target]).numpy(),
            "kl": (log_base.exp() * (log_base - log_ablated)).sum(1).clamp_min(0).numpy()}
