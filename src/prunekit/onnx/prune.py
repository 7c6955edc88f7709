"""prune_onnx: ONNX in, pruned ONNX out, checked by ONNX Runtime against the masked graph.

Steps: onnx2torch imports the graph as a ``torch.fx.GraphModule``
(:mod:`prunekit.onnx.importer`); prunekit prunes it with the structural engine
(:func:`prunekit.structural.plan_structured` -> ``apply`` -> :func:`prunekit.structural.verify`)
or with weight masks (:func:`prunekit.weights.prune_weights`); the pruned module goes back to
ONNX through ``torch.onnx.export`` (:mod:`prunekit.onnx.export`); ONNX Runtime runs the
original graph with the removed channels' weight slices zeroed (the masked reference,
:mod:`prunekit.onnx.reference`) and the pruned graph, and their outputs must agree.
"""

from __future__ import annotations

import copy
import fnmatch
import glob
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from prunekit.config import check_ratio
from prunekit.importance.structured import GROUP_CRITERIA
from prunekit.io import atomic_path
from prunekit.masks.apply import finalize
from prunekit.onnx.export import export_onnx
from prunekit.onnx.importer import (
    NodeRef, dynamic_batch, example_input, inline_shared_initializers, input_spec, load_model,
    make_convertible, to_torch,
)
from prunekit.onnx.reference import input_zero_mask, max_diff, run_ort, write_zeros
from prunekit.structural import plan_structured, verify
from prunekit.weights import prune_weights


class OnnxVerifyError(RuntimeError):
    """The pruned graph does not reproduce the masked reference under ONNX Runtime."""


@dataclass(frozen=True)
class OnnxPruneConfig:
    """Validated options of :func:`prune_onnx` (see there)."""

    ratio: float = 0.5
    structured: bool = True
    criterion: str = "l1"
    exclude: tuple[str, ...] = ()
    atol: float = 1e-4

    def __post_init__(self) -> None:
        check_ratio(self.ratio, "ratio")
        if not isinstance(self.structured, bool):
            raise ValueError(f"structured must be True or False, got {self.structured!r}")
        if self.structured:
            GROUP_CRITERIA.get(self.criterion)
        elif self.criterion not in ("l1", "l2", "random"):
            raise ValueError(f"criterion for weight pruning must be l1, l2 or random, "
                             f"got {self.criterion!r}")
        if isinstance(self.exclude, str):
            object.__setattr__(self, "exclude", (self.exclude,))
        object.__setattr__(self, "exclude", tuple(self.exclude))
        if not (isinstance(self.atol, (int, float)) and self.atol > 0):
            raise ValueError(f"atol must be a positive number, got {self.atol!r}")


@dataclass
class OnnxPruneResult:
    """What :func:`prune_onnx` produced and how it was checked.

    Attributes:
        model: the pruned ``onnx.ModelProto``.
        params: ``(dense, pruned)`` parameter counts (nonzero weights for weight pruning).
        frozen: ``(ONNX node, op type, channels, reason)`` of channels left in place.
        conversion_diff: max |onnx2torch module - ONNX Runtime| on the original graph.
        torch_diff: max |pruned - masked| of the torch modules (structural only).
        ort_diff: max |ONNX Runtime(pruned graph) - ONNX Runtime(masked original graph)|.
        exporter: how the graph was written back (``kept graph`` for weight pruning).
    """

    model: Any = field(repr=False)
    config: OnnxPruneConfig
    input_name: str
    input_shape: tuple[int, ...]
    params: tuple[int, int]
    frozen: list[tuple[str, str, int, str]]
    conversion_diff: float
    torch_diff: float | None
    ort_diff: float
    tolerance: float
    exporter: str
    plan_summary: str = ""
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.ort_diff <= self.tolerance

    def summary(self) -> str:
        c = self.config
        mode = f"structured ({c.criterion})" if c.structured else f"weights ({c.criterion})"
        p0, p1 = self.params
        lines = [f"prune_onnx: {mode}, ratio {c.ratio}, input {self.input_name} {self.input_shape}",
                 f"  parameters {p0:,} -> {p1:,} ({100.0 * p1 / max(p0, 1):.1f}% kept"
                 f"{', nonzero' if not c.structured else ''})",
                 f"  onnx2torch import vs ONNX Runtime: max abs diff {self.conversion_diff:.2e}"]
        if self.torch_diff is not None:
            lines.append(f"  torch pruned vs masked: max abs diff {self.torch_diff:.2e}")
        verdict = "OK" if self.ok else "FAILED"
        lines.append(f"  ONNX Runtime on the pruned graph vs the masked reference: max abs diff "
                     f"{self.ort_diff:.2e} (tolerance {self.tolerance:.1e}) {verdict}")
        lines.append(f"  written back by: {self.exporter}")
        if self.frozen:
            lines.append("  frozen channels (not pruned, why):")
            for node, op, n, why in self.frozen:
                lines.append(f"    {node} ({op}, {n} ch): {why}")
        lines += [f"  note: {n}" for n in self.notes]
        return "\n".join(lines)

    def save(self, path: str | Path) -> Path:
        """Write the pruned graph atomically; returns the path."""
        import onnx

        path = Path(path)
        with atomic_path(path) as tmp:
            onnx.save(self.model, str(tmp))
        return path


