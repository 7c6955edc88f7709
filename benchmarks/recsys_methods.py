"""The pruning methods compared by ``recsys_bar.py``: one function per method, each taking the
seed's context (data, initial and trained dense model, training settings) and a target.

Every model is trained or fine-tuned with validation early stopping
(:func:`prunekit.recsys.select.fit_validated`); the test split is never read here.
"""

from __future__ import annotations

import copy
import re
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from prunekit.recover.recipe import Cubic  # noqa: E402
from prunekit.recsys import (  # noqa: E402
    MF, NCF, ROW_CRITERIA, GradualEntryMasks, PEPConfig, TrainConfig, load_movielens100k,
    pep_search, prune_embeddings,
)
from prunekit.recsys.dims import apply_dims, group_width, plan_dims  # noqa: E402
from prunekit.recsys.entries import global_masks  # noqa: E402
from prunekit.recsys.mixed import EntryMasks, mixed_masks  # noqa: E402
from prunekit.recsys.prune import install_table  # noqa: E402
from prunekit.recsys.rows import RowContext, keep_rows, remapped_table  # noqa: E402
from prunekit.recsys.select import fit_validated, validation_split  # noqa: E402
from prunekit.recsys.tables import table_bytes, table_params  # noqa: E402

# model key -> (class, embedding width)
MODELS = {"MF": (MF, 32), "NCF": (NCF, 32), "NCF64": (NCF, 64)}
# chosen on validation NDCG@10 (seed 0). MF: lr {2e-3, 5e-3, 1e-2} x L2 {0, 1e-6, 1e-5, 3e-5, 1e-4}
# (not a full product), negatives {4, 8}, batch {1024, 4096}; NCF: L2 {0, 1e-6, 1e-5} at lr 5e-3;
# NCF64: L2 {1e-6, 1e-5, 3e-5} at lr 5e-3 (recsys_bar.py --tune).
TUNED = {"MF": dict(lr=5e-3, weight_decay=1e-5, negatives=4, batch_size=4096),
         "NCF": dict(lr=5e-3, weight_decay=1e-5, negatives=4, batch_size=4096),
         "NCF64": dict(lr=5e-3, weight_decay=1e-5, negatives=4, batch_size=4096)}
KD = 0.5
KD_ITEMS = 16


class Ctx:
    """Data, the seed's initial and trained dense model, and the training settings."""

    def __init__(self, name: str, seed: int, args, cache: Path, **tune) -> None:
        self.name, self.seed, self.args, self.tune = name, seed, args, tune
        self.ft: dict = {}  # fine-tune overrides (see split_label)
        cls, self.dim = MODELS[name]
        self.train, self.test = load_movielens100k()
        self.fit, self.val = validation_split(self.train)
        torch.manual_seed(seed)
        self.init = cls(self.train.n_users, self.train.n_items, self.dim)
        self.dense = copy.deepcopy(self.init)
        suffix = "".join(f"_{k}{v:g}" for k, v in sorted(tune.items())
                         if TUNED[name].get(k) != v)
        path = cache / f"dense_{name}_{seed}{suffix}.pt"
        if path.exists():
            self.dense.load_state_dict(torch.load(path, weights_only=True))
        else:
            fit_validated(self.dense, self.fit, self.val, self.cfg(**tune), args.patience,
                          min_epoch=args.scratch_min_epoch)
            torch.save(self.dense.state_dict(), path)
        self.counts = {n: sum(self.fit.counts(f) for f in feats)
                       for n, feats in self.dense.table_features().items()}

    def cfg(self, **kw) -> TrainConfig:
        base = dict(TUNED[self.name], epochs=self.args.max_epochs, seed=self.seed)
        base.update(kw)
        return TrainConfig(**base)

    def recover(self, model, on_step=None, kd: float = KD, min_epoch: int = 1,
                patience: int | None = None, kd_items: int = 0):
        """Fine-tune / retrain with validation early stopping (and KD when ``kd > 0``, over
        ``kd_items`` extra uniformly drawn items per positive too)."""
        kw = dict(seed=self.seed + 11, distill=kd, distill_items=kd_items)
        kw.update({k: v for k, v in self.ft.items() if kd or k in ("lr", "weight_decay")})
        cfg = self.cfg(**kw)
        return fit_validated(model, self.fit, self.val, cfg, patience or self.args.patience,
                             on_step=on_step, teacher=self.dense if kd else None,
                             min_epoch=min_epoch)


FT_KEYS = {"kd": ("distill", float), "lr": ("lr", float), "wd": ("weight_decay", float),
           "items": ("distill_items", int), "T": ("temperature", float)}


