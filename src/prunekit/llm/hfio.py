"""Load Hugging Face model directories and write pruned ones atomically.

``hf:./path`` (or a plain directory) is loaded with the ``Auto*`` class its config names:
``…ForCausalLM`` architectures with ``AutoModelForCausalLM``, anything else with ``AutoModel``.
Saving goes to a temporary sibling directory that is renamed into place only when complete, so
an error never leaves a half-written output.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from torch import nn

from prunekit.io import atomic_dir
from prunekit.serialize import load
from prunekit.serialize import save

_DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16,
           "float64": torch.float64}


def parse_hf_spec(spec: str) -> Path:
    """``hf:./dir`` or ``./dir`` -> Path of an existing model directory with a config.json."""
    path = Path(spec[3:] if spec.startswith("hf:") else spec).expanduser()
    if not (path / "config.json").is_file() and not (path / "prunekit.json").is_file():
        raise ValueError(f"{spec!r} is not a Hugging Face model directory (no config.json in {path})")
    return path


def needs_prunekit_loader(path: Path) -> bool:
    """True for a directory written by prunekit.save whose sizes the HF config cannot express."""
    meta = Path(path) / "prunekit.json"
    if not meta.is_file():
        return False
    return json.loads(meta.read_text()).get("base", {}).get("kind") != "hf_pretrained"


def _dtype_kwarg() -> str:
    """``from_pretrained``'s dtype keyword: ``dtype`` since transformers 4.56, ``torch_dtype``
    before (4.x passes an unknown ``dtype`` on to the model's constructor, which rejects it)."""
    import transformers
    from packaging.version import Version

    return "dtype" if Version(transformers.__version__) >= Version("4.56") else "torch_dtype"


def load_hf(spec: str, dtype: str | None = None) -> tuple[nn.Module, Any]:
    """(model in eval mode on CPU, tokenizer or None) from a local directory, offline."""
    from transformers import AutoConfig, AutoModel, AutoModelForCausalLM, AutoTokenizer

    path = parse_hf_spec(spec)
    if dtype is not None and dtype not in _DTYPES:
        raise ValueError(f"dtype must be one of {sorted(_DTYPES)}, got {dtype!r}")
    if needs_prunekit_loader(path):
        model = load(path).eval()
        if dtype:
            model = model.to(_DTYPES[dtype])
        return model, AutoTokenizer.from_pretrained(path, local_files_only=True)
    cfg = AutoConfig.from_pretrained(path, local_files_only=True)
    archs = getattr(cfg, "architectures", None) or []
    cls = AutoModelForCausalLM if any(a.endswith("ForCausalLM") for a in archs) else AutoModel
    kw = {_dtype_kwarg(): _DTYPES[dtype]} if dtype else {}
    model = cls.from_pretrained(path, local_files_only=True, **kw).eval()
    try:
        tok = AutoTokenizer.from_pretrained(path, local_files_only=True)
    except (OSError, ValueError, TypeError):
        tok = None
    return model, tok


def check_output_dir(out: str | Path, overwrite: bool) -> Path:
    """Refuse an existing non-empty output unless ``overwrite`` (checked before any work)."""
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())) and not overwrite:
        raise ValueError(f"output {out} exists and is not empty (use --force to replace it)")
    return out


def save_hf_atomic(model: nn.Module, tokenizer: Any, out: str | Path, overwrite: bool = False,
                   structured: bool = False, extra: dict[str, str] | None = None) -> Path:
    """``save_pretrained`` model (+ tokenizer) into ``out``, whole or not at all
    (:func:`prunekit.io.atomic_dir`).

    With ``structured`` the model goes through :func:`prunekit.serialize.save`: plain
    ``save_pretrained`` when the HF config can express the pruned sizes, otherwise prunekit's
    format (reload with :func:`prunekit.load`; e.g. BERT with fewer heads, whose config derives
    the head size from ``hidden_size / num_attention_heads``). ``extra``: more files written
    into the same directory (name -> text).
    """
    out = check_output_dir(out, overwrite)
    with atomic_dir(out) as tmp:
        if structured:
            save(model, tmp)
        else:
            model.save_pretrained(tmp)
        if tokenizer is not None:
            tokenizer.save_pretrained(tmp)
        for name, text in (extra or {}).items():  # e.g. the pruning report
            (Path(tmp) / name).write_text(text)
    return out
