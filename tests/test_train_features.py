"""Phase 1 on cached features: the views, the on-disk cache (reuse, memory-mapping), and the claim the design rests
on: training the head on cached features is the same training as pushing the same views through the full model."""

from __future__ import annotations

import os

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
keras = pytest.importorskip("keras")

from edgeclf.train import features  # noqa: E402
from edgeclf.train.features import cached_features, head_of, transform, view_names  # noqa: E402
from edgeclf.train.fit import compile_for, feature_data  # noqa: E402
from edgeclf.train.model import build_model, calibrate_batchnorm  # noqa: E402
from edgeclf.train.pipeline import batches  # noqa: E402
from tests.fixtures.images import synthetic_image  # noqa: E402

SIZE = 32


@pytest.fixture(scope="module")
def images():
    """48 small synthetic images of 2 classes: 32 for training, 16 for validation."""
    labels = np.arange(48) % 2
    pixels = np.stack([np.asarray(synthetic_image(int(c), seed=i, size=(SIZE, SIZE))) for i, c in enumerate(labels)])
    return pixels.astype(np.uint8), labels.astype(np.int32), np.arange(32), np.arange(32, 48)


def tiny_model(pixels):
    keras.utils.set_random_seed(0)
    model = build_model(2, alpha=0.35, image_size=SIZE, weights=None, dropout=0.0)
    calibrate_batchnorm(model, pixels[:32])  # a random base needs real BatchNorm statistics to give useful features
    return model


def test_views_are_the_image_its_mirror_and_seeded_zoom_crops(images):
    pixels = images[0][:4]
    assert view_names(2) == ["image", "flip"] and view_names(3)[2] == "zoom1"
    rng = np.random.default_rng(0)
    np.testing.assert_array_equal(transform(pixels, "image", rng), pixels)
    np.testing.assert_array_equal(transform(pixels, "flip", rng), pixels[:, :, ::-1])
    a = transform(pixels, "zoom1", np.random.default_rng(5))
    b = transform(pixels, "zoom1", np.random.default_rng(5))
    assert a.dtype == np.uint8 and a.shape == pixels.shape and np.array_equal(a, b) and not np.array_equal(a, pixels)


def test_features_are_cached_reused_and_keyed_by_what_made_them(images, tmp_path):
    pixels, _, train, _ = images
    model = tiny_model(pixels)
    first, reused = cached_features(model, pixels, train, ["image", "flip"], cache_dir=tmp_path, key="k", seed=0,
                                    quiet=True)
    assert not reused and first.shape == (64, model.get_layer("pool").output.shape[-1]) and first.dtype == np.float32
    direct = features.extractor_of(model).predict(pixels[train][:, :, ::-1], verbose=0)
    np.testing.assert_allclose(first[32:], direct, rtol=1e-3, atol=features.AGREEMENT)  # rows are view-major: flips after images
    again, reused = cached_features(model, pixels, train, ["image", "flip"], cache_dir=tmp_path, key="k", seed=0)
    assert reused and np.array_equal(again, first)
    _, reused = cached_features(model, pixels, train, ["image", "flip"], cache_dir=tmp_path, key="other", seed=0)
    assert not reused  # another model/data key never reads these features
    assert not list(tmp_path.glob(".tmp-*"))  # only complete files are left


def test_litert_and_keras_extract_the_same_features(images):
    """The engine is a speed choice only: LiteRT float32 (the default from BREAK_EVEN images on) and Keras give the
    same features, LiteRT is checked against Keras before it extracts, and $EDGECLF_FEATURES=keras forces Keras."""
    pixels, _, train, _ = images
    model = tiny_model(pixels)
    litert = features.Extractor(model, engine="litert", quiet=True)
    fast = litert(pixels[train])
    assert litert.engine == "litert" and litert.max_difference is not None and litert.max_difference < 1e-3
    slow = features.Extractor(model, engine="keras")(pixels[train])
    np.testing.assert_allclose(fast, slow, rtol=1e-3, atol=features.AGREEMENT)
    assert features.Extractor(model, images=features.BREAK_EVEN - 1).wanted == "keras"  # too few to pay back
    assert features.Extractor(model, images=features.BREAK_EVEN).wanted == "auto"
    os.environ[features.ENGINE_VAR] = "keras"
    try:
        assert features.Extractor(model).wanted == "keras"
    finally:
        del os.environ[features.ENGINE_VAR]


def test_a_litert_extractor_that_disagrees_with_keras_is_not_used(images, monkeypatch, capsys):
    """Make the agreement bar impossible: auto falls back to Keras with one line saying why; litert refuses."""
    pixels, _, train, _ = images
    model = tiny_model(pixels)
    monkeypatch.setattr(features, "AGREEMENT", -1.0)
    auto = features.Extractor(model)
    feats = auto(pixels[train[:8]])
    assert auto.engine == "keras" and feats.shape == (8, auto.width)
    err = capsys.readouterr().err
    assert "extracting features with Keras" in err and "differ from Keras" in err and len(err.strip().splitlines()) == 1
    with pytest.raises(ValueError, match="differ from Keras"):
        features.Extractor(model, engine="litert")(pixels[train[:8]])


def test_large_features_are_memory_mapped(images, tmp_path, monkeypatch):
    pixels, _, train, _ = images
    monkeypatch.setattr(features, "MEMORY_LIMIT", 1000)
    feats, _ = cached_features(tiny_model(pixels), pixels, train, ["image"], cache_dir=tmp_path, key="k", seed=0)
    assert isinstance(feats, np.memmap)


def test_cached_feature_head_matches_the_head_trained_through_the_full_model(images, tmp_path):
    """Same initial head, same views (image + mirror), same shuffled batch order, 6 epochs: training and validation
    losses agree to 1e-4 relative. The only difference allowed is float32 rounding (the features come from LiteRT,
    the full model runs on Keras), measured at ~1e-5 relative here (3e-7 with both on Keras); a cached-feature bug
    (a wrong view, rows out of order, labels misaligned with the views) moves the loss by 1e-2 or more."""
    pixels, labels, train, val = images
    model = tiny_model(pixels)
    head = head_of(model)
    start = head.get_weights()
    views = ["image", "flip"]
    litert = features.Extractor(model, engine="litert")  # the engine real datasets use
    common = dict(cache_dir=tmp_path, key="k", seed=0, quiet=True, extractor=litert)
    train_f, _ = cached_features(model, pixels, train, views, **common)
    val_f, _ = cached_features(model, pixels, val, ["image"], **common)
    data = feature_data(train_f, val_f, labels[train], labels[val], batch_size=8, seed=3)
    compile_for(head, 1e-3)
    cached = head.fit(data.train, validation_data=data.validation, epochs=6, shuffle=False, verbose=0).history

    head.set_weights(start)
    seen = np.concatenate([pixels[train], pixels[train][:, :, ::-1]])
    full_train = batches(seen, np.tile(labels[train], 2), np.arange(len(seen)), 8, shuffle=True, seed=3)
    compile_for(model, 1e-3)
    full = model.fit(full_train, validation_data=batches(pixels, labels, val, 16), epochs=6, shuffle=False,
                     verbose=0).history
    assert cached["loss"][-1] < cached["loss"][0]  # it learned: agreement is not two untrained heads agreeing
    np.testing.assert_allclose(cached["loss"], full["loss"], rtol=1e-4)
    np.testing.assert_allclose(cached["val_loss"], full["val_loss"], rtol=1e-4)
