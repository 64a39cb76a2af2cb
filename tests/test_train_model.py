"""The model contract (uint8 RGB in, scaling inside, no augmentation layers, probabilities out) and fine-tuning that
never touches BatchNorm statistics."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
keras = pytest.importorskip("keras")

from edgeclf.errors import UsageError  # noqa: E402
from edgeclf.train.fit import compile_for  # noqa: E402
from edgeclf.train.model import base_of, build_model, calibrate_batchnorm, set_trainable  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def tiny_model():
    return build_model(3, alpha=0.35, image_size=64, weights=None)


def test_model_takes_uint8_rgb_and_outputs_probabilities(tiny_model):
    assert tiny_model.inputs[0].dtype == "uint8"
    assert tuple(tiny_model.inputs[0].shape) == (None, 64, 64, 3)
    x = np.random.default_rng(0).integers(0, 256, (5, 64, 64, 3), dtype=np.uint8)
    probs = tiny_model.predict(x, verbose=0)
    assert probs.shape == (5, 3)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)


def test_scaling_to_minus1_1_is_the_first_layer(tiny_model):
    scale = tiny_model.get_layer("to_minus1_1")
    out = np.asarray(scale(np.array([[[[0, 127, 255]]]], dtype=np.uint8)))
    np.testing.assert_allclose(out.ravel(), [-1.0, 127 / 127.5 - 1, 1.0], atol=1e-6)


def test_saved_model_has_no_random_augmentation_layers(tiny_model, tmp_path):
    tiny_model.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras")
    names = [type(layer).__name__ for layer in loaded.layers + base_of(loaded).layers]
    assert not [n for n in names if n.startswith("Random")]
    x = np.full((1, 64, 64, 3), 90, np.uint8)
    np.testing.assert_allclose(loaded.predict(x, verbose=0), tiny_model.predict(x, verbose=0), atol=1e-6)


def test_phase_two_unfreezes_from_fine_tune_at_but_never_batchnorm():
    model = build_model(2, alpha=0.35, image_size=64, weights=None)
    assert set_trainable(model, fine_tune_at=None) == 0 and not base_of(model).trainable_weights
    count = set_trainable(model, fine_tune_at=100)
    layers = base_of(model).layers
    assert count == sum(1 for layer in layers[100:] if not isinstance(layer, keras.layers.BatchNormalization))
    assert not any(layer.trainable for layer in layers[:100])
    assert not any(layer.trainable for layer in layers if isinstance(layer, keras.layers.BatchNormalization))
    with pytest.raises(UsageError, match="--fine-tune-at 999"):
        set_trainable(model, fine_tune_at=999)


def test_batchnorm_moving_statistics_do_not_change_during_fine_tuning():
    model = build_model(2, alpha=0.35, image_size=64, weights=None)
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (32, 64, 64, 3), dtype=np.uint8)
    y = (x.mean(axis=(1, 2, 3)) > 127).astype(np.int32)
    calibrate_batchnorm(model, x)
    set_trainable(model, fine_tune_at=0)  # the whole base trains: the strictest case
    compile_for(model, 1e-2)
    norms = [layer for layer in base_of(model).layers if isinstance(layer, keras.layers.BatchNormalization)]
    stats_before = [np.array(v) for layer in norms for v in (layer.moving_mean, layer.moving_variance)]
    conv = base_of(model).get_layer("Conv1")
    kernel_before = np.array(conv.kernel)
    model.fit(x, y, batch_size=16, epochs=1, verbose=0)
    stats_after = [np.array(v) for layer in norms for v in (layer.moving_mean, layer.moving_variance)]
    assert not np.allclose(np.array(conv.kernel), kernel_before)  # training did happen
    for before, after in zip(stats_before, stats_after):
        np.testing.assert_array_equal(before, after)


def test_batchnorm_calibration_rescues_random_weights_from_vanishing_features():
    model = build_model(2, alpha=0.35, image_size=64, weights=None)
    features = keras.Model(model.inputs, model.get_layer("pool").output)
    x = np.random.default_rng(1).integers(0, 256, (16, 64, 64, 3), dtype=np.uint8)
    assert np.abs(features.predict(x, verbose=0)).max() < 1e-6
    calibrate_batchnorm(model, x)
    assert features.predict(x, verbose=0).std(axis=0).mean() > 1e-2
    assert not base_of(model).trainable_weights  # still frozen for phase 1


@pytest.mark.e2e
def test_weights_file_is_loaded_into_the_base(imagenet_weights):
    model = build_model(2, alpha=1.0, image_size=96, weights=str(imagenet_weights))
    import h5py

    with h5py.File(imagenet_weights, "r") as f:
        stored = np.array(f["Conv1/Conv1/kernel:0"])
    kernel = np.array(base_of(model).get_layer("Conv1").kernel)
    np.testing.assert_array_equal(kernel, stored)
    random = build_model(2, alpha=1.0, image_size=96, weights=None)
    assert not np.allclose(kernel, np.array(base_of(random).get_layer("Conv1").kernel))


@pytest.mark.parametrize("weights,message", [("/no/such/weights.h5", "file not found"),
                                             ("imagenet", "no ImageNet weights for --alpha 0.6")])
def test_bad_weights_are_refused_with_the_fix(weights, message):
    with pytest.raises(UsageError, match=message):
        build_model(2, alpha=0.6 if weights == "imagenet" else 1.0, image_size=96, weights=weights)


def test_weights_file_that_is_not_weights_is_refused(tmp_path):
    bogus = tmp_path / "w.h5"
    bogus.write_text("not hdf5")
    with pytest.raises(UsageError, match="could not load it into MobileNetV2"):
        build_model(2, alpha=1.0, image_size=96, weights=str(bogus))


def test_missing_imagenet_weights_offline_says_to_pass_weights_path(tmp_path):
    """A fresh KERAS_HOME and a URL nobody serves: the error must name --weights PATH (subprocess: KERAS_HOME is
    read when Keras is imported)."""
    code = ("import keras.src.applications.mobilenet_v2 as m; m.BASE_WEIGHT_PATH = 'http://127.0.0.1:9/';"
            "from edgeclf.train.model import build_model; build_model(2, image_size=96)")
    env = {**os.environ, "KERAS_HOME": str(tmp_path), "TF_CPP_MIN_LOG_LEVEL": "2"}
    proc = subprocess.run([sys.executable, "-c", code], env=env, cwd=REPO, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode != 0
    last = proc.stderr.strip().splitlines()[-1]
    assert "could not get the ImageNet weights" in last and "pass --weights PATH" in last


def test_warm_up_epochs_do_not_count_against_patience(tmp_path):
    """Phase 2 starts from phase 1's best; its warm-up epoch may be worse without ending fine-tuning early."""
    from edgeclf.train.fit import RunState, TrainState

    def stops_after(grace: int) -> int:
        state = TrainState(tmp_path / f"grace{grace}")
        state["best"] = {"val_loss": 0.50, "val_accuracy": 0.9, "phase": 1, "epoch": 16}
        model = keras.Sequential([keras.Input(shape=(2,)), keras.layers.Dense(2)])
        tracker = RunState(state, 2, 2, lambda path: None, grace=grace, quiet=True)
        tracker.set_model(model)
        model.stop_training = False  # what Model.fit sets before the first epoch
        for epoch, val_loss in enumerate((0.70, 0.60, 0.55, 0.52)):  # never better than phase 1
            tracker.on_epoch_end(epoch, {"val_loss": val_loss})
            if model.stop_training:
                return epoch + 1
        return 0

    assert stops_after(grace=0) == 2
    assert stops_after(grace=1) == 3


