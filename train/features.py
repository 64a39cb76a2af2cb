"""Phase 1 on cached features: the frozen base's pooled features, computed once per training view.

Phase 1 never changes the base, so pushing every image through it every epoch (as the Keras tutorial does) repeats
the same work. Here each training image goes through the base once per *view* (the image, its horizontal flip, and
optionally seeded random zoom crops), and the head then trains on those vectors for as many epochs as early stopping
wants, a fraction of a second each. Validation features come from the plain images, computed once, so phase 1's
validation loss is exactly the full model's (same layers and weights, dropout off in inference).

Features are written to the run's staging cache as ``.npy`` under a name that says what they were computed from
(model, image size, weights, views, data fingerprint); the file appears only when complete (temp name + rename), so
``--resume`` reuses finished features and an interrupted extraction is simply redone. Files larger than the image
cache's memory limit are memory-mapped instead of read into RAM.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from edgeclf.console import progress

from .cache import MEMORY_LIMIT

POOL_LAYER = "pool"
HEAD_LAYERS = ("dropout", "probabilities")
VIEWS = ("image", "flip", "zoom1", "zoom2", "zoom3", "zoom4")  # in the order a views count takes them
ZOOM_MIN_SIDE = 0.75  # a zoom view crops a random square of 75-100 % of the side, then resizes back
CHUNK = 2048  # images per predict call, so a memory-mapped output is filled piecewise


def view_names(count: int) -> list[str]:
    """The first ``count`` views: 1 = the image, 2 = + its horizontal flip, 3+ = + random zoom crops."""
    if not 1 <= count <= len(VIEWS):
        raise ValueError(f"views must be 1..{len(VIEWS)}, got {count}")
    return list(VIEWS[:count])


def extractor_of(model: keras.Model) -> keras.Model:
    """uint8 images -> the pooled base features the head sees (everything before dropout)."""
    return keras.Model(model.inputs, model.get_layer(POOL_LAYER).output, name="feature_extractor")


def head_of(model: keras.Model) -> keras.Model:
    """Pooled features -> probabilities, built from the full model's own head layers, so training it trains them."""
    width = model.get_layer(POOL_LAYER).output.shape[-1]
    x = inputs = keras.Input(shape=(width,), name="features")
    for name in HEAD_LAYERS:
        x = model.get_layer(name)(x)
    return keras.Model(inputs, x, name="head")


def cached_features(model: keras.Model, pixels: np.ndarray, indices, views: list[str], *, cache_dir: Path, key: str,
                    seed: int, batch_size: int = 64, quiet: bool = False,
                    desc: str = "features") -> tuple[np.ndarray, bool]:
    """Features of ``pixels[indices]`` for each view, view-major: row ``v * len(indices) + i``, and whether they were
    reused. Read from ``cache_dir`` when a complete file for ``key`` exists (resume), else extracted with a bar."""
    indices = np.asarray(indices, dtype=np.int64)
    path = Path(cache_dir) / f"features-{_digest(key, views, indices)}.npy"
    reused = path.exists()
    if not reused:
        _extract_to(path, extractor_of(model), pixels, indices, views, seed=seed, batch_size=batch_size,
                    quiet=quiet, desc=desc)
    large = path.stat().st_size > MEMORY_LIMIT
    return np.load(path, mmap_mode="r" if large else None), reused


def _extract_to(path: Path, extractor: keras.Model, pixels, indices, views, *, seed, batch_size, quiet, desc):
    n, width = len(indices), extractor.output_shape[-1]
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".tmp-{path.name}")
    out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32, shape=(len(views) * n, width))
    bar = progress(total=len(views) * n, desc=f"{desc} ({len(views)} view{'s' * (len(views) > 1)})", quiet=quiet,
                   unit="img")
    with bar:
        for v, view in enumerate(views):
            for start in range(0, n, CHUNK):
                chunk = indices[start:start + CHUNK]
                ds = view_batches(pixels, chunk, view, batch_size, seed=seed + v * 7919 + start)
                rows = v * n + start
                out[rows:rows + len(chunk)] = extractor.predict(ds, verbose=0, callbacks=[_BarUpdate(bar)])
    out.flush()
    del out
    os.replace(tmp, path)


def view_batches(pixels: np.ndarray, indices, view: str, batch_size: int, *, seed: int = 0) -> tf.data.Dataset:
    """uint8 batches of ``pixels[indices]`` as seen through ``view`` (in order, for extraction)."""
    size = pixels.shape[1:]
    rng = np.random.default_rng(seed)

    def gather(batch_idx):
        return np.ascontiguousarray(transform(pixels[batch_idx], view, rng))

    def load(batch_idx):
        x = tf.numpy_function(gather, [batch_idx], tf.uint8, stateful=True)
        x.set_shape((None, *size))
        return x

    ds = tf.data.Dataset.from_tensor_slices(np.asarray(indices, np.int64)).batch(batch_size)
    return ds.map(load).prefetch(tf.data.AUTOTUNE)  # sequential map: the seeded crops stay reproducible


def transform(images: np.ndarray, view: str, rng: np.random.Generator) -> np.ndarray:
    """One view of a uint8 batch: unchanged, mirrored, or a random square crop (and random flip) resized back."""
    if view == "image":
        return images
    if view == "flip":
        return images[:, :, ::-1]
    n, s = len(images), images.shape[1]
    side = rng.uniform(ZOOM_MIN_SIDE, 1.0, n)
    y0, x0 = rng.uniform(0, 1 - side), rng.uniform(0, 1 - side)
    boxes = np.stack([y0, x0, y0 + side, x0 + side], axis=1).astype(np.float32)
    crops = tf.image.crop_and_resize(images.astype(np.float32), boxes, np.arange(n, dtype=np.int32), (s, s)).numpy()
    crops = np.clip(np.round(crops), 0, 255).astype(np.uint8)
    flip = rng.random(n) < 0.5
    crops[flip] = crops[flip, :, ::-1]
    return crops


class _BarUpdate(keras.callbacks.Callback):
    def __init__(self, bar):
        super().__init__()
        self.bar, self.seen = bar, 0

    def on_predict_batch_end(self, batch, logs=None):
        outputs = (logs or {}).get("outputs")
        count = int(outputs.shape[0]) if outputs is not None else 0
        self.bar.update(count)


def _digest(key: str, views, indices: np.ndarray) -> str:
    h = hashlib.sha256(f"{key}|{','.join(views)}".encode())
    h.update(indices.tobytes())
    return h.hexdigest()[:16]
