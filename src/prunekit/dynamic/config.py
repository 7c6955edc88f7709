"""Configuration of activation sparsity (validated once, at construction)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

KERNELS = ("masked_dense", "gather_rows", "gather_bag", "compiled")


@dataclass(frozen=True)
class ActivationSparsityConfig:
    """How :func:`prunekit.dynamic.sparsify_activations` calibrates and runs.

    Args:
        sparsity: target fraction of each selected layer's input entries set to zero, in [0, 1).
        allocation: ``"uniform"`` (every layer at ``sparsity``) or ``"greedy"`` (per-layer
            sparsities chosen to minimise output error at the same parameter-weighted average,
            as in TEAL, Liu et al., ICLR 2025: every block at ``sparsity``, spread over the
            block's layers by the error of the block's output; see
            :mod:`prunekit.dynamic.greedy`).
        include: ``fnmatch`` patterns of module names to sparsify (default: every Linear/Conv1D).
        exclude: patterns of module names left alone (default: ``lm_head``).
        min_tokens: fewest calibration token positions each layer must see.
        max_rows: most activation rows kept per layer for fitting thresholds.
        heldout: fraction of the calibration samples held out to measure realised sparsity.
        kernels: candidate batch-1 kernels; the fastest one measured correct is used per layer.
        kernel: force one kernel for every layer instead of measuring.
        weight_layout: ``"both"`` keeps the ``(out, in)`` weight and an input-major copy
            (2x weight memory, dense paths unchanged); ``"input_major"`` stores only the
            input-major copy and makes ``weight`` a transposed view of it.
        repeats: timed calls per kernel and layer.
        greedy_rows: token positions of each block's recorded calibration inputs that score
            the greedy allocation (whole forward calls are kept until this many are seen).
        greedy_step: sparsity increment of one greedy step.
        multi_token: inputs holding more than one token (prefill, batch > 1) run ``"dense"``
            (the unmodified ``F.linear``: sparsity only at batch-1 decode, and never slower
            than the dense model there) or ``"masked"`` (the masked-dense reference: one
            ``hardshrink`` before the layer's own ``F.linear``, the same answer as batch 1 for
            every token; use it to measure quality over whole sequences).
    """

    sparsity: float = 0.4
    allocation: Literal["uniform", "greedy"] = "uniform"
    include: tuple[str, ...] = ("*",)
    exclude: tuple[str, ...] = ("lm_head", "*.lm_head")
    min_tokens: int = 64
    max_rows: int = 512
    heldout: float = 0.25
    kernels: tuple[str, ...] = ("masked_dense", "gather_rows", "gather_bag")
    kernel: str | None = None
    weight_layout: Literal["both", "input_major"] = "both"
    repeats: int = 7
    greedy_rows: int = 256
    greedy_step: float = 0.05
    seed: int = 0
    multi_token: Literal["masked", "dense"] = "dense"

    def __post_init__(self) -> None:
        if not 0.0 <= float(self.sparsity) < 1.0:
            raise ValueError(f"sparsity must be in [0, 1), got {self.sparsity!r}")
        if self.allocation not in ("uniform", "greedy"):
            raise ValueError(f"allocation must be 'uniform' or 'greedy', got {self.allocation!r}")
        if self.weight_layout not in ("both", "input_major"):
            raise ValueError(f"weight_layout must be 'both' or 'input_major', "
                             f"got {self.weight_layout!r}")
        bad = [k for k in (*self.kernels, *([self.kernel] if self.kernel else []))
               if k not in KERNELS]
        if bad or not self.kernels:
            raise ValueError(f"kernels must be a non-empty subset of {KERNELS}, "
                             f"got {bad or self.kernels}")
        if not 0.0 < self.heldout < 1.0:
            raise ValueError(f"heldout must be in (0, 1), got {self.heldout!r}")
        for name in ("min_tokens", "max_rows", "repeats", "greedy_rows"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)!r}")
        if self.multi_token not in ("masked", "dense"):
            raise ValueError(f"multi_token must be 'masked' or 'dense', got {self.multi_token!r}")
        if not 0.0 < self.greedy_step < 0.5:
            raise ValueError(f"greedy_step must be in (0, 0.5), got {self.greedy_step!r}")
