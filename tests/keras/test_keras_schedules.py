"""Pruning schedules: TF-MOT's formulas, step windows and validation."""

import pytest


def test_polynomial_decay_follows_the_cubic_formula(pkk):
    s = pkk.PolynomialDecay(0.0, 0.8, 0, 1000)  # power 3, frequency 100 by default
    assert s(0) == (True, 0.0)
    should, sp = s(500)
    assert should and sp == pytest.approx(0.8 - 0.8 * 0.5 ** 3)
    assert s(1000) == (True, pytest.approx(0.8))
    assert s(1100) == (False, pytest.approx(0.8))  # past end_step: no more updates
    assert s(150)[0] is False  # not a frequency turn


def test_constant_sparsity_window(pkk):
    s = pkk.ConstantSparsity(0.5, begin_step=10, end_step=-1, frequency=5)
    assert [s(t)[0] for t in (0, 9, 10, 12, 15, 10_000)] == [False, False, True, False, True, True]
    assert s(3)[1] == 0.5
    assert pkk.ConstantSparsity(0.5, 0, end_step=20, frequency=10)(30)[0] is False


@pytest.mark.parametrize("make, word", [
    (lambda k: k.PolynomialDecay(0.0, 1.0, 0, 10), "final_sparsity"),
    (lambda k: k.PolynomialDecay(-0.1, 0.5, 0, 10), "initial_sparsity"),
    (lambda k: k.PolynomialDecay(0.0, 0.5, 10, 10), "end_step"),
    (lambda k: k.PolynomialDecay(0.0, 0.5, 0, 10, power=0), "power"),
    (lambda k: k.ConstantSparsity(0.5, -1), "begin_step"),
    (lambda k: k.ConstantSparsity(0.5, 0, frequency=0), "frequency"),
    (lambda k: k.ConstantSparsity(0.5, 5, end_step=2), "end_step"),
])
def test_schedules_reject_bad_values(pkk, make, word):
    with pytest.raises(ValueError, match=word):
        make(pkk)


def test_schedule_config_round_trip(pkk, keras):
    s = pkk.PolynomialDecay(0.1, 0.9, 5, 50, power=2, frequency=7)
    back = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(s))
    assert back == s and back(20) == s(20)
