"""prune_structured: smaller Keras models rebuilt from stock layers, equal to the masked original."""

import numpy as np
import pytest


def _width(layer):
    cfg = layer.get_config()
    return cfg.get("units", cfg.get("filters", cfg.get("output_dim")))


def _np(keras, y):
    return keras.ops.convert_to_numpy(y)


def test_sequential_cnn_halved_saved_and_reloaded(keras, pkk, small_cnn, digits_small, tmp_path):
    x, _ = digits_small
    model = small_cnn()
    bn = model.get_layer("bn")
    rng = np.random.default_rng(0)
    bn.set_weights([rng.uniform(0.5, 1.5, 8), rng.normal(size=8), rng.normal(size=8),
                    rng.uniform(0.5, 2.0, 8)])  # BN statistics that matter
    before = [w.copy() for w in model.get_weights()]
    small = pkk.prune_structured(model, x[:32], ratio=0.5)
    assert [_width(small.get_layer(n)) for n in ("conv", "fc", "out")] == [4, 8, 10]
    assert small.get_layer("fc").get_weights()[0].shape == (6 * 6 * 4, 8)  # Flatten coupled
    assert small.count_params() < 0.55 * model.count_params()
    assert all(np.array_equal(a, b) for a, b in zip(before, model.get_weights(), strict=False))
    path = tmp_path / "small.keras"
    small.save(path)
    back = keras.models.load_model(path)
    np.testing.assert_allclose(_np(keras, back(x[:8])), _np(keras, small(x[:8])), atol=1e-6)


def test_flatten_rows_follow_kept_channels(keras, pkk, small_cnn, digits_small):
    x, _ = digits_small
    model = small_cnn()
    plan = pkk.plan_structured(model, x[:8], ratio=0.5)
    kept = next(k for g, k in plan.keep.items()
                if plan.graph.producers[g][0].name == "conv")
    small = plan.apply()
    old = model.get_layer("fc").get_weights()[0]  # (36*8, 16)
    new = small.get_layer("fc").get_weights()[0]  # (36*4, 8)
    fc_kept = next(k for g, k in plan.keep.items() if plan.graph.producers[g][0].name == "fc")
    rows = (np.arange(36)[:, None] * 8 + kept[None, :]).reshape(-1)
    np.testing.assert_array_equal(new, old[rows][:, fc_kept])


def test_residual_add_couples_both_branches(keras, pkk):
    inp = keras.Input((8, 8, 3))
    a = keras.layers.Conv2D(8, 3, padding="same", name="a")(inp)
    b = keras.layers.Conv2D(8, 3, padding="same", name="b")(keras.layers.ReLU()(a))
    h = keras.layers.GlobalAveragePooling2D()(keras.layers.Add()([a, b]))
    out = keras.layers.Dense(2, name="out")(keras.layers.Dense(6, name="h")(h))
    model = keras.Model(inp, out)
    x = np.random.default_rng(0).standard_normal((4, 8, 8, 3)).astype("float32")
    small = pkk.prune_structured(model, x, ratio=0.5)
    assert [_width(small.get_layer(n)) for n in ("a", "b", "h", "out")] == [4, 4, 3, 2]


def test_embedding_and_conv1d(keras, pkk, tmp_path):
    model = keras.Sequential([keras.Input((5,), dtype="int32"), keras.layers.Embedding(50, 16),
                              keras.layers.Conv1D(8, 3, name="c"),
                              keras.layers.GlobalMaxPooling1D(), keras.layers.Dense(3)])
    ids = np.random.default_rng(0).integers(0, 50, (4, 5))
    small = pkk.prune_structured(model, ids, ratio=0.25)
    assert small.layers[0].output_dim == 12 and _width(small.get_layer("c")) == 6
    small.save(tmp_path / "e.keras")
    assert keras.models.load_model(tmp_path / "e.keras").layers[0].output_dim == 12


def test_unfollowed_layers_freeze_and_exclude(keras, pkk):
    inp = keras.Input((6,))
    a = keras.layers.Dense(8, name="a")(inp)
    b = keras.layers.Dense(8, name="b")(inp)
    c = keras.layers.Dense(8, name="c")(keras.layers.Concatenate()([a, b]))
    out = keras.layers.Dense(2, name="out")(keras.layers.Dense(4, name="d")(c))
    model = keras.Model(inp, out)
    x = np.random.default_rng(0).standard_normal((4, 6)).astype("float32")
    plan = pkk.plan_structured(model, x, ratio=0.5, exclude=("d",))
    frozen = dict(plan.frozen)
    assert "Concatenate" in frozen["a"] and "Concatenate" in frozen["b"]
    assert frozen["d"] == "excluded"
    small = plan.apply()
    assert [_width(small.get_layer(n)) for n in ("a", "b", "c", "d")] == [8, 8, 4, 4]
    assert "frozen" in plan.summary()


def test_bad_input(keras, pkk):
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(4), keras.layers.Dense(2)])
    x = np.zeros((2, 3), "float32")
    with pytest.raises(ValueError, match="ratio"):
        pkk.prune_structured(model, x, ratio=1.0)
    with pytest.raises(ValueError, match="criterion"):
        pkk.prune_structured(model, x, criterion="taylor")
    with pytest.raises(ValueError, match="exclude.*nope"):
        pkk.prune_structured(model, x, exclude=("nope",))
    shared = keras.layers.Dense(3)
    inp = keras.Input((3,))
    twice = keras.Model(inp, shared(shared(inp)))
    with pytest.raises(ValueError, match="called 2 times"):
        pkk.prune_structured(twice, x)