def _unmappable(gm: nn.Module, refs: dict[str, NodeRef], model) -> list[str]:
    """Weighted modules whose weight is not an initializer read by that node alone."""
    users: dict[str, int] = {}
    for node in model.graph.node:
        for name in node.input:
            users[name] = users.get(name, 0) + 1
    out = []
    for name, mod in gm.named_modules():
        if not isinstance(getattr(mod, "weight", None), torch.Tensor):
            continue
        ref = refs.get(name)
        if ref is None or ref.weight is None or users.get(ref.weight, 0) != 1:
            out.append(name)
    return out


def _excluded(gm: nn.Module, refs: dict[str, NodeRef], patterns: Iterable[str]) -> list[str]:
    out = []
    for pat in patterns:
        hits = [n for n, _ in gm.named_modules() if n and (
            fnmatch.fnmatchcase(n, pat) or fnmatch.fnmatchcase(refs[n].node if n in refs else "", pat))]
        if not hits:
            raise ValueError(f"exclude: no ONNX node or module matches {pat!r}")
        out += hits
    return out


def _n_params(m: nn.Module, nonzero: bool = False) -> int:
    return sum(int((p != 0).sum()) if nonzero else p.numel() for p in m.parameters())


def _outputs(y: Any) -> list:
    ys = y if isinstance(y, (tuple, list)) else [y]
    return [t.detach().numpy() for t in ys]


def prune_onnx(
    path_or_model: Any,
    ratio: float = 0.5,
    structured: bool = True,
    input_shape: Iterable[int] | None = None,
    criterion: str = "l1",
    exclude: Iterable[str] = (),
    atol: float = 1e-4,
    output: str | Path | None = None,
    strict: bool = True,
) -> OnnxPruneResult:
    """Prune an ONNX graph and give it back as ONNX, checked with ONNX Runtime.

    Structural pruning follows Li et al., "Pruning Filters for Efficient ConvNets" (ICLR 2017)
    with the L1 criterion by default; weight pruning is magnitude pruning (Han et al., 2015).

    Args:
        path_or_model: path of a ``.onnx`` file or an ``onnx.ModelProto`` (neither is modified).
        ratio: fraction of each coupled channel group (structured) or of each layer's weights
            (weights) removed.
        structured: remove channels physically (``True``) or zero weights (``False``).
        input_shape: shape of the graph's single input; required when it has dynamic dims.
        criterion: ``l1``/``l2``/``bn_scale``/``random`` (structured), ``l1``/``l2``/``random``.
        exclude: ONNX node names or module names (globs) never pruned.
        atol: tolerance of the comparisons, scaled by the largest reference output above 1.
        output: write the pruned graph there (atomically) once it passed the check.
        strict: raise :class:`OnnxVerifyError` when the check fails.

    Returns:
        An :class:`OnnxPruneResult`; ``.summary()`` lists frozen channels and the checks.

    Raises:
        ValueError: bad option, unreadable file, op onnx2torch cannot convert (named).
        OnnxVerifyError: the pruned graph disagrees with the masked reference (``strict``).
    """
    cfg = OnnxPruneConfig(ratio, structured, criterion, tuple(exclude), atol)
    source = load_model(path_or_model)
    inline_shared_initializers(source)
    spec = input_spec(source, None if input_shape is None else tuple(input_shape))
    model, opset_note = make_convertible(source)
    gm, refs = to_torch(model)
    x = example_input(spec)
    feed = {spec.name: x.numpy()}
    dense_ort = run_ort(model, feed)
    if model is not source:  # the down-converted graph must compute what the source does
        conv = max_diff(run_ort(source, feed), dense_ort)
        if conv > cfg.atol * max(1.0, max(float(abs(o).max()) for o in dense_ort)):
            raise ValueError(f"converting the graph to an older opset changed its outputs "
                             f"(max abs diff {conv:.3g}); the model is not pruned")
    with torch.no_grad():
        conv_diff = max_diff(dense_ort, _outputs(gm(x)))
    scale = max((float(abs(o).max()) for o in dense_ort if o.size), default=0.0)
    tol = cfg.atol * max(1.0, scale)
    if conv_diff > tol:
        raise ValueError(f"onnx2torch's conversion disagrees with ONNX Runtime on this graph "
                         f"(max abs diff {conv_diff:.3g}); the model is not pruned")
    skip = _unmappable(gm, refs, model)
    excl = [glob.escape(n) for n in _excluded(gm, refs, cfg.exclude) + skip]
    run = _structured if cfg.structured else _weights
    result = run(cfg, model, gm, refs, x, feed, spec, excl, tol)
    result.conversion_diff = conv_diff
    if opset_note:
        result.notes.append(opset_note)
    if skip:
        result.notes.append(f"{len(skip)} weighted module(s) whose weight is shared or computed "
                            f"were left dense: {', '.join(skip[:5])}")
    if strict and not result.ok:
        raise OnnxVerifyError(result.summary())
    if output is not None and result.ok:
        result.save(output)
    return result


