"""Keras tests run on the torch backend (set before keras is first imported)."""

import os

import pytest

os.environ["KERAS_BACKEND"] = "torch"


@pytest.fixture
def keras():
    return pytest.importorskip("keras")


@pytest.fixture
def pkk(keras):
    import prunekit.keras

    return prunekit.keras


@pytest.fixture
def digits_small():
    """Real 8x8 digits (scikit-learn), 400 train images as NHWC floats."""
    sklearn = pytest.importorskip("sklearn.datasets")
    d = sklearn.load_digits()
    x = (d.images / 16.0).astype("float32")[..., None]
    return x[:400], d.target[:400].astype("int64")


@pytest.fixture
def small_cnn(keras):
    def make(seed=0):
        keras.utils.set_random_seed(seed)
        return keras.Sequential([
            keras.Input((8, 8, 1)),
            keras.layers.Conv2D(8, 3, activation="relu", name="conv"),
            keras.layers.BatchNormalization(name="bn"),
            keras.layers.Flatten(name="flat"),
            keras.layers.Dense(16, activation="relu", name="fc"),
            keras.layers.Dense(10, name="out"),
        ])

    return make


@pytest.fixture
def compile_for(keras):
    """Compile a classifier for integer labels (Adam 1e-2)."""

    def compile_(model):
        model.compile(optimizer=keras.optimizers.Adam(1e-2),
                      loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                      metrics=["accuracy"])
        return model

    return compile_