def test_crumbs_of_improvement_stop_phase_2_but_the_lowest_loss_is_kept(tmp_path):
    """With min_improvement 0.25 %, an epoch that gains 0.1 % counts against patience (patience 1 stops there) and
    its weights, the lowest loss yet, are still the best; with 0, the same epoch resets patience and training goes
    on. Losses from the cats-vs-dogs record's phase 2 (train-*-2026-12-07.json, epochs 4-7)."""
    from edgeclf.train.fit import RunState, TrainState

    def run(min_improvement: float):
        state = TrainState(tmp_path / f"gain{min_improvement}")
        state.dir.mkdir(parents=True)
        state["best"] = {"val_loss": 0.2226, "val_accuracy": 0.99, "phase": 1, "epoch": 9}
        model = keras.Sequential([keras.Input(shape=(2,)), keras.layers.Dense(2)])
        tracker = RunState(state, 2, 1, lambda path: None, min_improvement=min_improvement, grace=0, quiet=True)
        tracker.set_model(model)
        model.stop_training = False
        for epoch, val_loss in enumerate((0.2179, 0.2161, 0.2156, 0.2155)):
            tracker.on_epoch_end(epoch, {"val_loss": val_loss})
            if model.stop_training:
                break
        return epoch + 1, state["best"], state.best_file(2).exists()

    stopped, best, saved = run(0.0025)
    assert stopped == 3 and best["epoch"] == 3 and best["val_loss"] == 0.2156 and saved
    stopped, best, _ = run(0.0)
    assert stopped == 4 and best["epoch"] >= 3  # it went on to the last epoch


