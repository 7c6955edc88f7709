"""Sparse execution backends for pruned Linear layers, chosen per layer by measurement.

A zero weight costs as much as any other in a dense kernel; a sparse kernel skips it but pays
for indexing and irregular memory access, so whether it wins depends on sparsity, shape, dtype
and device. :func:`choose_sparse_backends` measures every applicable backend against dense on
the layer's real input (captured from one forward of the model) and keeps a sparse backend only
where it was measured faster; every decision keeps both timings for the report.

Backends (registry :data:`SPARSE_BACKENDS`):
- ``csr``: ``torch.sparse_csr_tensor`` weight with 32-bit indices, ``W @ x^T`` (MKL on CPU,
  cuSPARSE on CUDA). On CPU at 90% sparsity it beats dense from a few tokens up (see
  ``benchmarks/sparse_crossover.py``); 32-bit indices cut the bytes read per non-zero from 12
  to 8 and were about 20% faster than 64-bit ones in our measurements.
- ``2:4``: ``torch.sparse.to_sparse_semi_structured`` (cuSPARSELt, default algorithm), CUDA with
  fp16/bf16 and a valid 2:4 weight (Mishra et al., "Accelerating Sparse Deep Neural Networks",
  2021).
- ``2:4-search``: the same with the algorithm picked by ``torch._cslt_sparse_mm_search``.
- ``2:4-cutlass``: the CUTLASS kernels of the same subclass.

Convolutions stay dense: a CSR convolution needs im2col, which materialises a k²-times larger
input; on the shapes we measured that costs more than the skipped multiplies save.
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from prunekit._registry import Registry
from prunekit.call import hooked_forward
from prunekit.masks.select import is_nm_valid
from prunekit.bench.timer import compare_latency

LayerTimer = Callable[[Mapping[str, nn.Module], Tensor], Mapping[str, float]]


class CSRLinear(nn.Module):
    """``nn.Linear`` whose weight is a CSR sparse tensor: ``y = (W_csr @ x^T)^T + b``."""

    def __init__(self, linear: nn.Linear) -> None:
        super().__init__()
        self.in_features, self.out_features = linear.in_features, linear.out_features
        w = linear.weight.detach()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # "sparse CSR support is in beta"
            csr = w.to_sparse_csr()
            if csr.values().numel() < 2**31 - 1:  # 32-bit indices: less memory traffic per nnz
                csr = torch.sparse_csr_tensor(csr.crow_indices().to(torch.int32),
                                              csr.col_indices().to(torch.int32), csr.values(),
                                              csr.shape)
        self.register_buffer("weight", csr, persistent=False)
        self.bias = None if linear.bias is None else nn.Parameter(linear.bias.detach().clone(),
                                                                  requires_grad=False)

    def __deepcopy__(self, memo: dict[int, Any]) -> CSRLinear:
        # a sparse CSR tensor has no storage for copy.deepcopy to walk; clone it instead
        new = self.__class__.__new__(self.__class__)
        memo[id(self)] = new
        for key, value in self.__dict__.items():
            if key == "_buffers":
                value = {n: (b.clone() if b is not None and b.layout == torch.sparse_csr
                             else copy.deepcopy(b, memo)) for n, b in value.items()}
            else:
                value = copy.deepcopy(value, memo)
            new.__dict__[key] = value
        return new

    def forward(self, x: Tensor) -> Tensor:
        lead = x.shape[:-1]
        x2 = x.reshape(-1, self.in_features)  # (N, in)
        y = (self.weight @ x2.t()).t()  # (N, out)
        if self.bias is not None:
            y = y + self.bias
        return y.reshape(*lead, self.out_features)

    def extra_repr(self) -> str:
        nnz = self.weight.values().numel()
        return (f"in_features={self.in_features}, out_features={self.out_features}, "
                f"density={nnz / max(self.in_features * self.out_features, 1):.3f}")


class SemiStructuredLinear(nn.Module):
    """``nn.Linear`` with a 2:4 semi-structured weight (CUDA, fp16/bf16)."""

    def __init__(self, linear: nn.Linear, kernel: str = "cusparselt",
                 alg_id: int | None = None) -> None:
        super().__init__()
        from torch.sparse import SparseSemiStructuredTensor, to_sparse_semi_structured

        self.in_features, self.out_features = linear.in_features, linear.out_features
        old = SparseSemiStructuredTensor._FORCE_CUTLASS
        SparseSemiStructuredTensor._FORCE_CUTLASS = kernel == "cutlass"
        try:
            w = to_sparse_semi_structured(linear.weight.detach())
        finally:
            SparseSemiStructuredTensor._FORCE_CUTLASS = old
        if alg_id is not None:
            w.alg_id_cusparselt = int(alg_id)
        self.weight = nn.Parameter(w, requires_grad=False)
        self.bias = linear.bias

    def forward(self, x: Tensor) -> Tensor:
        lead = x.shape[:-1]
        y = nn.functional.linear(x.reshape(-1, self.in_features), self.weight, self.bias)
        return y.reshape(*lead, self.out_features)


@dataclass(frozen=True)
class SparseBackend:
    """A registered backend: ``check(linear, x) -> reason it cannot apply | None``, ``build``."""

    name: str
    check: Callable[[nn.Linear, Tensor], str | None]
    build: Callable[[nn.Linear, Tensor], nn.Module]


SPARSE_BACKENDS: Registry[SparseBackend] = Registry("sparse backend")


def _sparsity(w: Tensor) -> float:
    return float((w == 0).sum()) / max(w.numel(), 1)


def _check_csr(lin: nn.Linear, x: Tensor) -> str | None:
    if _sparsity(lin.weight) == 0:
        return "no zero weights"
    if x.device.type == "cpu" and lin.weight.dtype not in (torch.float32, torch.float64):
        return f"CSR matmul on CPU needs fp32/fp64, weight is {lin.weight.dtype}"
    return None


def _check_24(lin: nn.Linear, x: Tensor) -> str | None:
    if x.device.type != "cuda":
        return "2:4 kernels need CUDA"
    if lin.weight.dtype not in (torch.float16, torch.bfloat16):
        return f"2:4 kernels need fp16/bf16, weight is {lin.weight.dtype}"
    if not hasattr(torch.sparse, "to_sparse_semi_structured"):
        return "this torch has no to_sparse_semi_structured"
    major, _ = torch.cuda.get_device_capability(x.device)
    if major < 8:
        return "2:4 sparse tensor cores need compute capability >= 8.0"
    if not is_nm_valid(lin.weight != 0, 2, 4):
        return "weight is not 2:4 sparse along the input dimension"
    o, i = lin.weight.shape
    if o % 64 or i % 64:
        return f"weight {o}x{i}: 2:4 kernels need both sizes divisible by 64"
    return None


def _search_alg(lin: nn.Linear, x: Tensor) -> nn.Module:
    mod = SemiStructuredLinear(lin)
    search = getattr(torch, "_cslt_sparse_mm_search", None)
    if search is None:
        raise RuntimeError("torch._cslt_sparse_mm_search is not available in this torch")
    packed = mod.weight.packed
    alg = search(packed, x.reshape(-1, lin.in_features).t().contiguous())
    alg = alg[0] if isinstance(alg, tuple) else alg
    mod.weight.alg_id_cusparselt = int(alg)
    return mod


SPARSE_BACKENDS.register("csr", SparseBackend("csr", _check_csr, lambda m, x: CSRLinear(m)))
SPARSE_BACKENDS.register("2:4", SparseBackend("2:4", _check_24,
                                              lambda m, x: SemiStructuredLinear(m)))
SPARSE_BACKENDS.register("2:4-search", SparseBackend("2:4-search", _check_24, _search_alg))
SPARSE_BACKENDS.register("2:4-cutlass", SparseBackend(
    "2:4-cutlass", _check_24, lambda m, x: SemiStructuredLinear(m, "cutlass")))


@dataclass
class LayerDecision:
    """The backend chosen for one layer and every measurement behind the choice."""

    layer: str
    shape: tuple[int, ...]
    input_shape: tuple[int, ...]
    sparsity: float
    backend: str = "dense"
    timings_ms: dict[str, float | None] = field(default_factory=dict)
    notes: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__, shape=list(self.shape), input_shape=list(self.input_shape))


def default_layer_timer(repeats: int = 20, warmup: int = 3) -> LayerTimer:
    """Median ms of each module on random copies of ``x`` (rotating, together larger than the
    cache), interleaved (see :func:`compare_latency`)."""

    def timer(mods: Mapping[str, nn.Module], x: Tensor) -> dict[str, float]:
        stats = compare_latency(dict(mods), x, warmup=warmup, repeats=repeats, rotate=None,
                                number=None, device=x.device)
        return {k: s.median for k, s in stats.items()}

    return timer


def capture_inputs(model: nn.Module, example_inputs: Any,
                   layers: Mapping[str, nn.Module]) -> dict[str, Tensor]:
    """The input each layer sees during one forward of ``example_inputs``."""
    seen: dict[str, Tensor] = {}
    hooks = [m.register_forward_pre_hook(
        lambda mod, args, n=n: seen.setdefault(n, args[0].detach().clone()))
        for n, m in layers.items()]
    hooked_forward(model, example_inputs, hooks)
    return seen


def _decide(name: str, lin: nn.Linear, x: Tensor, candidates: Sequence[str], timer: LayerTimer,
            margin: float, atol: float) -> tuple[LayerDecision, nn.Module | None]:
    d = LayerDecision(name, tuple(lin.weight.shape), tuple(x.shape), _sparsity(lin.weight))
    mods: dict[str, nn.Module] = {"dense": lin}
    with torch.no_grad():  # not inference_mode: built weights must stay usable with autograd
        ref = lin(x)
        for c in candidates:
            be = SPARSE_BACKENDS.get(c)
            why = be.check(lin, x)
            if why:
                d.notes[c] = why
                continue
            try:
                mod = be.build(lin, x)
                if not torch.allclose(mod(x).float(), ref.float(), atol=atol, rtol=1e-2):
                    raise RuntimeError("outputs differ from dense")
                mods[c] = mod
            except Exception as e:  # noqa: BLE001 - a backend that fails is not chosen; say why
                d.notes[c] = f"failed: {type(e).__name__}: {e}"
                d.timings_ms[c] = None
    if len(mods) == 1:
        return d, None
    times = dict(timer(mods, x))
    d.timings_ms.update(times)
    best = min((c for c in mods if c != "dense"), key=lambda c: times[c])
    if times[best] < times["dense"] * (1.0 - margin):
        d.backend = best
        return d, mods[best]
    return d, None


def choose_sparse_backends(
    model: nn.Module,
    example_inputs: Any,
    *,
    candidates: Sequence[str] = ("csr", "2:4", "2:4-search", "2:4-cutlass"),
    timer: LayerTimer | None = None,
    margin: float = 0.03,
    min_sparsity: float = 0.0,
    apply: bool = False,
    atol: float = 1e-3,
) -> list[LayerDecision]:
    """Measure sparse backends against dense for every sparse ``nn.Linear``; keep the winners.

    Args:
        model: model in the dtype/device it will run in (masks finalized).
        example_inputs: one batch at the batch size that matters (each layer is timed on the
            input it really receives).
        candidates: registered backend names to try.
        timer: ``timer({name: module}, x) -> {name: ms}``; the default interleaves them.
        margin: a backend must be this fraction faster than dense to be chosen.
        min_sparsity: layers with less weight sparsity are left dense without timing.
        apply: swap the chosen modules into ``model`` (after all decisions: all or nothing).

    Returns:
        One :class:`LayerDecision` per considered layer (both timings, notes for skipped ones).
    """
    for c in candidates:
        SPARSE_BACKENDS.get(c)
    if not 0.0 <= margin < 1.0:
        raise ValueError(f"margin must be in [0, 1), got {margin!r}")
    timer = timer or default_layer_timer()
    layers = {n: m for n, m in model.named_modules()
              if type(m) is nn.Linear and _sparsity(m.weight) > min_sparsity}
    inputs = capture_inputs(model, example_inputs, layers)
    decisions, swaps = [], {}
    for name, lin in layers.items():
        if name not in inputs:
            continue  # not called by this forward
        d, mod = _decide(name, lin, inputs[name], candidates, timer, margin, atol)
        decisions.append(d)
        if mod is not None:
            swaps[name] = mod
    if apply:
        for name, mod in swaps.items():
            model.set_submodule(name, mod)
    return decisions
