"""Remove whole residual blocks / transformer layers ranked by block influence.

Block influence (Men et al., "ShortGPT: Layers in Large Language Models are More Redundant Than
You Expect", 2024): ``BI = 1 - E[cos(x_in, x_out)]`` over calibration positions; a block that
barely rotates its input is the cheapest to remove. Cosine is taken over the channel dim at every
position (dim 1 for 4-D/5-D conv feature maps, the last dim otherwise).

Candidates are children of ``nn.Sequential`` / ``nn.ModuleList`` containers that (a) are blocks
(two or more parameterised layers inside), (b) repeat (their class occurs at least twice in the
container) and (c) return a tensor of the same shape as their input on every calibration batch
(so a ResNet block with a downsampling shortcut is never a candidate). ``nn.Sequential`` children
are replaced by ``nn.Identity`` (state_dict names of the other blocks unchanged);
``nn.ModuleList`` children (HF decoder/encoder layers, called with keyword arguments) are deleted
and the HF config (``num_hidden_layers``, ``layer_types``) and every ``layer_idx`` are updated.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from prunekit.call import call_model


@dataclass(frozen=True)
class LayerDropReport:
    """What :func:`drop_layers` removed, with the block-influence score of every candidate."""

    removed: tuple[str, ...]
    scores: dict[str, float] = field(default_factory=dict)
    params_before: int = 0
    params_after: int = 0

    def summary(self) -> str:
        lines = [f"removed {len(self.removed)} block(s): {', '.join(self.removed) or '-'}",
                 f"params {self.params_before:,} -> {self.params_after:,}"]
        for name, s in sorted(self.scores.items(), key=lambda kv: kv[1]):
            mark = "x" if name in self.removed else " "
            lines.append(f"  [{mark}] {name:40s} BI={s:.4f}")
        return "\n".join(lines)


def _is_block(m: nn.Module) -> bool:
    layers = [s for s in m.modules() if s is not m and any(True for _ in s.parameters(False))]
    return len(layers) >= 2


def structural_candidates(model: nn.Module) -> dict[str, tuple[nn.Module, str]]:
    """Repeated blocks in Sequential/ModuleList containers: ``name -> (container, child key)``."""
    out: dict[str, tuple[nn.Module, str]] = {}
    for cname, cont in model.named_modules():
        if not isinstance(cont, (nn.Sequential, nn.ModuleList)):
            continue
        kids = list(cont.named_children())
        for key, child in kids:
            same = sum(type(c) is type(child) for _, c in kids)
            if same >= 2 and _is_block(child):
                out[f"{cname}.{key}" if cname else key] = (cont, key)
    return out


def _first_tensor(obj: Any) -> Tensor | None:
    if isinstance(obj, Tensor):
        return obj
    if isinstance(obj, (tuple, list)) and obj and isinstance(obj[0], Tensor):
        return obj[0]
    if isinstance(obj, dict) and isinstance(obj.get("hidden_states"), Tensor):
        return obj["hidden_states"]
    return getattr(obj, "last_hidden_state", None)


def _cos_per_position(a: Tensor, b: Tensor) -> Tensor:
    dim = 1 if a.dim() >= 4 else -1
    return torch.nn.functional.cosine_similarity(a.float(), b.float(), dim=dim, eps=1e-8)


def block_influence(model: nn.Module, batches: Iterable[Any],
                    names: dict[str, nn.Module]) -> tuple[dict[str, float], set[str]]:
    """Mean ``1 - cos(in, out)`` per block over ``batches``; also the blocks that change shape."""
    sums = {n: 0.0 for n in names}
    counts = {n: 0 for n in names}
    reshaping: set[str] = set()

    def hook_for(name: str):
        def hook(mod, args, kwargs, out):
            x = args[0] if args else kwargs.get("hidden_states")
            y = _first_tensor(out)
            if not isinstance(x, Tensor) or y is None or x.shape != y.shape:
                reshaping.add(name)
                return
            cos = _cos_per_position(x, y)
            sums[name] += float((1.0 - cos).sum())
            counts[name] += cos.numel()
        return hook

    handles = [m.register_forward_hook(hook_for(n), with_kwargs=True) for n, m in names.items()]
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            for batch in batches:
                call_model(model, batch)
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    never = {n for n, c in counts.items() if c == 0}
    scores = {n: sums[n] / counts[n] for n in names if counts[n] and n not in reshaping}
    return scores, reshaping | never


def _hf_config(model: nn.Module):
    cfg = getattr(model, "config", None)
    if cfg is not None and hasattr(cfg, "get_text_config"):
        return cfg.get_text_config(decoder=True)
    return cfg


def _delete_from_list(model: nn.Module, cont: nn.ModuleList, keys: list[str]) -> bool:
    """Delete children ``keys``; update HF config and ``layer_idx``. True if config changed."""
    updated = False
    drop = {int(k) for k in keys}
    kept_idx = [i for i in range(len(cont)) if i not in drop]
    kept = [cont[i] for i in kept_idx]
    cfg = _hf_config(model)
    if cfg is not None and getattr(cfg, "num_hidden_layers", None) == len(cont):
        cfg.num_hidden_layers = len(kept)
        updated = True
        types = getattr(cfg, "layer_types", None)
        if isinstance(types, list) and len(types) == len(cont):
            cfg.layer_types = [types[i] for i in kept_idx]
    for new_i, layer in enumerate(kept):
        for sub in layer.modules():
            if isinstance(getattr(sub, "layer_idx", None), int):
                sub.layer_idx = new_i
    while len(cont):
        del cont[len(cont) - 1]
    for layer in kept:
        cont.append(layer)
    return updated


def _apply_removal(model: nn.Module, chosen: list[str],
                   cands: dict[str, tuple[nn.Module, str]]) -> None:
    by_cont: dict[int, tuple[nn.Module, list[str]]] = {}
    for name in chosen:
        cont, key = cands[name]
        by_cont.setdefault(id(cont), (cont, []))[1].append(key)
    records = []
    for cont, keys in by_cont.values():
        names = [n for n in chosen if cands[n][0] is cont]
        if isinstance(cont, nn.ModuleList):
            cfg_updated = _delete_from_list(model, cont, keys)
            how = "delete+config" if cfg_updated else "delete"
        else:
            for key in keys:
                setattr(cont, key, nn.Identity())
            how = "identity"
        records += [{"name": n, "how": how} for n in names]
    history = model.__dict__.setdefault("_prunekit_history", [])
    history.append({"op": "drop_layers", "layers": records})


def replay_drop(model: nn.Module, op: dict, skip_config_deletions: bool = False) -> None:
    """Re-apply a recorded ``drop_layers`` step to a freshly built base model (used by load)."""
    deletions: dict[str, list[str]] = {}
    for rec in op["layers"]:
        owner, _, key = rec["name"].rpartition(".")
        if rec["how"] == "identity":
            setattr(model.get_submodule(owner), key, nn.Identity())
        elif rec["how"] == "delete" or not skip_config_deletions:
            deletions.setdefault(owner, []).append(key)
    for owner, keys in deletions.items():
        _delete_from_list(model, model.get_submodule(owner), keys)


def _as_batches(inputs: Any, calib_data: Iterable[Any] | None) -> list[Any]:
    if calib_data is not None:
        return list(calib_data)
    if inputs is None:
        raise ValueError("drop_layers: pass example inputs or calib_data for block influence")
    return [inputs]


def drop_layers(model: nn.Module, inputs: Any = None, n: int | None = None,
                criterion: str | list[str] | tuple[str, ...] = "block_influence", *,
                calib_data: Iterable[Any] | None = None) -> LayerDropReport:
    """Remove ``n`` blocks with the lowest block influence, or the blocks named in ``criterion``.

    Args:
        model: modified in place (nothing changes when an error is raised).
        inputs: one example batch (tensor, tuple of positional args, or dict of kwargs).
        n: number of blocks to remove (with ``criterion="block_influence"``).
        criterion: ``"block_influence"`` or an explicit list of block names.
        calib_data: iterable of batches used instead of ``inputs`` for the scores.

    Returns:
        :class:`LayerDropReport` with the removed names and every candidate's score.
    """
    explicit = not isinstance(criterion, str)
    if not explicit and criterion != "block_influence":
        raise ValueError(f"criterion: unknown {criterion!r}; use 'block_influence' or names")
    if not explicit and (not isinstance(n, int) or isinstance(n, bool) or n < 1):
        raise ValueError(f"n: expected a positive int, got {n!r}")
    cands = structural_candidates(model)
    scores: dict[str, float] = {}
    invalid: set[str] = set()
    if inputs is not None or calib_data is not None or not explicit:
        mods = {k: c[0].get_submodule(c[1]) for k, c in cands.items()}
        scores, invalid = block_influence(model, _as_batches(inputs, calib_data), mods)
    valid = [k for k in cands if k not in invalid]
    if explicit:
        chosen = list(dict.fromkeys(criterion))
        bad = [c for c in chosen if c not in valid]
        if bad:
            raise ValueError(f"criterion: {bad} are not removable blocks; removable: {valid}")
    else:
        if n > len(valid):
            raise ValueError(f"n: {n} blocks requested but only {len(valid)} removable: {valid}")
        chosen = sorted(valid, key=lambda k: scores[k])[:n]
    before = sum(p.numel() for p in model.parameters())
    _apply_removal(model, chosen, cands)
    after = sum(p.numel() for p in model.parameters())
    return LayerDropReport(tuple(chosen), scores, before, after)
