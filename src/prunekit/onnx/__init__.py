"""ONNX graphs: import through onnx2torch, prune (channels or weights), check with ONNX Runtime
against the masked original graph, write ONNX back. Needs the ``onnx`` extra."""

from prunekit.onnx.importer import unsupported_ops
from prunekit.onnx.prune import OnnxPruneConfig, OnnxPruneResult, OnnxVerifyError, prune_onnx

__all__ = ["OnnxPruneConfig", "OnnxPruneResult", "OnnxVerifyError", "prune_onnx",
           "unsupported_ops"]
