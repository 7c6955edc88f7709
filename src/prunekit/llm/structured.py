"""Structured removal in transformers: attention heads / GQA groups, MLP channels, whole blocks.

A thin LLM-facing layer over prunekit's structural engine (``prunekit.plan_structured``: trace,
dependency groups, handlers; ``prunekit.drop_layers``: block influence). What this module adds:
calibration batches built from token windows, the LM loss for gradient criteria (``taylor``),
separate ratios for heads and MLP channels (two plans, each excluding the other family), and the
HF config written back (``num_attention_heads``, ``num_key_value_heads``, ``intermediate_size``,
``num_hidden_layers``) so the result reloads with ``from_pretrained``.

Block influence (Men et al., "ShortGPT", 2024): ``BI = 1 − E[cos(x_in, x_out)]``; the blocks that
rotate their input least are dropped first.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field
from typing import Any

import torch.nn.functional as F
from torch import Tensor, nn

from prunekit.config import check_ratio
from prunekit.llm.blocks import find_blocks
from prunekit.structural.layers import drop_layers
from prunekit.importance.structured import NEEDS
from prunekit.structural import plan_structured

#: Module-name globs of the two families pruned with separate ratios (a name matching both,
#: e.g. BERT's ``attention.output.dense``, belongs to attention).
ATTENTION_GLOBS = ("*self_attn*", "*attention*", "*attn*")
MLP_GLOBS = ("*mlp*", "*intermediate*", "*.output.dense", "*feed_forward*")


def _family_names(model: nn.Module, family: str) -> tuple[str, ...]:
    """Module names of one family (``attention`` or ``mlp``) to exclude from the other's plan."""
    out = []
    for name, _ in model.named_modules():
        att = any(fnmatch.fnmatchcase(name, g) for g in ATTENTION_GLOBS)
        mlp = not att and any(fnmatch.fnmatchcase(name, g) for g in MLP_GLOBS)
        if (family == "attention" and att) or (family == "mlp" and mlp):
            out.append(name)
    return tuple(out)


@dataclass
class StructuredReport:
    """What :func:`prune_heads_mlp` removed."""

    params_before: int
    params_after: int
    config_updates: dict[str, Any] = field(default_factory=dict)
    summaries: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        upd = ", ".join(f"{k}={v}" for k, v in self.config_updates.items()) or "none"
        return (f"params {self.params_before:,} -> {self.params_after:,} "
                f"({self.params_after / max(self.params_before, 1):.1%} kept); config: {upd}")


def _batches(samples: Tensor, needs_target: bool, limit: int) -> list:
    rows = [{"input_ids": samples[i : i + 1]} for i in range(min(limit, samples.shape[0]))]
    return [(r, r["input_ids"]) for r in rows] if needs_target else rows


def lm_loss(output: Any, target: Tensor) -> Tensor:
    """Next-token cross-entropy of a causal LM output (``.logits``) against its own input ids."""
    logits = output.logits if hasattr(output, "logits") else output[0]
    return F.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]).float(),
                           target[:, 1:].reshape(-1).to(logits.device))


def _plan(model: nn.Module, samples: Tensor, ratio: float, exclude: tuple[str, ...],
          criterion: str, max_batches: int):

    needs = NEEDS.get(criterion, frozenset())
    kw: dict[str, Any] = {}
    if "grad" in needs:
        if not hasattr(model, "lm_head") and not hasattr(getattr(model, "config", None), "vocab_size"):
            raise ValueError("criterion 'taylor' needs a causal LM (loss on next-token prediction)")
        kw = {"calib_data": _batches(samples, True, max_batches), "loss_fn": lm_loss}
    elif "act" in needs:
        kw = {"calib_data": _batches(samples, False, max_batches)}
    return plan_structured(model, {"input_ids": samples[:1]}, criterion=criterion, ratio=ratio,
                           exclude=exclude, **kw)


def _prunes_something(plan) -> bool:
    return plan.params[1] < plan.params[0]


def prune_heads_mlp(model: nn.Module, samples: Tensor, heads: float = 0.0, mlp: float = 0.0,
                    criterion: str = "l2", max_batches: int = 16) -> StructuredReport:
    """Remove the fraction ``heads`` of attention heads (GQA: whole key/value groups) and ``mlp``
    of MLP intermediate channels in every block, then update the HF config.

    Raises:
        ValueError: a ratio outside [0, 1), nothing to prune, or the structural engine cannot
            prune that family in this architecture (the model is then unchanged).
    """
    check_ratio(heads, "heads")
    check_ratio(mlp, "mlp")
    if not (heads or mlp):
        raise ValueError("nothing to prune: give heads and/or mlp > 0")
    find_blocks(model)  # clear error for non-transformers
    before = sum(p.numel() for p in model.parameters())
    cfg_before = config_fields(model)
    rep = StructuredReport(before, before)
    plans = []
    for ratio, other, family in ((mlp, "attention", "MLP channels"), (heads, "mlp", "attention heads")):
        if not ratio:
            continue
        plan = _plan(model, samples, ratio, _family_names(model, other), criterion, max_batches)
        if not _prunes_something(plan):
            raise ValueError(f"the structural engine found no prunable {family} in "
                             f"{type(model).__name__} (needs its handlers for this architecture)")
        plans.append(plan)
    for plan in plans:  # plans computed on the unchanged model; apply one after the other
        rep.summaries.append(plan.summary(max_rows=20))
    _apply_all(model, samples, heads, mlp, criterion, max_batches, plans)
    after = config_fields(model)
    rep.config_updates = {k: v for k, v in after.items() if cfg_before.get(k) != v}
    rep.params_after = sum(p.numel() for p in model.parameters())
    return rep


def _apply_all(model, samples, heads, mlp, criterion, max_batches, plans) -> None:
    """Apply the MLP plan, then re-plan heads on the changed model (plans index channels)."""
    if mlp:
        plans[0].apply()
    if heads:
        plan = plans[-1] if not mlp else _plan(model, samples, heads, _family_names(model, "mlp"),
                                               criterion, max_batches)
        plan.apply()


def config_fields(model: nn.Module) -> dict[str, Any]:
    """Size fields of the HF config (the structural engine rewrites them when it applies a plan
    and one config reproduces every layer's shapes)."""
    cfg = getattr(model, "config", None)
    if cfg is None:
        return {}
    fields = ("num_attention_heads", "num_key_value_heads", "intermediate_size", "head_dim",
              "num_hidden_layers")
    return {k: getattr(cfg, k) for k in fields if hasattr(cfg, k)}


def drop_blocks(model: nn.Module, samples: Tensor, n: int, criterion: str = "block_influence",
                max_batches: int = 16) -> list[str]:
    """Remove ``n`` whole transformer blocks with the lowest block influence; HF config updated.

    Uses :func:`prunekit.structural.layers.drop_layers` on calibration windows.
    """
    if criterion != "block_influence":
        raise ValueError(f"criterion for --drop-layers must be 'block_influence', got {criterion!r}")
    path, blocks = find_blocks(model)
    if not isinstance(n, int) or not 0 < n < len(blocks):
        raise ValueError(f"--drop-layers must be in 1..{len(blocks) - 1} for {len(blocks)} blocks, got {n}")
    rep = drop_layers(model, n=n, criterion="block_influence",
                      calib_data=_batches(samples, False, max_batches))
    return list(rep.removed)
