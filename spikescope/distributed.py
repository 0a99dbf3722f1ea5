"""Several processes (torchrun): joining the process group, who this process is, and reductions across processes.

Every process runs the same command. Analysis shards the batches (batch i goes to process i % N)
and reduces each metric's states by their declared reduction; training wraps the model in
DistributedDataParallel. gloo serves CPU runs, nccl CUDA runs (one GPU per process). Without a
process group of more than one process, every helper here is what one process alone would do.
"""
from __future__ import annotations

import atexit
import os
from contextlib import contextmanager
from itertools import islice
from typing import Any, Iterable, Iterator, TypeVar

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from .devices import resolve_device
from .errors import SpikescopeError

Item = TypeVar("Item")


def requested_processes() -> int:
    """The number of processes torchrun started (its WORLD_SIZE), 1 outside torchrun."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def active() -> bool:
    """True in an initialised process group of more than one process."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    """This process's rank in the process group that shares out the work (0 without one)."""
    return dist.get_rank() if active() else 0


def world_size() -> int:
    """The number of processes that share out the work (1 without a process group)."""
    return dist.get_world_size() if active() else 1


def _launched() -> tuple[int, int]:
    """(rank, processes) of the process group or, before one is joined, of torchrun's environment."""
    return (rank(), world_size()) if active() else (int(os.environ.get("RANK", "0")), requested_processes())


def is_main() -> bool:
    """True in the one process that prints and writes files: rank 0, also before the group is joined."""
    return _launched()[0] == 0


def init_from_environment(device: str | torch.device = "cpu") -> None:
    """Join the process group torchrun describes (WORLD_SIZE > 1, RANK, MASTER_ADDR, MASTER_PORT) unless one is
    initialised already: gloo for `device` cpu, nccl for cuda, where each process takes the GPU of its
    LOCAL_RANK. Outside torchrun nothing happens."""
    if requested_processes() <= 1 or not dist.is_available() or dist.is_initialized():
        return
    device = resolve_device(device)
    backend = "gloo"
    if device.type == "cuda":
        if device.index is not None:
            raise SpikescopeError(f"--device {device}: with several processes pass --device cuda; each process "
                                  "takes the GPU of its local rank")
        local, gpus = int(os.environ.get("LOCAL_RANK", "0")), torch.cuda.device_count()
        if local >= gpus:
            raise SpikescopeError(f"process {local} on this machine has no GPU of its own ({gpus} GPUs): start at "
                                  f"most {gpus} processes per machine (--nproc_per_node)")
        torch.cuda.set_device(local)
        backend = "nccl"
    dist.init_process_group(backend)
    atexit.register(_leave)


def _leave() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def describe_process() -> str:
    """' (process r of N)' in every process but the main one, else '': tags a message one process prints."""
    process, processes = _launched()
    return f" (process {process} of {processes})" if process else ""


def shard(items: Iterable[Item]) -> Iterator[Item]:
    """This process's share of `items`: item i when i % N == rank (every item in a single process). Every
    process must iterate the same items in the same order."""
    return islice(items, rank(), None, world_size())


def all_gather_objects(value: Any) -> list[Any]:
    """`value` (picklable) of every process, in rank order; `[value]` in a single process."""
    if not active():
        return [value]
    gathered: list[Any] = [None] * world_size()
    dist.all_gather_object(gathered, value)
    return gathered


def summed(*values: float) -> list[float]:
    """Each of `values` summed over the processes, in rank order (exact for whole numbers)."""
    return [sum(column) for column in zip(*all_gather_objects(values))]


def barrier() -> None:
    """Wait until every process arrives here (nothing to wait for in a single process)."""
    if active():
        dist.barrier()


@contextmanager
def together(doing: str) -> Iterator[None]:
    """Run a block with no collectives inside in every process, then agree on how it ended: a process whose
    block raised re-raises its error, every other one raises a one-line `SpikescopeError` naming it. No
    process then waits forever in a later collective that a failed one never reaches."""
    if not active():
        yield
        return
    try:
        yield
    except Exception:
        all_gather_objects(True)
        raise
    failed = [process for process, fail in enumerate(all_gather_objects(False)) if fail]
    if failed:
        raise SpikescopeError(f"process {failed[0]} of {world_size()} failed while {doing} (its error is above)")


def _collective_device() -> torch.device:
    return torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else torch.device("cpu")


