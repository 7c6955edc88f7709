"""torch -> ONNX for pruned GraphModules (the torch.export-based exporter, TorchScript fallback)."""

from __future__ import annotations

import contextlib
import io
import warnings
from typing import Any

import torch
from torch import nn


def export_onnx(model: nn.Module, x: torch.Tensor, input_name: str, output_names: list[str],
                dynamic_batch: bool, opset: int | None = None) -> tuple[Any, str]:
    """Export ``model`` on example ``x``; return ``(onnx.ModelProto, how)``.

    The ``torch.onnx.export(dynamo=True)`` path (needs onnxscript) is tried first, with a
    symbolic batch dimension when the source graph had one, then with static shapes, then the
    TorchScript exporter. ``how`` names the path that succeeded.
    """
    import onnx

    attempts = []
    if dynamic_batch:
        attempts.append(("dynamo, dynamic batch", True, True))
    attempts.append(("dynamo", True, False))
    if dynamic_batch:
        attempts.append(("torchscript, dynamic batch", False, True))
    attempts.append(("torchscript", False, False))
    errors = []
    for how, dynamo, dynamic in attempts:
        try:
            with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), \
                    contextlib.redirect_stderr(io.StringIO()):
                warnings.simplefilter("ignore")
                proto = _export(model, x, input_name, output_names, dynamo, dynamic, opset)
            onnx.checker.check_model(proto)
            return proto, how
        except Exception as exc:  # each exporter fails in its own ways; try the next one
            errors.append(f"{how}: {type(exc).__name__}: {str(exc).splitlines()[0][:200]}")
    raise RuntimeError("the pruned model could not be exported to ONNX: " + "; ".join(errors))


def _export(model, x, input_name, output_names, dynamo, dynamic, opset):
    import onnx

    kwargs: dict[str, Any] = {"input_names": [input_name], "output_names": output_names}
    if dynamo:
        if dynamic:
            kwargs["dynamic_shapes"] = ({0: torch.export.Dim("batch")},)
        if opset is not None:
            kwargs["opset_version"] = max(opset, 18)
        prog = torch.onnx.export(model, (x,), dynamo=True, verbose=False, **kwargs)
        return prog.model_proto
    buf = io.BytesIO()
    dyn = {"dynamic_axes": {"input": {0: "batch"}}} if dynamic else {}
    torch.onnx.export(model, (x,), buf, dynamo=False, opset_version=max(opset or 17, 13),
                      input_names=["input"], **dyn)
    proto = onnx.load_from_string(buf.getvalue())
    _rename(proto, {"input": input_name} | {
        o.name: n for o, n in zip(proto.graph.output, output_names, strict=False)})
    return proto


def _rename(proto, names: dict[str, str]) -> None:
    """Rename graph values (the TorchScript exporter refuses some names, e.g. digits)."""
    names = {k: v for k, v in names.items() if k != v}
    if not names:
        return
    g = proto.graph
    for node in g.node:
        node.input[:] = [names.get(n, n) for n in node.input]
        node.output[:] = [names.get(n, n) for n in node.output]
    for v in list(g.input) + list(g.output) + list(g.value_info):
        v.name = names.get(v.name, v.name)
