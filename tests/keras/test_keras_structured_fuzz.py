"""Random Sequential CNN/MLP stacks: the rebuilt model always equals the masked original."""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

LAYERS = st.lists(st.sampled_from(["conv", "bn", "relu", "pool", "dropout"]), min_size=1,
                  max_size=4)


@pytest.mark.slow
@settings(max_examples=8, deadline=None, suppress_health_check=list(HealthCheck))
@given(convs=LAYERS, widths=st.lists(st.integers(2, 9), min_size=4, max_size=4),
       dense=st.integers(0, 2), ratio=st.sampled_from([0.25, 0.5, 0.75]),
       seed=st.integers(0, 3))
def test_random_stacks_rebuild_equals_masked(keras, pkk, convs, widths, dense, ratio, seed):
    keras.utils.set_random_seed(seed)
    layers, pooled, w = [keras.Input((8, 8, 2))], False, iter(widths)
    for kind in convs:
        if kind == "conv":
            layers.append(keras.layers.Conv2D(next(w), 3, padding="same"))
        elif kind == "bn":
            layers.append(keras.layers.BatchNormalization(
                moving_mean_initializer="random_normal", gamma_initializer="random_uniform"))
        elif kind == "relu":
            layers.append(keras.layers.ReLU())
        elif kind == "pool" and not pooled:
            layers.append(keras.layers.MaxPooling2D())
            pooled = True
        else:
            layers.append(keras.layers.Dropout(0.1))
    layers.append(keras.layers.Flatten())
    layers += [keras.layers.Dense(4 + i, activation="relu") for i in range(dense)]
    layers.append(keras.layers.Dense(3))
    model = keras.Sequential(layers)
    x = np.random.default_rng(seed).standard_normal((4, 8, 8, 2)).astype("float32")
    small = pkk.prune_structured(model, x, ratio=ratio)  # raises if rebuilt != masked
    assert small.count_params() <= model.count_params()
    assert small.output_shape == model.output_shape
