"""The few-shot head's trust in the label names is chosen from the training examples."""

import numpy as np

from taskkit_plugins.few_shot.prior import FALLBACK, MIXES, blend, choose_mix, fit_logistic


def _data(seed: int, per_class: int = 8, classes: int = 4, dim: int = 16, noise: float = 1.5):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(classes, dim))
    y = np.repeat(np.arange(classes), per_class)
    x = centres[y] + noise * rng.normal(size=(len(y), dim))
    return x / np.linalg.norm(x, axis=1, keepdims=True), y, centres


def test_names_that_describe_the_classes_get_a_large_share():
    x, y, centres = _data(0)
    assert choose_mix(x, y, centres, seed=0) >= 0.5


def test_names_unrelated_to_the_classes_get_none():
    x, y, _ = _data(1, noise=0.3)
    unrelated = np.random.default_rng(99).normal(size=(4, 16))
    assert choose_mix(x, y, unrelated, seed=0) == MIXES[0] == 0.0


def test_a_class_with_one_example_falls_back():
    x, y, centres = _data(2)
    assert choose_mix(x[7:], y[7:], centres, seed=0) == FALLBACK  # class 0 keeps one example


def test_blend_ends_are_the_regression_and_the_scaled_cosine_classifier():
    x, y, centres = _data(3)
    coef, bias = fit_logistic(x, y, 4, seed=0)
    w, b = blend(coef, bias, x, centres, 0.0)
    assert np.allclose(w, coef) and np.allclose(b, bias)
    w, b = blend(coef, bias, x, centres, 1.0)
    cosine = centres / np.linalg.norm(centres, axis=1, keepdims=True)
    assert np.allclose(b, 0) and np.array_equal((x @ w.T).argmax(1), (x @ cosine.T).argmax(1))
