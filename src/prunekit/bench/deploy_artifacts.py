"""Deploy artifacts: write the winning candidate in its runtime's format, reload it, check it.

| runtime | artifact | load with |
|---|---|---|
| ``onnxruntime``, ``onnxruntime-nospin`` | ``model.onnx`` | ONNX Runtime (spinning as chosen) |
| ``openvino`` | ``model.xml`` + ``model.bin`` (OpenVINO IR, fp32 kept) | OpenVINO CPU plugin |
| ``eager``, ``compile`` and others | ``model.pt2`` (``torch.export`` program) | ``torch.export.load`` |

:func:`load_artifact` returns a callable for any of them. An artifact is kept only after it was
reloaded and its outputs matched the model's within tolerance.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from prunekit.bench.onnx_runtime import export_onnx, onnx_session
from prunekit.bench.openvino_runtime import (
    compile_openvino, convert_openvino, openvino_runner, save_openvino,
)
from prunekit.call import call_model

ONNX_RUNTIMES = ("onnxruntime", "onnxruntime-nospin")


def artifact_name(runtime: str) -> str:
    """The file a candidate of ``runtime`` is written to."""
    if runtime in ONNX_RUNTIMES:
        return "model.onnx"
    return "model.xml" if runtime == "openvino" else "model.pt2"


def _args(x: Any) -> tuple[Any, ...]:
    return x if isinstance(x, tuple) else (x,)


def _flat(y: Any) -> list[torch.Tensor]:
    if isinstance(y, (list, tuple)):
        return [torch.as_tensor(t) for v in y for t in _flat(v)]
    return [torch.as_tensor(y)]


def load_artifact(path: str | Path, threads: int = 1, runtime: str | None = None
                  ) -> Callable[..., Any]:
    """A callable running a ``deploy`` artifact: ``.onnx``, ``.xml`` (OpenVINO IR) or ``.pt2``.

    Args:
        path: the artifact.
        threads: intra-op threads for ONNX Runtime / OpenVINO.
        runtime: the runtime that won (``onnxruntime-nospin`` turns spinning off).
    """
    path = Path(path)
    if path.suffix == ".onnx":
        sess = onnx_session(str(path), torch.device("cpu"), threads,
                            spinning=runtime != "onnxruntime-nospin")
        names = [i.name for i in sess.get_inputs()]

        def run(*xs: torch.Tensor) -> list[Any]:
            return sess.run(None, {n: t.detach().cpu().numpy() for n, t in zip(names, xs,
                                                                              strict=True)})
        return run
    if path.suffix == ".xml":
        fn = openvino_runner(compile_openvino(str(path), threads))
        return lambda *xs: fn(xs)
    if path.suffix == ".pt2":
        return torch.export.load(str(path)).module()
    raise ValueError(f"path must name a .onnx, .xml or .pt2 deploy artifact, got {str(path)!r}")


def _export(m: nn.Module, x: Any, tmp: Path) -> None:
    if tmp.suffix == ".onnx":
        export_onnx(m, x, str(tmp))
    elif tmp.suffix == ".xml":
        save_openvino(convert_openvino(m, x), str(tmp))
    else:
        with torch.no_grad():
            torch.export.save(torch.export.export(m, _args(x)), str(tmp))


def write_artifact(m: nn.Module, runtime: str, threads: int, x: Any, out: Path,
                   atol: float, rtol: float) -> Path:
    """Export ``m`` (an inference copy) for ``runtime`` in a scratch folder, reload it, compare
    its outputs with ``m``'s, then move it into ``out`` (a failed export or a mismatch leaves
    ``out`` untouched). Returns the artifact's path."""
    name = artifact_name(runtime)
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out, prefix=".deploy-") as scratch:
        tmp = Path(scratch) / name
        _export(m, x, tmp)
        got = _flat(load_artifact(tmp, threads, runtime)(*_args(x)))
        with torch.inference_mode():
            want = _flat(call_model(m, x))
        if len(got) != len(want) or not all(
                torch.allclose(g.float().cpu(), w.float().cpu(), atol=atol, rtol=rtol)
                for g, w in zip(got, want, strict=False)):
            raise RuntimeError(f"the reloaded {name} does not match the model's outputs "
                               f"within atol={atol}, rtol={rtol}")
        for f in sorted(Path(scratch).iterdir()):  # model.xml travels with its model.bin
            os.replace(f, out / f.name)
    return out / name
