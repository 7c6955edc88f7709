"""Data parallel under ``torchrun`` (DDP; gloo on CPU, nccl on CUDA).

Masks are computed on every rank from the same (unsharded) calibration batches, then rank 0's
masks are broadcast and an all-reduce checksum verifies that every rank holds identical masks.
Fine-tuning splits each global batch of a 1-process run across ranks
(:class:`GlobalBatchSampler`): rank ``r`` takes samples ``r, r + W, ...`` of it, so a 2-process
run sees exactly the batches of a 1-process run. The last, partial global batch is split too,
without padding or dropping, and each rank's loss is scaled by :meth:`GlobalBatchSampler.loss_scale`
so that the averaged gradient is the gradient of the global batch's mean loss: (without
BatchNorm) the run matches one process to float tolerance whatever the data size.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator

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


class GlobalBatchSampler(torch.utils.data.Sampler):
    """Batch sampler yielding this rank's share of every global batch of a 1-process run.

    The 1-process order is ``torch.randperm(n)`` seeded with ``seed + epoch`` (or ``range(n)``
    without shuffling), cut into global batches of ``batch_size``; rank ``r`` of ``world`` takes
    elements ``r::world`` of each. A global batch smaller than ``world`` leaves some ranks
    without a sample: they get one stand-in sample whose loss scale is 0.

    Args:
        n: dataset size.
        batch_size: the global batch size.
        world, rank: process count and this process's rank.
        shuffle, seed: seeded shuffling, identical on every rank (call :meth:`set_epoch`).
    """

    def __init__(self, n: int, batch_size: int, world: int = 1, rank: int = 0,
                 shuffle: bool = True, seed: int = 0) -> None:
        if n < 1 or batch_size < 1 or world < 1 or not 0 <= rank < world:
            raise ValueError(f"GlobalBatchSampler: bad sizes (n={n}, batch_size={batch_size}, "
                             f"world={world}, rank={rank})")
        self.n, self.global_batch, self.world, self.rank = n, batch_size, world, rank
        self.shuffle, self.seed, self.epoch = shuffle, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return math.ceil(self.n / self.global_batch)

    def _order(self) -> list[int]:
        if not self.shuffle:
            return list(range(self.n))
        g = torch.Generator()
        g.manual_seed(self.seed + self.epoch)
        return torch.randperm(self.n, generator=g).tolist()

    def __iter__(self) -> Iterator[list[int]]:
        order = self._order()
        for start in range(0, self.n, self.global_batch):
            batch = order[start:start + self.global_batch]
            mine = batch[self.rank::self.world]
            yield mine or batch[:1]

    def loss_scale(self, step: int) -> float:
        """Factor for this rank's mean loss at ``step`` of an epoch: ``local * world / global``
        samples (1 for full batches; gradients are averaged over ranks)."""
        size = min(self.global_batch, self.n - step * self.global_batch)
        local = len(range(self.rank, size, self.world))
        return local * self.world / size


def loss_scale(loader: object, step: int) -> float:
    """The loss factor of ``step`` when ``loader`` uses a :class:`GlobalBatchSampler`, else 1."""
    sampler = getattr(loader, "batch_sampler", None)
    return sampler.loss_scale(step) if isinstance(sampler, GlobalBatchSampler) else 1.0


def barrier() -> None:
    if is_dist():
        dist.barrier()


__all__ = [
    "GlobalBatchSampler", "barrier", "loss_scale", "device_for_rank", "init_from_env", "is_dist", "mask_checksum", "rank",
    "sync_masks", "verify_same", "world_size", "wrap",
]
