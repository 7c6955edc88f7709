"""Safe, atomic model and weight I/O.

- Weights are written as safetensors, atomically (temp file in the same folder + ``os.replace``),
  so a crash never leaves a half-written file where a good one was.
- ``.pt``/``.pth`` inputs are read with ``torch.load(weights_only=True)``; a pickled whole module
  is refused unless the caller passes ``trust=True`` (unpickling runs arbitrary code).
- Model specs name where an architecture comes from: ``torchvision:resnet18``, ``timm:resnet18``,
  ``hf:<dir>``, ``module:pkg.mod:factory``, a prunekit directory, or a trusted ``.pt`` file.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import torch
from torch import Tensor, nn
from torch.nn.utils import parametrize


class UnsafeFileError(ValueError):
    """The file needs full unpickling, which the caller has not allowed."""


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it replaces ``path`` atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    umask = os.umask(0)
    os.umask(umask)
    try:
        yield tmp_path
        with open(tmp_path, "rb") as fh:
            os.fsync(fh.fileno())
        # mkstemp makes 0600, and writers that replace the file (safetensors) keep theirs:
        # give the final file ordinary permissions after it is written
        os.chmod(tmp_path, 0o666 & ~umask)
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def plain_state_dict(model: nn.Module) -> dict[str, Tensor]:
    """The state_dict the model will have after :func:`prunekit.finalize`, without mutating it:
    masked weights appear under their ordinary keys with zeros where the mask is off."""
    sd = {}
    for name, module in model.named_modules():
        prefix = f"{name}." if name else ""
        for pname, p in module.named_parameters(recurse=False):
            sd[prefix + pname] = p
        for bname, b in module.named_buffers(recurse=False):
            if bname in module._non_persistent_buffers_set:
                continue
            sd[prefix + bname] = b
        if parametrize.is_parametrized(module):
            for tname in module.parametrizations.keys():
                sd[prefix + tname] = getattr(module, tname)
    # drop the parametrization internals (original tensors and mask buffers)
    return {k: v.detach() for k, v in sd.items() if ".parametrizations." not in f".{k}"}


def _contiguous_unshared(sd: dict[str, Tensor]) -> dict[str, Tensor]:
    seen: dict[tuple[int, int], str] = {}
    out = {}
    for k, v in sd.items():
        key = (v.untyped_storage().data_ptr(), v.storage_offset())
        v = v.detach().cpu()
        out[k] = v.clone().contiguous() if key in seen else v.contiguous()
        seen[key] = k
    return out


def save_weights(model_or_sd: nn.Module | dict[str, Tensor], path: str | Path,
                 metadata: dict[str, str] | None = None) -> Path:
    """Write ordinary (finalized) weights to a safetensors file, atomically."""
    from safetensors.torch import save_file

    sd = plain_state_dict(model_or_sd) if isinstance(model_or_sd, nn.Module) else model_or_sd
    path = Path(path)
    with atomic_path(path) as tmp:
        save_file(_contiguous_unshared(sd), str(tmp), metadata=metadata or {})
    return path


def load_weights(path: str | Path) -> dict[str, Tensor]:
    """Read a state_dict safely from ``.safetensors`` or ``.pt``/``.pth`` (``weights_only``)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such weights file: {path}")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        try:
            return load_file(str(path))
        except Exception as exc:
            raise ValueError(f"{path} is not a valid safetensors file: {exc}") from None
    try:
        obj = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:
        raise UnsafeFileError(
            f"{path} could not be read as plain weights with weights_only=True ({exc.__class__.__name__}); "
            "if it is a pickled model from a source you trust, pass trust=True (CLI: --trust)"
        ) from None
    if isinstance(obj, dict) and "state_dict" in obj and isinstance(obj["state_dict"], dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict) or not all(isinstance(v, Tensor) for v in obj.values()):
        raise ValueError(f"{path} does not hold a state_dict of tensors")
    return obj


def _from_factory(spec: str) -> nn.Module:
    try:
        mod_name, fn_name = spec.rsplit(":", 1)
        factory = getattr(importlib.import_module(mod_name), fn_name)
    except (ValueError, ImportError, AttributeError) as exc:
        raise ValueError(f"model spec 'module:{spec}' must be 'module:pkg.mod:factory' ({exc})") from None
    return factory()


