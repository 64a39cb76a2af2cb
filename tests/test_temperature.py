"""Temperature scaling: fitting recovers a known temperature, folding it into the Dense layer keeps every top-1 and
makes an over-confident model's scores honest (lower ECE on images it was not fitted on)."""

from __future__ import annotations

import numpy as np
import pytest

from edgeclf.runtime.metrics import expected_calibration_error, with_temperature
from edgeclf.train.temperature import DENSE_LAYER, fit_temperature, fold_temperature


def softmax(z):
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def sampled_labels(logits, rng):
    """Labels drawn from softmax(logits): a model whose true confidence is exactly softmax(logits)."""
    p = softmax(logits)
    return np.array([rng.choice(p.shape[1], p=row) for row in p])


def test_fit_recovers_the_temperature_of_an_overconfident_model():
    rng = np.random.default_rng(0)
    logits = rng.normal(0, 2, (4000, 5))
    truth = sampled_labels(logits, rng)
    overconfident = softmax(3.0 * logits)  # what the model says: every logit 3x too large
    assert fit_temperature(overconfident, truth) == pytest.approx(3.0, rel=0.08)
    assert fit_temperature(softmax(logits), truth) == pytest.approx(1.0, rel=0.08)


def test_with_temperature_is_softmax_of_scaled_logits():
    logits = np.array([[2.0, 0.0, -1.0], [0.5, 0.4, 3.0]])
    assert with_temperature(softmax(logits), 2.0) == pytest.approx(softmax(logits / 2.0), abs=1e-6)


def test_folding_keeps_top1_and_lowers_ece_on_held_out_images():
    import keras

    rng = np.random.default_rng(1)
    features = rng.normal(0, 1, (3000, 8)).astype(np.float32)
    true_w = rng.normal(0, 1, (8, 4)).astype(np.float32)
    truth = sampled_labels(features @ true_w, rng)
    inputs = keras.Input((8,))
    model = keras.Model(inputs, keras.layers.Dense(4, activation="softmax", name=DENSE_LAYER)(inputs))
    model.get_layer(DENSE_LAYER).set_weights([4.0 * true_w, np.zeros(4, np.float32)])  # 4x over-confident
    val, test = slice(0, 1500), slice(1500, None)
    before = model.predict(features, verbose=0)
    t = fit_temperature(before[val], truth[val])
    assert t > 2.5
    fold_temperature(model, t)
    after = model.predict(features, verbose=0)
    assert np.array_equal(before.argmax(axis=1), after.argmax(axis=1))
    assert after == pytest.approx(with_temperature(before, t), abs=1e-4)  # the folded model is the scaled softmax
    ece_before, ece_after = (expected_calibration_error(p[test], truth[test]) for p in (before, after))
    assert ece_after < ece_before / 2 and ece_after < 0.05