def _averaging_problem():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(256, 8)).astype("float32")
    y = (x[:, 0] + 0.5 * x[:, 1] > 0).astype("int32")
    return x, y


def _averaging_model():
    keras.utils.set_random_seed(3)
    model = keras.Sequential([keras.Input(shape=(8,)), keras.layers.Dense(2, activation="softmax")])
    compile_for(model, 0.05, ema=0.9)
    return model


class _ScoreAtEpochEnd(keras.callbacks.Callback):
    """What a callback after AveragedWeights (RunState: best weights, checkpoint) sees at the end of an epoch."""

    def __init__(self, x, y):
        super().__init__()
        self.x, self.y, self.seen = x, y, []

    def on_epoch_end(self, epoch, logs=None):
        loss = self.model.evaluate(self.x, self.y, verbose=0, batch_size=256)[0]
        slots = [v.numpy() for v in self.model.optimizer._model_variables_moving_average]
        self.seen.append((loss, logs["val_loss"], [w.copy() for w in self.model.get_weights()], slots))


def test_validation_best_weights_and_checkpoint_all_see_the_weight_average():
    from edgeclf.train.fit import AveragedWeights

    x, y = _averaging_problem()
    model = _averaging_model()
    score = _ScoreAtEpochEnd(x[:64], y[:64])
    model.fit(x, y, validation_data=(x[:64], y[:64]), epochs=3, batch_size=16, shuffle=False, verbose=0,
              callbacks=[AveragedWeights(), score])
    for loss, val_loss, _, _ in score.seen:
        assert abs(loss - val_loss) < 1e-5  # the weights the callbacks save are the ones validation scored
    _, _, weights, raw = score.seen[0]  # (at the last epoch Keras makes both the average)
    assert not np.allclose(weights[0], raw[0])  # they are the average, and the raw weights wait in the optimizer


class _CheckpointAfterEpoch1(keras.callbacks.Callback):
    def __init__(self, path):
        super().__init__()
        self.path = path

    def on_epoch_end(self, epoch, logs=None):  # where RunState writes the checkpoint
        if epoch == 0:
            self.model.save(self.path)


def test_a_resumed_averaging_phase_continues_exactly(tmp_path):
    """A checkpoint holds the average in the model and the raw weights in the optimizer: resuming swaps them back,
    so 1 epoch + checkpoint + load + 1 epoch ends where 2 epochs do."""
    from edgeclf.train.fit import AveragedWeights

    x, y = _averaging_problem()
    fit = dict(validation_data=(x[:64], y[:64]), batch_size=16, shuffle=False, verbose=0)

    def until_epoch_2(model, averaging, initial_epoch=1):
        seen = _ScoreAtEpochEnd(x[:64], y[:64])
        model.fit(x, y, epochs=2, initial_epoch=initial_epoch, callbacks=[averaging, seen], **fit)
        return seen.seen[-1][2]

    expected = until_epoch_2(_averaging_model(), AveragedWeights(), initial_epoch=0)
    checkpoint = tmp_path / "last.keras"
    _averaging_model().fit(x, y, epochs=2, callbacks=[AveragedWeights(), _CheckpointAfterEpoch1(checkpoint)], **fit)
    resumed = until_epoch_2(keras.models.load_model(checkpoint), AveragedWeights(in_model=True))
    for a, b in zip(expected, resumed):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    # without the swap back, the resumed epoch would train on from the average instead of the raw weights
    wrong = until_epoch_2(keras.models.load_model(checkpoint), AveragedWeights())
    assert not np.allclose(expected[0], wrong[0], atol=1e-4)


@pytest.mark.parametrize("steps", [3, 63, 960])
def test_the_weight_average_forgets_half_in_its_half_life_whatever_the_dataset_size(steps):
    from edgeclf.train.options import TrainOptions

    momentum = TrainOptions(ema_half_life=1.5).ema_momentum(steps)
    assert abs(momentum ** (1.5 * steps) - 0.5) < 1e-9
    assert TrainOptions(ema_half_life=0).ema_momentum(steps) == 0.0