def split_label(label: str) -> tuple[str, dict]:
    """``"method [kd=0.8,lr=2e-3]"`` -> (``"method"``, fine-tune overrides of
    :class:`~prunekit.recsys.TrainConfig`); ``kd``/``items``/``T`` apply where the method
    distils, ``lr``/``wd`` to every fine-tune and retrain."""
    if not label.endswith("]") or " [" not in label:
        return label, {}
    base, _, opts = label[:-1].rpartition(" [")
    out = {}
    for item in opts.split(","):
        key, _, value = item.partition("=")
        if key not in FT_KEYS:
            raise ValueError(f"unknown fine-tune option {key!r} in {label!r}; use {list(FT_KEYS)}")
        name, cast = FT_KEYS[key]
        out[name] = cast(value)
    return base, out


def emb_params(model) -> int:
    """Stored float embedding values (a product-quantised table: its codebooks)."""
    return sum(table_params(model.get_submodule(n)) for n in model.table_features())


def emb_bytes(model) -> int:
    """Stored embedding bytes: float values + packed product-quantisation codes."""
    return sum(table_bytes(model.get_submodule(n)) for n in model.table_features())


def narrow_width(ctx: Ctx, ratio: float) -> int:
    """Largest width removing at least ``ratio`` (MF keeps its width-1 bias tables)."""
    extra = 1 if ctx.name == "MF" else 0
    return max(1, int((1 - ratio) * (ctx.dim + extra) - extra + 1e-9))


def rows_with_dims(ctx: Ctx, ratio: float, dims: float = 0.75) -> float:
    """Row ratio that, with ``dims`` of the columns removed, removes at least ``ratio``."""
    extra = 1 if ctx.name == "MF" else 0
    width = ctx.dim - round(dims * ctx.dim)
    return 1 - 0.97 * (1 - ratio) * (ctx.dim + extra) / (width + extra)


def _masked(ctx: Ctx, model, masks, kd: float, min_epoch: int = 1):
    hook = EntryMasks(model, masks)
    ctx.recover(model, hook, kd, min_epoch)
    for n, t in hook.finish().items():
        install_table(model, [n], t)
    return model


def m_narrow(ctx: Ctx, ratio: float):
    torch.manual_seed(ctx.seed)
    model = MODELS[ctx.name][0](ctx.train.n_users, ctx.train.n_items, narrow_width(ctx, ratio))
    ctx.recover(model, kd=0.0, min_epoch=ctx.args.scratch_min_epoch)
    return model


def m_dims(ctx: Ctx, ratio: float, kd: float = KD, kd_items: int = 0):
    model = copy.deepcopy(ctx.dense)
    prune_embeddings(model, ctx.fit, dims=1 - narrow_width(ctx, ratio) / ctx.dim)
    ctx.recover(model, kd=kd, kd_items=kd_items)
    return model


def item_rows(ctx: Ctx, model, ratio: float) -> None:
    """Item tables keep the ``1 - ratio`` most frequent items; the rest share a fallback row
    (users all have >= 18 training ratings, so user rows are kept)."""
    crit = ROW_CRITERIA.get("frequency")
    for name, feats in model.table_features().items():
        if feats == ("items",) and not name.endswith("bias"):
            table = model.get_submodule(name)
            keep = keep_rows(crit(RowContext(table.weight.detach(), ctx.counts[name], None)),
                             ratio)
            install_table(model, [name], remapped_table(table, keep))


