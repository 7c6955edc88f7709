"""Resumable, atomic checkpoints.

One file per run directory, ``last.pt``, written with ``torch.save`` to a temporary file in the
same directory, ``fsync``-ed and moved over the old one with ``os.replace`` (then the directory
is fsync-ed; :func:`prunekit.io.atomic_path`): a crash at any instant leaves either the previous or the new checkpoint,
never a torn one. It is read back with ``torch.load(weights_only=True)``, so only tensors and
plain containers are stored (RNG states included: torch, numpy, python, CUDA).

Each checkpoint carries fingerprints of the recipe and of the dense model the run started from;
resuming with a different model or recipe raises before anything is written.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from prunekit.io import atomic_write_bytes

CKPT_NAME = "last.pt"
META_NAME = "meta.json"


def atomic_torch_save(obj: Any, path: Path) -> None:
    """``torch.save`` through :func:`prunekit.io.atomic_write_bytes`."""
    buf = io.BytesIO()
    torch.save(obj, buf)
    atomic_write_bytes(path, buf.getvalue())


def capture_rng() -> dict[str, Any]:
    """All global RNG states as weights-only-loadable values."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    version, pystate, gauss = random.getstate()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "cached": float(cached)},
        "python": {"version": version, "state": list(pystate), "gauss": gauss},
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict[str, Any]) -> None:
    """Inverse of :func:`capture_rng`."""
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state((n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"],
                         n["has_gauss"], n["cached"]))
    p = state["python"]
    random.setstate((p["version"], tuple(p["state"]), p["gauss"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def model_fingerprint(model: nn.Module) -> str:
    """SHA-256 over the names, shapes, dtypes and values of the model's state_dict."""
    h = hashlib.sha256()
    for name, t in sorted(model.state_dict().items()):
        h.update(f"{name}|{tuple(t.shape)}|{t.dtype}|".encode())
        h.update(t.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes()
                 if t.numel() else b"")
    return h.hexdigest()


class Checkpointer:
    """Saves and restores the run state of one run directory.

    Args:
        directory: the run directory (created on first save).
        recipe_fp: :meth:`Recipe.fingerprint` of the run.
        model_fp: :func:`model_fingerprint` of the dense starting model.
        enabled: ``False`` on non-zero DDP ranks (only rank 0 writes).
    """

    def __init__(self, directory: str | os.PathLike, recipe_fp: str, model_fp: str,
                 enabled: bool = True) -> None:
        self.dir = Path(directory)
        self.recipe_fp = recipe_fp
        self.model_fp = model_fp
        self.enabled = enabled

    @property
    def path(self) -> Path:
        return self.dir / CKPT_NAME

    def exists(self) -> bool:
        return self.path.exists()

    def load(self) -> dict[str, Any]:
        """Load and verify the checkpoint (ValueError names what differs)."""
        try:
            state = torch.load(self.path, map_location="cpu", weights_only=True)
        except Exception as e:  # noqa: BLE001 - corrupt or foreign file
            raise ValueError(f"checkpoint {self.path} cannot be read safely: {e}") from e
        if not isinstance(state, dict) or "recipe_fp" not in state:
            raise ValueError(f"{self.path} is not a prunekit run checkpoint")
        if state["model_fp"] != self.model_fp:
            raise ValueError(
                f"checkpoint {self.path} was written for a different model (fingerprint "
                f"{state['model_fp'][:12]} != {self.model_fp[:12]}); resume with the same dense "
                "model and weights, or use another checkpoint directory")
        if state["recipe_fp"] != self.recipe_fp:
            raise ValueError(
                f"checkpoint {self.path} was written for a different recipe (fingerprint "
                f"{state['recipe_fp'][:12]} != {self.recipe_fp[:12]}); resume with the same "
                "recipe, or use another checkpoint directory")
        return state

    def save(self, state: dict[str, Any], meta: dict[str, Any] | None = None) -> None:
        """Atomically replace the checkpoint with ``state`` (+ fingerprints)."""
        if not self.enabled:
            return
        state = dict(state, recipe_fp=self.recipe_fp, model_fp=self.model_fp)
        atomic_torch_save(state, self.path)
        if meta is not None:
            atomic_write_bytes(self.dir / META_NAME,
                               json.dumps(meta, indent=2, default=str).encode())


__all__ = [
    "CKPT_NAME", "Checkpointer", "atomic_torch_save", "atomic_write_bytes", "capture_rng",
    "model_fingerprint", "restore_rng",
]
