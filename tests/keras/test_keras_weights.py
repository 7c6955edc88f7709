"""prune_low_magnitude / UpdatePruningStep / strip_pruning on Keras 3 with the torch backend."""

import json
import zipfile

import numpy as np
import pytest



def _zeros(layer, name="kernel"):
    return float((np.asarray(getattr(layer, name).numpy()) == 0).mean())


def test_fit_reaches_the_scheduled_sparsity_and_stays_masked(keras, pkk, compile_for, small_cnn, digits_small):
    x, y = digits_small
    dense = small_cnn()
    before = [np.array(w) for w in dense.get_weights()]
    sched = pkk.PolynomialDecay(0.0, 0.8, begin_step=0, end_step=12, frequency=4)
    pruned = compile_for(pkk.prune_low_magnitude(dense, sched))
    assert [type(lay).__name__ for lay in pruned.layers] == [
        "PruneLowMagnitude", "BatchNormalization", "Flatten", "PruneLowMagnitude",
        "PruneLowMagnitude"]
    pruned.fit(x, y, epochs=2, batch_size=50, verbose=0,
               callbacks=[pkk.UpdatePruningStep()])  # 16 steps > end_step
    for w in pkk.collect_prunable_layers(pruned):
        kernel = keras.ops.convert_to_numpy(w.layer.kernel)
        mask = keras.ops.convert_to_numpy(w.masks[0])
        assert _zeros(w.layer) == pytest.approx(0.8, abs=0.01)
        assert np.all(kernel[mask == 0] == 0)
        assert int(w.pruning_step.value) == 15
    assert all(np.array_equal(a, b) for a, b in zip(before, dense.get_weights(), strict=False))  # untouched


def test_fit_without_the_callback_is_a_clear_error(keras, pkk, compile_for, small_cnn, digits_small):
    x, y = digits_small
    pruned = compile_for(pkk.prune_low_magnitude(small_cnn(), sparsity=0.5))
    with pytest.raises(ValueError, match="UpdatePruningStep"):
        pruned.fit(x[:50], y[:50], epochs=1, verbose=0)


def test_strip_then_save_reloads_with_plain_keras(keras, pkk, compile_for, small_cnn, digits_small, tmp_path):
    x, y = digits_small
    pruned = compile_for(pkk.prune_low_magnitude(
        small_cnn(), pkk.ConstantSparsity(0.6, 0, frequency=2)))
    pruned.fit(x, y, epochs=1, batch_size=100, verbose=0, callbacks=[pkk.UpdatePruningStep()])
    stripped = pkk.strip_pruning(pruned)
    assert all(type(lay).__module__.startswith("keras.") for lay in stripped.layers)
    assert _zeros(stripped.get_layer("fc")) == pytest.approx(0.6, abs=0.01)
    np.testing.assert_allclose(stripped.predict(x[:8], verbose=0),
                               pruned.predict(x[:8], verbose=0), atol=1e-5)
    path = tmp_path / "stripped.keras"
    stripped.save(path)
    with zipfile.ZipFile(path) as z:
        config = z.read("config.json").decode()
    assert "prunekit" not in config  # no custom objects left: plain keras loads it
    json.loads(config)
    back = keras.models.load_model(path)
    np.testing.assert_allclose(back.predict(x[:8], verbose=0),
                               stripped.predict(x[:8], verbose=0), atol=1e-6)


def test_unstripped_model_round_trips_with_its_masks(keras, pkk, compile_for, small_cnn, digits_small,
                                                      tmp_path):
    x, y = digits_small
    pruned = compile_for(pkk.prune_low_magnitude(small_cnn(), sparsity=0.5))
    pruned.fit(x[:100], y[:100], epochs=1, batch_size=50, verbose=0,
               callbacks=[pkk.UpdatePruningStep()])
    pruned.save(tmp_path / "p.keras")
    with pkk.prune_scope():  # TF-MOT's spelling works too
        keras.models.load_model(tmp_path / "p.keras")
    back = keras.models.load_model(tmp_path / "p.keras")
    layer = back.get_layer("prune_low_magnitude_fc")
    assert isinstance(layer, pkk.PruneLowMagnitude) and int(layer.pruning_step.value) == 1
    assert layer.pruning_schedule == pkk.ConstantSparsity(0.5, 0)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(layer.masks[0]),
                                  keras.ops.convert_to_numpy(pruned.get_layer("prune_low_magnitude_fc").masks[0]))


def test_functional_model_and_single_layer(keras, pkk):
    inp = keras.Input((6,))
    h = keras.layers.Dense(8, name="a")(inp)
    out = keras.layers.Add()([keras.layers.Dense(8, name="b")(h), h])
    model = keras.Model(inp, out)
    pruned = pkk.prune_low_magnitude(model, pkk.ConstantSparsity(0.5, 0))
    assert {lay.name for lay in pkk.collect_prunable_layers(pruned)} == {
        "prune_low_magnitude_a", "prune_low_magnitude_b"}
    x = np.random.default_rng(0).standard_normal((4, 6)).astype("float32")
    np.testing.assert_allclose(pruned.predict(x, verbose=0), model.predict(x, verbose=0),
                               atol=1e-6)  # weights copied, nothing masked before training
    assert isinstance(pkk.prune_low_magnitude(keras.layers.Dense(3)), pkk.PruneLowMagnitude)


def test_bad_input_is_named(keras, pkk):
    class Custom(keras.layers.Layer):
        def build(self, shape):
            self.w = self.add_weight(shape=(shape[-1], 2))

        def call(self, x):
            return x @ self.w

    model = keras.Sequential([keras.Input((3,)), Custom(name="odd")])
    with pytest.raises(ValueError, match="odd.*Custom"):
        pkk.prune_low_magnitude(model)

    class Sub(keras.Model):
        def call(self, x):
            return x

    with pytest.raises(ValueError, match="subclassed"):
        pkk.prune_low_magnitude(Sub())
    with pytest.raises(ValueError, match="not both"):
        pkk.prune_low_magnitude(keras.layers.Dense(2), pkk.ConstantSparsity(0.5, 0), sparsity=0.5)
    with pytest.raises(ValueError, match="block_size"):
        pkk.prune_low_magnitude(keras.layers.Dense(2), block_size=(1, 4))
    with pytest.raises(ValueError, match="cannot be pruned"):
        pkk.PruneLowMagnitude(keras.layers.Flatten())


def test_step_follows_the_optimizer_across_fits_as_in_tfmot(keras, pkk, compile_for, small_cnn,
                                                            digits_small):
    x, y = digits_small
    seen = []

    class Record(keras.callbacks.Callback):
        def on_train_batch_begin(self, batch, logs=None):
            layer = pkk.collect_prunable_layers(self.model)[0]
            seen.append(int(layer.pruning_step.value))

    pruned = compile_for(pkk.prune_low_magnitude(small_cnn(), sparsity=0.5))
    for _ in range(2):  # 4 steps per epoch; the second fit continues the count
        pruned.fit(x, y, epochs=1, batch_size=100, verbose=0,
                   callbacks=[pkk.UpdatePruningStep(), Record()])
    assert seen == list(range(8))
    compile_for(pruned).fit(x, y, epochs=1, batch_size=100, verbose=0,
                            callbacks=[pkk.UpdatePruningStep(), Record()])
    assert seen[8:] == [0, 1, 2, 3]  # a fresh optimizer starts the schedule again
