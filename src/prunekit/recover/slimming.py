"""Network Slimming: Liu et al., "Learning Efficient Convolutional Networks through Network
Slimming", ICCV 2017.

1. Sparse training: an L1 penalty ``lambda * sum |gamma|`` on every BatchNorm scale, applied as its
   subgradient ``lambda * sign(gamma)`` added to ``gamma.grad`` after backward (what the paper's
   code does; identical to adding the penalty to the loss, and independent of AMP loss scaling).
2. Channel pruning by ``|gamma|`` with one global threshold (structural planner, ``bn_scale``
   criterion, ``threshold`` scope: raw scores, not normalised per layer), then fine-tuning. With a run directory, ``gamma.png`` shows the
   ``|gamma|`` distribution of the dense model and after sparse training.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor, nn

from prunekit.recover.training import Phase
from prunekit.recover.structured import structured_pruner

_BN = (nn.modules.batchnorm._BatchNorm,)


def bn_layers(model: nn.Module) -> dict[str, nn.Module]:
    """BatchNorm layers with a learnable scale, by name."""
    return {n: m for n, m in model.named_modules()
            if isinstance(m, _BN) and isinstance(getattr(m, "weight", None), Tensor)}


def bn_l1_penalty(model: nn.Module, lam: float) -> Tensor:
    """``lam * sum |gamma|`` over all BatchNorm scales (differentiable)."""
    gammas = [m.weight.abs().sum() for m in bn_layers(model).values()]
    if not gammas:
        raise ValueError(f"{type(model).__name__} has no BatchNorm layer: Network Slimming needs "
                         "BN scales (gamma) to rank channels")
    return lam * torch.stack(gammas).sum()


@torch.no_grad()
def add_bn_subgradient(model: nn.Module, lam: float) -> None:
    """``gamma.grad += lam * sign(gamma)`` for every BatchNorm (call after backward)."""
    for m in bn_layers(model).values():
        g = m.weight
        if g.grad is None:
            g.grad = torch.zeros_like(g)
        g.grad.add_(torch.sign(g), alpha=lam)


def gamma_values(model: nn.Module) -> Tensor:
    """All ``|gamma|`` of the model's BatchNorm layers, concatenated (CPU, float)."""
    vals = [m.weight.detach().abs().float().cpu().reshape(-1) for m in bn_layers(model).values()]
    return torch.cat(vals) if vals else torch.zeros(0)


def plot_gamma(before: Tensor, after: Tensor, path: str | Path,
               title: str = "BatchNorm |gamma| before/after sparse training") -> Path:
    """Histogram of ``|gamma|`` before and after (PNG via matplotlib's Agg backend)."""
    from matplotlib.figure import Figure  # no pyplot: the user's backend stays as it is

    fig = Figure(figsize=(6, 3.5))
    ax = fig.subplots()
    hi = float(max(before.max() if before.numel() else 1, after.max() if after.numel() else 1))
    bins = torch.linspace(0, hi, 50).tolist()
    ax.hist(before.tolist(), bins=bins, alpha=0.6, label=f"before (n={before.numel()})")
    ax.hist(after.tolist(), bins=bins, alpha=0.6, label="after")
    ax.set_xlabel("|gamma|")
    ax.set_ylabel("channels")
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    return path


def slimming_phases(model: nn.Module, ctx) -> list:
    """Sparse training (``recipe.pretrain`` with the L1 subgradient), then channel pruning by
    ``|gamma|`` on the recipe's schedule during ``recipe.finetune``."""

    r = ctx.recipe
    bn_l1_penalty(model, r.l1)  # raises early when there is no BN
    lam = r.l1
    before = gamma_values(model)
    prune = structured_pruner(ctx, "bn_scale", scope="threshold")  # one raw threshold

    def prune_and_plot(m: nn.Module, amount: float) -> bool:
        if ctx.out_dir is not None and not (Path(ctx.out_dir) / "gamma.png").exists():
            plot_gamma(before, gamma_values(m), Path(ctx.out_dir) / "gamma.png")
        return prune(m, amount)

    return [
        Phase("sparse-train", r.pretrain, grad_hook=lambda m: add_bn_subgradient(m, lam),
              distill=False),
        Phase("finetune", r.finetune, r.schedule, r.amount, prune_and_plot,
              refresh_teacher=True),
    ]


__all__ = ["add_bn_subgradient", "bn_l1_penalty", "bn_layers", "gamma_values", "plot_gamma",
           "slimming_phases"]
