"""Measured serving cost in the report: sizes, ONNX Runtime path, latency rows, JSON."""

import json

import pytest
from sklearn.ensemble import GradientBoostingClassifier, RandomForestClassifier

from prunekit.classic import ClassicConfig, prune
from prunekit.classic.serving import batches, describe


def test_report_measures_both_runtimes(cancer):
    pytest.importorskip("skl2onnx")
    Xt, Xv, yt, yv = cancer
    rf = RandomForestClassifier(20, random_state=0).fit(Xt, yt)
    cfg = ClassicConfig(batch_sizes=(1, 64), repeats=3, warmup=1, clock="process_cpu")
    small, rep = prune(rf, Xv, yv, max_drop=0.01, config=cfg)
    cells = {(r.runtime, r.batch) for r in rep.latency}
    assert cells == {("sklearn", 1), ("sklearn", 64), ("onnxruntime", 1), ("onnxruntime", 64)}
    for r in rep.latency:
        assert r.dense.median > 0 and r.pruned.median > 0 and r.dense.repeats == 3
    assert rep.before.onnx_bytes > rep.after.onnx_bytes > 0
    assert rep.onnx_agreement is not None and rep.onnx_agreement > 0.95
    text = rep.summary()
    for word in ("trees", "pickle size", "onnx size", "val accuracy", "sklearn b=1 ms",
                 "onnxruntime b=64 ms", "process_cpu clock"):
        assert word in text
    d = json.loads(json.dumps(rep.to_dict()))
    assert d["after"]["n_trees"] == small.n_estimators and len(d["latency"]) == 4


def test_describe_without_onnx(cancer):
    Xt, Xv, yt, yv = cancer
    gb = GradientBoostingClassifier(n_estimators=5, random_state=0).fit(Xt, yt)
    size, onx = describe(gb, Xv, onnx=False)
    assert onx is None and size.onnx_bytes is None and size.n_trees == 5
    assert size.n_nodes == sum(t.tree_.node_count for t in gb.estimators_.ravel())
    assert size.pickle_bytes > 0 and size.n_support_vectors is None


def test_batches_are_real_distinct_rows(cancer):
    _, Xv, _, _ = cancer
    pool = batches(Xv, 10, count=3)
    assert len(pool) == 3 and pool[0].shape == (10, Xv.shape[1])
    assert not all((pool[0] == p).all() for p in pool[1:])
