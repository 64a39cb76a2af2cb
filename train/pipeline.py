"""tf.data input pipelines over the decoded image cache, with augmentation outside the model.

Batches are gathered from the uint8 cache by index (works the same for an in-memory array and an ``np.memmap``), so
nothing is re-decoded and the cache is never copied into a TensorFlow constant. Augmentation (random horizontal flip,
small rotation, zoom) runs here, on training batches only, and its result is rounded back to uint8: the model always
sees the same dtype and value range as at inference, and the saved model contains no random layers.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

import keras

ROTATION = 0.05  # fraction of a full turn: +-18 degrees
ZOOM = 0.15  # +-15 % zoom (zooming in crops; zooming out reflects the border)


def make_augmenter(seed: int) -> keras.Sequential:
    """The training-time augmentation: horizontal flip, rotation, zoom (Keras preprocessing layers, seeded)."""
    return keras.Sequential([
        keras.layers.RandomFlip("horizontal", seed=seed),
        keras.layers.RandomRotation(ROTATION, fill_mode="reflect", seed=seed + 1),
        keras.layers.RandomZoom(ZOOM, fill_mode="reflect", seed=seed + 2),
    ], name="augment")


def batches(pixels: np.ndarray, labels: np.ndarray, indices, batch_size: int, *, shuffle: bool = False,
            augment: bool = False, seed: int = 0) -> tf.data.Dataset:
    """(images, int32 labels) batches for the rows in ``indices`` of ``pixels`` (uint8 images, or float features)."""
    indices = np.asarray(indices, dtype=np.int64)
    size = pixels.shape[1:]
    labels = np.asarray(labels, dtype=np.int32)

    def gather(batch_idx):
        return pixels[batch_idx], labels[batch_idx]

    def load(batch_idx):
        x, y = tf.numpy_function(gather, [batch_idx], (tf.as_dtype(pixels.dtype), tf.int32), stateful=False)
        x.set_shape((None, *size))
        y.set_shape((None,))
        return x, y

    ds = tf.data.Dataset.from_tensor_slices(indices)
    if shuffle:
        ds = ds.shuffle(len(indices), seed=seed, reshuffle_each_iteration=True)
    ds = ds.batch(batch_size).map(load, num_parallel_calls=tf.data.AUTOTUNE)
    if augment:
        augmenter = make_augmenter(seed)

        def apply(x, y):
            x = augmenter(tf.cast(x, tf.float32), training=True)
            return tf.cast(tf.clip_by_value(tf.round(x), 0.0, 255.0), tf.uint8), y

        ds = ds.map(apply, num_parallel_calls=tf.data.AUTOTUNE)
    return ds.prefetch(tf.data.AUTOTUNE)


def predict(model: keras.Model, pixels: np.ndarray, indices, batch_size: int = 64) -> np.ndarray:
    """Class probabilities for the cache rows in ``indices`` (in order)."""
    ds = batches(pixels, np.zeros(len(pixels), np.int32), indices, batch_size).map(lambda x, y: x)
    if len(indices) == 0:
        return np.zeros((0, model.output_shape[-1]), np.float32)
    return model.predict(ds, verbose=0)