def _from_hf(path: str) -> nn.Module:
    try:
        import transformers
    except ImportError:  # pragma: no cover
        raise ValueError("hf: model specs need the [hf] extra (pip install transformers)") from None
    import os

    # a name that is no local folder is looked up in the local cache only, unless the user
    # allowed the Hub (HF_HUB_OFFLINE=0): a typo fails at once instead of after network retries
    local = Path(path).exists() or os.environ.get("HF_HUB_OFFLINE", "1") != "0"
    kw = {"local_files_only": True} if local else {}
    try:
        cfg = transformers.AutoConfig.from_pretrained(path, **kw)
    except OSError as exc:
        raise ValueError(f"hf:{path}: no such local model folder or cached model "
                         f"({str(exc).splitlines()[0][:160]})") from None
    archs = getattr(cfg, "architectures", None) or []
    for arch in archs:
        cls = getattr(transformers, arch, None)
        if cls is not None:
            return cls.from_pretrained(path, **kw)
    return transformers.AutoModel.from_pretrained(path, **kw)


def load_model_spec(spec: str | Path, trust: bool = False) -> nn.Module:
    """Build or load a model from a spec string (see module docstring). Models built from a
    ``torchvision:``/``timm:``/``module:`` spec remember it, so :func:`prunekit.save` can rebuild
    them after structural pruning.

    Raises:
        ValueError: unknown scheme/name, corrupt file. UnsafeFileError: pickled module without trust.
    """
    model = _build_from_spec(spec, trust)
    if not isinstance(model, nn.Module):
        raise ValueError(f"model spec {str(spec)!r} gave a {type(model).__name__}, not an "
                         "nn.Module")
    scheme = str(spec).partition(":")[0]
    if scheme in ("torchvision", "timm", "module") and "_prunekit_spec" not in model.__dict__:
        model.__dict__["_prunekit_spec"] = str(spec)
    return model


def _build_from_spec(spec: str | Path, trust: bool) -> nn.Module:
    s = str(spec)
    scheme, _, rest = s.partition(":")
    if scheme == "torchvision":
        import torchvision

        try:
            return torchvision.models.get_model(rest, weights=None)
        except ValueError as exc:
            raise ValueError(f"unknown torchvision model {rest!r}: {exc}") from None
    if scheme == "timm":
        import timm

        try:
            return timm.create_model(rest, pretrained=False)
        except RuntimeError as exc:  # timm: "Unknown model (name)"
            raise ValueError(f"timm: {exc}") from None
    if scheme == "hf":
        return _from_hf(rest)
    if scheme == "module":
        return _from_factory(rest)
    path = Path(s)
    if path.is_dir() and (path / "prunekit.json").exists():
        from prunekit import serialize  # written by the structural engine

        return serialize.load(path, trust=trust)
    if path.is_dir() and (path / "config.json").exists():
        return _from_hf(str(path))
    if not path.is_file():
        raise ValueError(f"model spec {s!r}: no such file, and not torchvision:/timm:/hf:/module:")
    if path.suffix == ".safetensors":
        raise ValueError(f"{path} holds weights only; name the architecture too (e.g. --arch torchvision:resnet18)")
    try:
        obj = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception:
        if not trust:
            raise UnsafeFileError(
                f"{path} is a pickled model; loading it runs code from the file. Pass trust=True "
                "(CLI: --trust) only for files you trust, or save weights as safetensors."
            ) from None
        obj = torch.load(str(path), map_location="cpu", weights_only=False)
    if isinstance(obj, nn.Module):
        return obj
    raise ValueError(f"{path} holds weights, not a model; name the architecture (--arch SPEC)")


def load_model(spec: str | Path, weights: str | Path | None = None, trust: bool = False) -> nn.Module:
    """:func:`load_model_spec` then, if given, a strict load of ``weights``."""
    model = load_model_spec(spec, trust=trust)
    if weights is not None:
        sd = load_weights(weights)
        try:
            model.load_state_dict(sd, strict=True)
        except RuntimeError as exc:
            raise ValueError(f"weights {weights} do not match model {spec}: {exc}") from None
    return model
