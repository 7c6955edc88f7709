"""Run a model with its *containers* in training mode, without side effects.

Some models call modules only in training mode: GoogLeNet's and Inception-v3's auxiliary
classifiers (``if self.training and self.aux_logits``). They consume trunk channels, so a
pruned trunk must slice them too, although an eval-mode trace never sees them. The tracer
therefore runs such models a second time with :func:`containers_training`:

* modules that have children (and are not handled leaves) get ``training=True``: they are the
  ones that choose the branches;
* every handled leaf (conv, norm, attention, ...) and every childless module (``Dropout``,
  stochastic depth) stays in eval mode, so no batch statistics are computed (a batch of one
  works) and nothing random happens in them;
* buffers are restored afterwards (in place and by identity) and the RNG state is forked, so
  the model and the user's random streams are exactly as before.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import nn

from prunekit.handlers.base import get_handler


def find_leaves(model: nn.Module) -> dict[str, nn.Module]:
    """Outermost modules that have a handler (their children are not visited)."""
    leaves: dict[str, nn.Module] = {}
    prefixes: list[str] = []
    for name, m in model.named_modules():
        if any(name.startswith(p + ".") for p in prefixes):
            continue
        h = get_handler(m)
        if h is not None and name and h.is_leaf(m):
            leaves[name] = m
            prefixes.append(name)
    if get_handler(model) is not None and not leaves:
        leaves[""] = model
    return leaves


def _train_set(model: nn.Module, leaves: set[int]) -> list[nn.Module]:
    """Containers outside every handled leaf."""
    out: list[nn.Module] = []

    def walk(m: nn.Module) -> None:
        if id(m) in leaves:
            return
        kids = list(m.children())
        if kids:
            out.append(m)
        for k in kids:
            walk(k)

    walk(model)
    return out


@contextlib.contextmanager
def containers_training(model: nn.Module) -> Iterator[None]:
    """Context in which ``model``'s containers are in training mode (see module docstring).

    Leaves it exactly as found: every module's ``training`` flag, every buffer's value and
    identity, and the CPU/CUDA RNG states.
    """

    leaves = {id(m) for m in find_leaves(model).values()}
    modes = [(m, m.training) for m in model.modules()]
    bufs = [(m, name, b, b.detach().clone()) for m in model.modules()
            for name, b in m._buffers.items() if b is not None]
    cuda = sorted({b.device.index or 0 for *_, b, _ in bufs if b.is_cuda}
                  | {p.device.index or 0 for p in model.parameters() if p.is_cuda})
    try:
        with torch.random.fork_rng(devices=cuda):
            for m in model.modules():
                m.training = False
            for m in _train_set(model, leaves):
                m.training = True
            yield
    finally:
        for m, was in modes:
            m.training = was
        with torch.no_grad():
            for m, name, b, saved in bufs:
                m._buffers[name] = b
                if not torch.equal(b, saved):
                    b.copy_(saved)
