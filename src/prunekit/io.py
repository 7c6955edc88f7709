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
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn.utils import parametrize

from prunekit._registry import Registry
from prunekit.datasets import BUILTIN_MODELS


class UnsafeFileError(ValueError):
    """The file needs full unpickling, which the caller has not allowed."""


def fsync_dir(path: Path) -> None:
    """fsync a directory so a rename inside it is durable (no-op where unsupported)."""
    try:
        fd = os.open(str(path), os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it replaces ``path`` atomically.

    The one atomic-write helper: the temporary file is fsync-ed, moved over ``path`` with
    ``os.replace`` and the directory fsync-ed, so a crash at any instant leaves either the old
    or the new file, never a torn one.
    """
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
        fsync_dir(path.parent)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


_DIR_SUFFIX = ".saving"


@contextlib.contextmanager
def atomic_dir(path: str | Path) -> Iterator[Path]:
    """Yield a new hidden directory beside ``path``; on success it takes ``path``'s place.

    The directory counterpart of :func:`atomic_path`: the caller writes every file into the
    yielded directory; when the block ends without error the directory replaces ``path`` (a
    directory already there is moved aside and removed with everything in it), so ``path`` never
    mixes old and new files. On error the new directory is removed and ``path`` is untouched.
    Hidden directories left by a write killed midway are removed by the next write to ``path``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    for p in path.parent.glob(f".{path.name}.*"):
        if p.is_dir() and (p.name.endswith(_DIR_SUFFIX) or ".old-" in p.name):
            shutil.rmtree(p, ignore_errors=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=_DIR_SUFFIX, dir=path.parent))
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o777 & ~umask)  # mkdtemp makes 0700: give it ordinary permissions
    try:
        yield tmp
        if path.exists():
            old = path.with_name(f".{path.name}.old-{os.getpid()}")
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
        fsync_dir(path.parent)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through :func:`atomic_path`."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


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


def _torchvision(name: str, kwargs: dict[str, Any]) -> nn.Module:
    import torchvision

    try:
        return torchvision.models.get_model(name, **{"weights": None, **kwargs})
    except ValueError as exc:
        raise ValueError(f"unknown torchvision model {name!r}: {exc}") from None


def _timm(name: str, kwargs: dict[str, Any]) -> nn.Module:
    import timm

    try:
        return timm.create_model(name, **{"pretrained": False, **kwargs})
    except RuntimeError as exc:  # timm: "Unknown model (name)"
        raise ValueError(f"timm: {exc}") from None


def import_factory(target: str) -> Callable[..., Any]:
    """``pkg.mod:name`` -> that attribute (imports the module: runs the user's code)."""
    try:
        mod_name, fn_name = target.rsplit(":", 1)
        return getattr(importlib.import_module(mod_name), fn_name)
    except (ValueError, ImportError, AttributeError) as exc:
        raise ValueError(f"model spec 'module:{target}' must be 'module:pkg.mod:factory' ({exc})") from None


def _module(target: str, kwargs: dict[str, Any]) -> nn.Module:
    return import_factory(target)(**kwargs)


def _builtin(name: str, kwargs: dict[str, Any]) -> nn.Module:
    if name not in BUILTIN_MODELS:
        raise ValueError(f"unknown built-in 'prunekit:{name}'; known: "
                         + ", ".join(f"prunekit:{k}" for k in BUILTIN_MODELS))
    return BUILTIN_MODELS[name](**kwargs)


def _hf(path: str, kwargs: dict[str, Any]) -> nn.Module:
    if kwargs:
        raise ValueError(f"hf:{path}: builder arguments are not supported for hf: specs")
    return _from_hf(path)


# scheme -> builder(rest of the spec, builder kwargs): the one parser of ``scheme:rest`` specs
MODEL_SPECS: Registry[Callable[[str, dict[str, Any]], nn.Module]] = Registry("model spec scheme")
MODEL_SPECS.register("torchvision", _torchvision)
MODEL_SPECS.register("timm", _timm)
MODEL_SPECS.register("module", _module)
MODEL_SPECS.register("hf", _hf)
MODEL_SPECS.register("prunekit", _builtin)
# marker file -> loader(directory) for saved-model directories (``prunekit.json`` is registered
# by :mod:`prunekit.serialize`); HF ``config.json`` directories are tried after these
# (loaders are called as ``loader(directory, trust=...)``)
MODEL_DIRECTORIES: Registry[Callable[..., nn.Module]] = Registry("model directory format")


def build_from_spec(spec: str, **kwargs: Any) -> nn.Module:
    """Build the architecture a ``scheme:rest`` spec names (random weights), with builder
    ``kwargs``. Raises ValueError naming the known schemes for anything else."""
    scheme, sep, rest = str(spec).partition(":")
    if not sep or scheme not in MODEL_SPECS:
        known = "/".join(f"{s}:" for s in MODEL_SPECS.names())
        raise ValueError(f"model spec {str(spec)!r}: no such file, and not {known}")
    return MODEL_SPECS.get(scheme)(rest, kwargs)


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
    if s.partition(":")[0] in MODEL_SPECS:
        return build_from_spec(s)
    path = Path(s)
    if path.is_dir():
        for marker in MODEL_DIRECTORIES:
            if (path / marker).exists():
                return MODEL_DIRECTORIES.get(marker)(path, trust=trust)
    if path.is_dir() and (path / "config.json").exists():
        return _from_hf(str(path))
    if not path.is_file():
        return build_from_spec(s)  # not a file: the error names the known schemes
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