def _structured(cfg, model, gm, refs, x, feed, spec, excl, tol) -> OnnxPruneResult:
    plan = plan_structured(gm, x, criterion=cfg.criterion, ratio=cfg.ratio, exclude=excl)
    pruned = plan.apply(copy=True)
    tv = verify(gm, plan, pruned=pruned, atol=tol)
    mods = dict(gm.named_modules())
    zero = {}
    notes = []
    for e in plan.edits:
        if not e.exact or e.internal:
            notes.append(f"{e.name}: masking is not exact there; ONNX Runtime compares against "
                         f"the pruned torch module instead")
        if e.keep_in is not None and not e.coupled:
            z = input_zero_mask(mods[e.name], e.keep_in)
            if z is not None:
                zero[e.name] = z
    masked, unmapped = write_zeros(model, refs, zero)
    outs = [o.name for o in model.graph.output]
    proto, how = export_onnx(pruned, x, spec.name, outs, dynamic_batch(model), _opset(model))
    got = run_ort(proto, feed)
    exact = not notes and not unmapped
    if exact:
        ref = run_ort(masked, feed)
    else:
        with torch.no_grad():
            ref = _outputs(pruned(x))
    frozen = []
    for where, n, why in plan.fixed:
        name, _, side = where.rpartition(".")
        ref_node = refs.get(name)
        frozen.append((ref_node.node if ref_node else name, ref_node.op_type if ref_node else "?",
                       n, f"{side}: {why}"))
    return OnnxPruneResult(proto, cfg, spec.name, spec.shape, (_n_params(gm), _n_params(pruned)),
                           frozen, 0.0, tv.max_abs_diff, max_diff(ref, got), tol,
                           f"torch.onnx.export ({how})", plan.summary(), notes)


def _weights(cfg, model, gm, refs, x, feed, spec, excl, tol) -> OnnxPruneResult:
    work = copy.deepcopy(gm)
    report = prune_weights(work, sparsity=cfg.ratio, criterion=cfg.criterion,
                           example_inputs=x, exclude=excl, skip_incompatible=True)
    finalize(work)
    mods = dict(work.named_modules())
    zero = {r.name: (mods[r.name].weight.detach() == 0) for r in report.layers}
    out, unmapped = write_zeros(model, refs, zero)
    with torch.no_grad():
        ref = _outputs(work(x))
    got = run_ort(out, feed)
    frozen = [(refs[n].node if n in refs else n, refs[n].op_type if n in refs else "?", 0, why)
              for n, why in report.skipped]
    notes = [f"{n}: mask could not be written to the graph" for n in unmapped]
    return OnnxPruneResult(out, cfg, spec.name, spec.shape,
                           (_n_params(gm), _n_params(work, nonzero=True)), frozen, 0.0, None,
                           max_diff(ref, got), tol, "kept graph, pruned initializers zeroed",
                           "", notes)


def _opset(model) -> int | None:
    for o in model.opset_import:
        if o.domain in ("", "ai.onnx"):
            return int(o.version)
    return None
