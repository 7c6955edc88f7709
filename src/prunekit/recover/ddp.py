"""Data parallel under ``torchrun`` (DDP; gloo on CPU, nccl on CUDA).

Masks are computed on every rank from the same (unsharded) calibration batches, then rank 0's
masks are broadcast and an all-reduce checksum verifies that every rank holds identical masks.
Fine-tuning splits the global batch across ranks (``batch_size / world_size`` each) with
:class:`torch.utils.data.distributed.DistributedSampler`, so a 2-process run sees exactly the
batches of a 1-process run and (without BatchNorm) matches it to float tolerance.
"""

from __future__ import annotations

import os

import torch
import torch.distributed as dist
from torch import nn

from prunekit.masks.apply import masked_modules


def is_dist() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    return dist.get_rank() if is_dist() else 0


def world_size() -> int:
    return dist.get_world_size() if is_dist() else 1


def init_from_env() -> bool:
    """Initialise the default process group when launched by ``torchrun`` (``WORLD_SIZE > 1``).

    Returns:
        True when running distributed.
    """
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return False
    if not dist.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        if backend == "nccl":
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group(backend=backend)
    return True


def device_for_rank() -> torch.device:
    if torch.cuda.is_available():
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return torch.device("cpu")


def wrap(model: nn.Module) -> nn.Module:
    """``DistributedDataParallel(model)`` when distributed, else ``model``."""
    if not is_dist():
        return model
    from torch.nn.parallel import DistributedDataParallel as DDP

    ids = [model_device(model).index] if model_device(model).type == "cuda" else None
    return DDP(model, device_ids=ids)  # buffers (masks, BN stats) follow rank 0


def model_device(model: nn.Module) -> torch.device:
    p = next(model.parameters(), None)
    return p.device if p is not None else torch.device("cpu")


def _comm_device() -> torch.device:
    return device_for_rank() if dist.get_backend() == "nccl" else torch.device("cpu")


def mask_checksum(model: nn.Module) -> int:
    """A position-weighted checksum of every mask (equal masks -> equal checksum)."""
    total = 0
    for i, (_, mod) in enumerate(sorted(masked_modules(model).items())):
        m = mod.parametrizations.weight[0].mask.reshape(-1).to("cpu", torch.int64)
        pos = torch.arange(1, m.numel() + 1, dtype=torch.int64) % 1_000_003
        total += (i + 1) * int((m * pos).sum()) + int(m.sum())
    return total


def sync_masks(model: nn.Module) -> None:
    """Broadcast rank 0's masks to all ranks, then verify equality with an all-reduce.

    Raises:
        RuntimeError: ranks disagree on which layers are masked, or checksums differ afterwards.
    """
    if not is_dist():
        return
    dev = _comm_device()
    names = sorted(masked_modules(model))
    count = torch.tensor([len(names)], device=dev)
    dist.all_reduce(count, op=dist.ReduceOp.MAX)
    if int(count) != len(names):
        raise RuntimeError(f"rank {rank()}: {len(names)} masked layers but another rank has "
                           f"{int(count)}; masks differ across ranks")
    mods = masked_modules(model)
    for name in names:
        wm = mods[name].parametrizations.weight[0]
        buf = wm.mask.to(dev, torch.uint8)
        dist.broadcast(buf, src=0)
        wm.mask = buf.to(wm.mask.device, torch.bool)
    verify_same(mask_checksum(model), "weight masks")


def verify_same(value: int, what: str) -> None:
    """All-reduce MIN and MAX of an integer; raise if ranks differ."""
    if not is_dist():
        return
    dev = _comm_device()
    lo = torch.tensor([value], dtype=torch.int64, device=dev)
    hi = lo.clone()
    dist.all_reduce(lo, op=dist.ReduceOp.MIN)
    dist.all_reduce(hi, op=dist.ReduceOp.MAX)
    if int(lo) != int(hi):
        raise RuntimeError(f"{what} differ across ranks (checksums {int(lo)} .. {int(hi)})")


def barrier() -> None:
    if is_dist():
        dist.barrier()


__all__ = [
    "barrier", "device_for_rank", "init_from_env", "is_dist", "mask_checksum", "rank",
    "sync_masks", "verify_same", "world_size", "wrap",
]
