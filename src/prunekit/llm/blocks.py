"""Transformer block discovery, block-input capture and hook-based activation collectors.

One-shot LLM pruning walks the stack of transformer blocks in order: the inputs of block ``i``
are the outputs of blocks ``0..i-1`` *after* they were pruned (Frantar & Alistarh, 2023, §4;
Sun et al., 2024, §3). Only the block being processed needs to sit on the accelerator.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from prunekit.call import cache_off_kwargs, is_kv_cache, no_kv_cache

#: Attribute paths of the block list in common Hugging Face architectures, tried in order.
BLOCK_PATHS: tuple[str, ...] = (
    "model.layers",  # LLaMA, Mistral, Qwen, Gemma, Phi-3 (…ForCausalLM)
    "layers",  # LlamaModel & co. (base models)
    "model.decoder.layers",  # OPT (…ForCausalLM)
    "decoder.layers",  # OPT base
    "transformer.h",  # GPT-2, GPT-J, Falcon, Bloom
    "h",  # GPT2Model
    "gpt_neox.layers",  # Pythia / GPT-NeoX
    "bert.encoder.layer",  # BERT heads
    "roberta.encoder.layer",
    "encoder.layer",  # BertModel, RoBERTa, MiniLM
    "model.encoder.layer",
)


class _StopForward(Exception):
    """Raised by the capture hook once the first block's inputs are known."""


def _get_path(model: nn.Module, path: str) -> Any:
    obj: Any = model
    for part in path.split("."):
        if not hasattr(obj, part):
            return None
        obj = getattr(obj, part)
    return obj


def find_blocks(model: nn.Module) -> tuple[str, nn.ModuleList]:
    """The transformer block list of ``model`` and its attribute path.

    Raises:
        ValueError: when none of :data:`BLOCK_PATHS` is a non-empty ``nn.ModuleList``.
    """
    for path in BLOCK_PATHS:
        obj = _get_path(model, path)
        if isinstance(obj, nn.ModuleList) and len(obj) > 0:
            return path, obj
    raise ValueError(
        f"{type(model).__name__} has no transformer block list: looked for "
        f"{', '.join(BLOCK_PATHS)} (an nn.ModuleList of blocks); one-shot LLM pruning needs a "
        "Hugging Face-style decoder/encoder layer stack"
    )


def prunable_linears(block: nn.Module) -> dict[str, nn.Module]:
    """``nn.Linear`` (and HF GPT-2 ``Conv1D``) layers inside one block, by qualified name."""
    out: dict[str, nn.Module] = {}
    for name, mod in block.named_modules():
        if isinstance(mod, nn.Linear) or type(mod).__name__ == "Conv1D":
            out[name] = mod
    return out


def weight_rows(module: nn.Module) -> Tensor:
    """The weight as ``(out, in)`` (a view; GPT-2 ``Conv1D`` stores ``(in, out)``)."""
    w = module.weight.data
    return w.t() if type(module).__name__ == "Conv1D" else w


def set_weight_rows(module: nn.Module, rows: Tensor) -> None:
    """Write an ``(out, in)`` matrix back into ``module.weight`` in its stored layout/dtype."""
    w = module.weight.data
    new = rows.t() if type(module).__name__ == "Conv1D" else rows
    w.copy_(new.to(w.dtype))


@dataclass
class BlockInputs:
    """Hidden states entering the current block plus the keyword arguments every block gets.

    Attributes:
        hidden: ``(nsamples, seqlen, hidden)`` hidden states, one row per calibration sample.
        kwargs: keyword arguments passed to blocks (attention mask, rotary embeddings, …);
            identical for all samples because all windows share one length and no padding.
        args: extra positional arguments after the hidden states.
    """

    hidden: Tensor
    kwargs: dict[str, Any] = field(default_factory=dict)
    args: tuple = ()


def _to(obj: Any, device: torch.device) -> Any:
    if isinstance(obj, Tensor):
        return obj.to(device)
    if isinstance(obj, tuple):
        return tuple(_to(o, device) for o in obj)
    if isinstance(obj, list):
        return [_to(o, device) for o in obj]
    if isinstance(obj, dict):
        return {k: _to(v, device) for k, v in obj.items()}
    return obj


def _no_cache(name: str, value: Any) -> Any:
    """Blocks run once per sample: no KV cache is handed on from the capturing forward."""
    if name == "use_cache":
        return False
    return None if is_kv_cache(name, value) else value


@torch.no_grad()
def capture_block_inputs(
    model: nn.Module, blocks: nn.ModuleList, samples: Tensor, device: torch.device
) -> BlockInputs:
    """Run the model up to its first block for every sample and keep what enters it.

    The model stays where it is (CPU for large models): only the embeddings and position code
    run, then a pre-hook on block 0 stops the forward. Captured tensors go to ``device``.
    """
    store: dict[str, Any] = {"hidden": []}

    def hook(_mod: nn.Module, args: tuple, kwargs: dict) -> None:
        hs = args[0] if args else kwargs.pop("hidden_states")
        store["hidden"].append(hs.detach().to(device))
        if "kwargs" not in store:
            store["kwargs"] = {k: _no_cache(k, _to(v, device)) for k, v in kwargs.items()}
            store["args"] = tuple(_no_cache("", _to(a, device)) for a in args[1:])
        raise _StopForward

    model_device = next(model.parameters()).device
    no_cache = cache_off_kwargs(model)
    handle = blocks[0].register_forward_pre_hook(hook, with_kwargs=True)
    try:
        for i in range(samples.shape[0]):
            try:
                with no_kv_cache(model):
                    model(input_ids=samples[i : i + 1].to(model_device), **no_cache)
            except _StopForward:
                continue
            raise RuntimeError("the model finished a forward pass without calling its first block")
    finally:
        handle.remove()
    kwargs = store.get("kwargs", {})
    kwargs.pop("hidden_states", None)
    return BlockInputs(torch.cat(store["hidden"]), kwargs, store.get("args", ()))


def block_output(out: Any) -> Tensor:
    """The hidden states from a block's return value (tensor, or tuple whose first item is)."""
    if isinstance(out, Tensor):
        return out
    if isinstance(out, (tuple, list)) and out and isinstance(out[0], Tensor):
        return out[0]
    if hasattr(out, "last_hidden_state"):
        return out.last_hidden_state
    raise TypeError(f"cannot read hidden states from a block output of type {type(out)}")


@torch.no_grad()
def run_block(block: nn.Module, inputs: BlockInputs) -> Tensor:
    """Outputs of ``block`` for every sample, ``(nsamples, seqlen, hidden)``, one sample at a time."""
    outs = torch.empty_like(inputs.hidden)
    for i in range(inputs.hidden.shape[0]):
        out = block(inputs.hidden[i : i + 1], *inputs.args, **inputs.kwargs)
        outs[i : i + 1] = block_output(out)
    return outs