def _identity(shape: tuple[int, ...], dtype: torch.dtype, how: str, device: torch.device) -> torch.Tensor:
    """The neutral value of a reduction: 0 for sums, the dtype's lowest value for maxima."""
    if how == "sum":
        return torch.zeros(shape, dtype=dtype, device=device)
    lowest = -float("inf") if dtype.is_floating_point else torch.iinfo(dtype).min
    return torch.full(shape, lowest, dtype=dtype, device=device)


def all_reduce_states(states: dict[str, dict[str, torch.Tensor]],
                      reductions: dict[str, str]) -> dict[str, dict[str, torch.Tensor]]:
    """Metric states (`layer -> name -> tensor`) reduced over all processes, each by `reductions[name]` ("sum"
    or "max"); returns them (the input itself in a single process).

    A layer some process never saw counts there as the reduction's neutral value. States of one
    dtype and reduction travel in one flat buffer, so a metric costs two collectives, not one per
    tensor. Shapes or dtypes that differ between processes are a one-line error.
    """
    if not active():
        return states
    schemas = all_gather_objects({layer: {name: (tuple(value.shape), value.dtype) for name, value in entries.items()}
                                  for layer, entries in states.items()})
    union: dict[str, dict[str, tuple[tuple[int, ...], torch.dtype]]] = {}
    for process, schema in enumerate(schemas):
        for layer, entries in schema.items():
            known = union.setdefault(layer, entries)
            if known != entries:
                raise SpikescopeError(f"layer {layer}: process {process} recorded states {entries}, another "
                                      f"{known}; every process must run the same model on inputs of the same size")
    device = _collective_device()
    merged = {layer: {name: states[layer][name] if layer in states else _identity(shape, dtype, reductions[name],
                                                                                   device)
                      for name, (shape, dtype) in entries.items()} for layer, entries in union.items()}
    buckets: dict[tuple[str, torch.dtype], list[tuple[str, str]]] = {}
    for layer, entries in merged.items():
        for name, value in entries.items():
            buckets.setdefault((reductions[name], value.dtype), []).append((layer, name))
    for (how, _), keys in buckets.items():
        flat = torch.cat([merged[layer][name].reshape(-1).to(device) for layer, name in keys])
        dist.all_reduce(flat, dist.ReduceOp.SUM if how == "sum" else dist.ReduceOp.MAX)
        for (layer, name), part in zip(keys, flat.split([merged[layer][name].numel() for layer, name in keys])):
            value = merged[layer][name]
            merged[layer][name] = part.view(value.shape).to(value.device)
    return merged


def data_parallel(model: nn.Module, device: torch.device) -> nn.Module:
    """`model` wrapped in DistributedDataParallel in a process group (itself in a single process).

    Gradients are averaged as the sum over processes in rank order, divided by N: the same additions
    whatever DDP's bucket layout (which a fresh DDP rebuilds after its first step, so a resumed run
    would otherwise add in another order when N > 2 and lose bit-exact resume). BatchNorm buffers are
    rank 0's at every forward (DDP's default buffer sync); see `share_buffers`.
    """
    if not active():
        return model
    wrapped = DistributedDataParallel(model, device_ids=[device] if device.type == "cuda" else None)
    wrapped.register_comm_hook(None, _mean_in_rank_order)
    return wrapped


def _mean_in_rank_order(state, bucket):  # unannotated: DDP checks annotations as objects, and here they are strings
    buffer = bucket.buffer()
    parts = [torch.empty_like(buffer) for _ in range(world_size())]
    gathered = dist.all_gather(parts, buffer, async_op=True).get_future()

    def mean(_: torch.futures.Future) -> torch.Tensor:
        total = parts[0].clone()
        for part in parts[1:]:
            total += part
        return total.div_(len(parts))

    return gathered.then(mean)


def share_buffers(model: nn.Module) -> None:
    """Give every process rank 0's buffers (BatchNorm running statistics). DDP broadcasts them before every
    forward, so after an epoch's last step each process holds the statistics of its own last batch."""
    if active():
        for buffer in model.buffers():
            dist.broadcast(buffer, 0)


def check_same_weights(model: nn.Module, when: str) -> None:
    """Raise if the processes hold different parameters, compared by a float64 sum of all of them. DDP keeps
    them equal; a difference is a bug or nondeterminism, not a user's mistake, so it is a RuntimeError."""
    if not active():
        return
    checksum = float(sum(p.detach().double().sum() for p in model.parameters()))
    checksums = all_gather_objects(checksum.hex())
    if len(set(checksums)) > 1:
        raise RuntimeError(f"the {world_size()} processes hold different weights {when} (parameter sums "
                           f"{', '.join(str(float.fromhex(c)) for c in checksums)}): training diverged")