def m_widths(ctx: Ctx, widths: tuple[int, ...], rows: float = 0.0, kd: float = KD,
             gradual: bool = False, kd_items: int = 0):
    """Per-group kept widths (GMF / MLP user / MLP item for NCF), optionally rare items'
    rows folded into a fallback row; KD fine-tune. ``gradual``: the width halves step by step
    (each step fine-tuned with KD, patience 2) down to ``widths``."""
    model = copy.deepcopy(ctx.dense)
    if gradual:
        current = [group_width(model, g) for g in model.dim_groups()]
        while any(c // 2 > w for c, w in zip(current, widths, strict=True)):
            current = [max(w, c // 2) for c, w in zip(current, widths, strict=True)]
            apply_dims(model, plan_dims(model, widths=current))
            ctx.recover(model, kd=kd, patience=2, kd_items=kd_items)
    apply_dims(model, plan_dims(model, widths=list(widths)))
    if rows:
        item_rows(ctx, model, rows)
    ctx.recover(model, kd=kd, kd_items=kd_items)
    return model


def _svd(m: torch.Tensor, r: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    u, sv, vh = torch.linalg.svd(m.double(), full_matrices=False)
    return u[:, :r], sv[:r], vh[:r].T


def lowrank_ncf(model, widths: tuple[int, int, int]) -> None:
    """NCF's tables cut to ``widths`` by truncated SVD instead of column selection: the best
    rank-r approximation (Eckart-Young) of what each table contributes — the GMF bilinear form
    ``P diag(w) Q^T`` and each MLP table's first-layer pre-activation ``P W^T`` — factored
    into a narrower table and a narrower downstream weight."""
    g, mu, mi = widths
    with torch.no_grad():
        d = model.gmf_user.weight.shape[1]
        w_pred = model.predict.weight[0, :d].double()
        pu, pi = model.gmf_user.weight.double(), model.gmf_item.weight.double()
        u, sv, v = _svd(pu * w_pred @ pi.T, g)
        gmf_u, gmf_i = u * sv.sqrt(), v * sv.sqrt()
        w0 = model.mlp[0].weight.double()
        d_m = model.mlp_user.weight.shape[1]
        u1, sig1, v1 = _svd(model.mlp_user.weight.double() @ w0[:, :d_m].T, mu)
        u2, sig2, v2 = _svd(model.mlp_item.weight.double() @ w0[:, d_m:].T, mi)
        apply_dims(model, plan_dims(model, widths=list(widths)))
        model.gmf_user.weight.copy_(gmf_u)
        model.gmf_item.weight.copy_(gmf_i)
        model.predict.weight[0, :g] = 1.0
        model.mlp_user.weight.copy_(u1 * sig1)
        model.mlp_item.weight.copy_(u2 * sig2)
        model.mlp[0].weight.copy_(torch.cat([v1, v2], 1))


def m_lowrank(ctx: Ctx, widths: tuple[int, ...], rows: float = 0.0, kd: float = KD):
    model = copy.deepcopy(ctx.dense)
    lowrank_ncf(model, widths)
    if rows:
        item_rows(ctx, model, rows)
    ctx.recover(model, kd=kd)
    return model


def m_rows(ctx: Ctx, ratio: float, dims: float | None = None):
    model = copy.deepcopy(ctx.dense)
    prune_embeddings(model, ctx.fit, rows=ratio, dims=dims, by="frequency")
    ctx.recover(model)
    return model


def m_magnitude(ctx: Ctx, ratio: float, kd: float = KD):
    model = copy.deepcopy(ctx.dense)
    scores = {n: model.get_submodule(n).weight.detach().abs() for n in ctx.counts}
    return _masked(ctx, model, global_masks(scores, ratio), kd)


def m_mixed(ctx: Ctx, ratio: float, alpha: float = 0.5):
    model = copy.deepcopy(ctx.init)
    return _masked(ctx, model, mixed_masks(model, ctx.counts, ratio, alpha), kd=0.0,
                   min_epoch=ctx.args.scratch_min_epoch)


def m_mixed_dense(ctx: Ctx, ratio: float, alpha: float):
    """Frequency-allocated widths cut from the trained dense model (columns in the group
    criterion's order), then a KD fine-tune with the masks fixed."""
    model = copy.deepcopy(ctx.dense)
    return _masked(ctx, model, mixed_masks(model, ctx.counts, ratio, alpha), kd=KD)


def m_pep(ctx: Ctx, ratio: float):
    """PEP: thresholds learned jointly from the initial weights, then the found structure is
    retrained from the same initial weights (the paper's lottery-ticket step)."""
    search = ctx.cfg(epochs=ctx.args.pep_epochs, seed=ctx.seed + 7)
    found = pep_search(ctx.init, list(ctx.counts), ratio, ctx.fit,
                       cfg=PEPConfig(s_init=-15.0, train=search, threshold_lr=0.1))
    return _masked(ctx, copy.deepcopy(ctx.init), found.masks, kd=0.0,
                   min_epoch=ctx.args.scratch_min_epoch)


def m_gradual(ctx: Ctx, ratio: float, kd: float = 0.0):
    """Magnitude entries pruned during training from scratch, cubic schedule over the first
    ``--ramp`` epochs; epochs are selected only once the final sparsity is in force."""
    model = copy.deepcopy(ctx.init)
    cfg = ctx.cfg()
    per_epoch = -(-len(ctx.fit) // cfg.batch_size)
    hook = GradualEntryMasks(model, list(ctx.counts), ratio,
                             Cubic(steps=10, every=ctx.args.ramp * per_epoch // 10),
                             cfg.epochs * per_epoch)
    ctx.recover(model, hook, kd, min_epoch=ctx.args.ramp + 1)
    for n, t in hook.finish().items():
        install_table(model, [n], t)
    return model


def m_shared(ctx: Ctx, ratio: float, subspaces: int | None = None,
             centroids: int | None = None, widths: tuple[int, ...] | None = None,
             kd: float = KD, transform: str | None = None):
    """Trained weight sharing: product quantisation (k-means per subspace) of the dense
    model's tables — ``M``/``K`` chosen to remove ``ratio`` of the bytes, or given; with
    ``transform="svd"`` per-column codebooks in the SVD basis, bits allocated — optionally
    after per-group widths, then the codebooks (codes fixed) and the other layers fine-tuned
    with KD."""
    model = copy.deepcopy(ctx.dense)
    if widths:
        apply_dims(model, plan_dims(model, widths=list(widths)))
    if subspaces:
        prune_embeddings(model, ctx.fit, subspaces=subspaces, centroids=centroids,
                         seed=ctx.seed)
    else:
        prune_embeddings(model, ctx.fit, shared=ratio, transform=transform, seed=ctx.seed)
    ctx.recover(model, kd=kd)
    return model


METHODS = {
    "dense (narrower width, from scratch)": m_narrow,
    "dims (pruned + KD fine-tune)": m_dims,
    "dims (pruned + fine-tune, no KD)": lambda c, r: m_dims(c, r, kd=0.0),
    "rows by frequency (+ KD)": m_rows,
    "rows + dims (+ KD)": lambda c, r: m_rows(c, rows_with_dims(c, r), dims=0.75),
    "entries magnitude, one-shot (+ KD)": m_magnitude,
    "entries magnitude, one-shot (no KD)": lambda c, r: m_magnitude(c, r, kd=0.0),
    "entries magnitude, during training (cubic)": m_gradual,
    "mixed by frequency (alpha 0.5, from scratch)": m_mixed,
    "entries PEP (search + rewind retrain)": m_pep,
    "mixed by frequency (alpha 0.25, from the dense model + KD)":
        lambda c, r: m_mixed_dense(c, r, 0.25),
    "mixed by frequency (alpha 0.5, from the dense model + KD)":
        lambda c, r: m_mixed_dense(c, r, 0.5),
    "mixed by frequency (alpha 1, from the dense model + KD)":
        lambda c, r: m_mixed_dense(c, r, 1.0),
    f"dims (pruned + KD fine-tune, KD also over {KD_ITEMS} random items)":
        lambda c, r: m_dims(c, r, kd_items=KD_ITEMS),
}

SHARED = re.compile(r"shared PQ(?: M=(\d+) K=(\d+))?( SVD bits)?"
                    r"(?: after dims widths (\d+(?:/\d+)*))? \((\+ KD|no KD)\)")
WIDTHS = re.compile(r"(dims|low-rank SVD) widths (\d+(?:/\d+)*)(?: \+ item rows ([\d.]+))?"
                    r"( gradual)? \(\+ KD(?:, also over (\d+) random items)?\)")


def widths_label(widths, rows: float = 0.0, gradual: bool = False, kd_items: int = 0) -> str:
    """Label of :func:`m_widths` with these settings (parsed back by :func:`method`)."""
    w = "/".join(map(str, widths))
    return (f"dims widths {w}" + (f" + item rows {rows:g}" if rows else "")
            + (" gradual" if gradual else "")
            + (f" (+ KD, also over {kd_items} random items)" if kd_items else " (+ KD)"))


def method(label: str):
    """The method function of a label: a fixed entry of :data:`METHODS`, per-group widths
    (``widths_label``), e.g. ``"dims widths 2/6/3 + item rows 0.4 (+ KD)"``, or weight
    sharing: ``"shared PQ (+ KD)"`` (``M``, ``K`` chosen to remove the target's bytes),
    ``"shared PQ M=32 K=8 (+ KD)"``, ``"shared PQ M=8 K=16 after dims widths 8/8/8 (no KD)"``,
    ``"shared PQ SVD bits (+ KD)"`` (per-column codebooks in the SVD basis, bits allocated)."""
    if label in METHODS:
        return METHODS[label]
    m = SHARED.fullmatch(label)
    if m is not None:
        sub, cen = (int(m.group(1)), int(m.group(2))) if m.group(1) else (None, None)
        if sub and m.group(3):
            raise KeyError(label)
        widths = tuple(int(w) for w in m.group(4).split("/")) if m.group(4) else None
        kd = KD if m.group(5) == "+ KD" else 0.0
        transform = "svd" if m.group(3) else None
        return lambda c, t: m_shared(c, t, sub, cen, widths, kd, transform)
    m = WIDTHS.fullmatch(label)
    if m is None:
        raise KeyError(label)
    widths = tuple(int(w) for w in m.group(2).split("/"))
    rows, gradual, items = float(m.group(3) or 0), bool(m.group(4)), int(m.group(5) or 0)
    if m.group(1) != "dims":
        if gradual or items:
            raise KeyError(label)
        return lambda c, t: m_lowrank(c, widths, rows)
    return lambda c, t: m_widths(c, widths, rows, gradual=gradual, kd_items=items)
