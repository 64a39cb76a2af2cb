"""Scaling up on one box: train under ``tf.distribute.MirroredStrategy`` when several GPUs are visible.

Each replica gets ``--batch-size`` images, so the global batch is ``batch_size x replicas`` and an epoch takes
proportionally fewer steps. With one GPU or none, TensorFlow's default strategy is used (no distribution overhead).
Multi-worker training (``MultiWorkerMirroredStrategy``) is not offered: with Keras 3 it is known to fail since
TF 2.16.

``EDGECLF_DEVICES`` (comma-separated TensorFlow device names, e.g. ``/gpu:0,/gpu:2``) picks the devices explicitly;
the tests use it with two logical CPU devices to run the mirrored code path on any machine.
"""

from __future__ import annotations

import os

import tensorflow as tf

DEVICES_ENV = "EDGECLF_DEVICES"


def training_devices() -> list[str]:
    """The devices to mirror over: ``EDGECLF_DEVICES`` if set, else every visible GPU."""
    chosen = os.environ.get(DEVICES_ENV, "").strip()
    if chosen:
        return [d.strip() for d in chosen.split(",") if d.strip()]
    return [d.name for d in tf.config.list_logical_devices("GPU")]


def strategy_for(devices: list[str] | None = None) -> tf.distribute.Strategy:
    """MirroredStrategy over ``devices`` when there are two or more, else the default (single-device) strategy."""
    devices = training_devices() if devices is None else devices
    if len(devices) > 1:
        return tf.distribute.MirroredStrategy(devices)
    return tf.distribute.get_strategy()


def describe(strategy: tf.distribute.Strategy) -> dict:
    """What edgeclf.json records about where the run trained."""
    mirrored = isinstance(strategy, tf.distribute.MirroredStrategy)
    return {"strategy": type(strategy).__name__ if mirrored else "default",
            "replicas": int(strategy.num_replicas_in_sync),
            "devices": list(strategy.extended.worker_devices) if mirrored else None}
