"""Write pruned sizes back into a Hugging Face ``config`` when every layer agrees.

HF modules are rebuilt from ``config`` by ``from_pretrained``; a pruned model can go through
``save_pretrained``/``from_pretrained`` only if one set of config fields reproduces every tensor
shape. :func:`sync_hf_config` proposes the fields (head counts, ``head_dim``, MLP width, hidden
size) from the modules, rebuilds the architecture on the ``meta`` device from the candidate config
and accepts it only when all parameter shapes match. Otherwise the model's config is left as it
was and prunekit's own loader (``pk.load``, shape-driven resize) is the way back.
"""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn

from prunekit.handlers._proj import proj_out
from prunekit.handlers.attention_hf import attention_family, qkvo_heads


def _uniform(values: list[int]) -> int | None:
    return values[0] if values and all(v == values[0] for v in values) else None


def _attention_fields(model: nn.Module) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    heads, kvs, hds, bert_heads = [], [], [], []
    for m in model.modules():
        fam = attention_family(m)
        if fam == "qkvo":
            h, kv, hd = qkvo_heads(m)
            heads.append(h), kvs.append(kv), hds.append(hd)
        elif fam == "bert":
            bert_heads.append(proj_out(m.query) // m.attention_head_size)
        elif fam == "gpt2":
            bert_heads.append(m.split_size // m.head_dim)
    if heads and _uniform(heads) and _uniform(kvs) and _uniform(hds):
        fields.update(num_attention_heads=heads[0], num_key_value_heads=kvs[0], head_dim=hds[0])
    if bert_heads and _uniform(bert_heads):
        fields["num_attention_heads"] = bert_heads[0]
    return fields


_MLP_FIELDS = (  # (module attribute chain ending in a projection, config field)
    ("mlp.gate_proj", "intermediate_size"),
    ("intermediate.dense", "intermediate_size"),
    ("mlp.fc1", "intermediate_size"),
    ("mlp.c_fc", "n_inner"),
)


def _mlp_fields(model: nn.Module) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    for path, field_name in _MLP_FIELDS:
        sizes = []
        for name, m in model.named_modules():
            if name.endswith(path) and isinstance(getattr(m, "weight", None), torch.Tensor):
                sizes.append(proj_out(m))
        if sizes and _uniform(sizes):
            fields[field_name] = sizes[0]
    return fields


def _hidden_fields(model: nn.Module) -> dict[str, Any]:
    emb = model.get_input_embeddings() if hasattr(model, "get_input_embeddings") else None
    if isinstance(emb, nn.Embedding):
        return {"hidden_size": emb.embedding_dim}
    return {}


def _shapes(model: nn.Module) -> dict[str, tuple[int, ...]]:
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


def config_reproduces(model: nn.Module, config: Any) -> bool:
    """True if ``type(model)(config)`` built on ``meta`` has exactly ``model``'s tensor shapes."""
    try:
        with torch.device("meta"):
            rebuilt = type(model)._from_config(copy.deepcopy(config))
    except Exception:  # noqa: BLE001 - any failure means "not reproducible"
        return False
    return _shapes(rebuilt) == _shapes(model)


def sync_hf_config(model: nn.Module, undo: list | None = None) -> bool:
    """Update ``model.config`` from the pruned modules if one config reproduces all shapes.

    Args:
        undo: if given, ``(config, field, old value)`` entries are appended for rollback.

    Returns:
        ``True`` when ``model.config`` now rebuilds the pruned architecture (``save_pretrained``
        / ``from_pretrained`` round-trip), ``False`` when sizes differ per layer (config untouched).
    """
    cfg = getattr(model, "config", None)
    if cfg is None or not hasattr(type(model), "_from_config"):
        return False
    if config_reproduces(model, cfg):
        return True
    fields = {**_hidden_fields(model), **_attention_fields(model), **_mlp_fields(model)}
    cand = copy.deepcopy(cfg)
    for k, v in fields.items():
        setattr(cand, k, v)
    if not config_reproduces(model, cand):
        return False
    for k, v in fields.items():
        if undo is not None:
            undo.append((cfg, k, getattr(cfg, k, None)))
        setattr(cfg, k, v)
    return True
