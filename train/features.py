"""Phase 1 on cached features: the frozen base's pooled features, computed once per training view.

Phase 1 never changes the base, so pushing every image through it every epoch (as the Keras tutorial does) repeats
the same work. Here each training image goes through the base once per *view* (the image, its horizontal flip, and
optionally seeded random zoom crops), and the head then trains on those vectors for as many epochs as early stopping
wants, a fraction of a second each. Validation features come from the plain images, computed once, so phase 1's
validation loss is the full model's (same layers and weights, dropout off in inference) to float rounding. The base
runs on LiteRT float32 where it converts and agrees with Keras (:class:`Extractor`), 2.9x as fast as Keras.

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

from edgeclf.console import note, progress
from edgeclf.errors import first_line
from edgeclf.native import quiet_tensorflow
from edgeclf.runtime.interpreter import load_interpreter

from .cache import MEMORY_LIMIT

POOL_LAYER = "pool"
HEAD_LAYERS = ("dropout", "probabilities")
VIEWS = ("image", "flip", "zoom1", "zoom2", "zoom3", "zoom4")  # in the order a views count takes them
ZOOM_MIN_SIDE = 0.75  # a zoom view crops a random square of 75-100 % of the side, then resizes back
ENGINES = ("auto", "litert", "keras")
ENGINE_VAR = "EDGECLF_FEATURES"  # keras|litert: force an engine (comparisons, debugging)
BREAK_EVEN = 1000  # images: ~7 s of conversion / ~6.8 ms saved per image (extraction-speed-*-2026-12-07)
AGREEMENT = 1e-3  # largest |LiteRT - Keras| feature difference accepted (measured: 3.5e-5 on MobileNetV2 1.0 224)
AGREEMENT_IMAGES = 4  # images of the first batch checked on both engines before LiteRT extracts the rest


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
                    seed: int, batch_size: int = 64, quiet: bool = False, desc: str = "features",
                    extractor: "Extractor | None" = None) -> tuple[np.ndarray, bool]:
    """Features of ``pixels[indices]`` for each view, view-major: row ``v * len(indices) + i``, and whether they were
    reused. Read from ``cache_dir`` when a complete file for ``key`` exists (resume), else extracted with a bar by
    ``extractor`` (pass one to share its conversion between calls; default: a new :class:`Extractor`)."""
    indices = np.asarray(indices, dtype=np.int64)
    path = Path(cache_dir) / f"features-{_digest(key, views, indices)}.npy"
    reused = path.exists()
    if not reused:
        extractor = extractor or Extractor(model, images=len(views) * len(indices), quiet=quiet)
        _extract_to(path, extractor, pixels, indices, views, seed=seed,
                    batch_size=batch_size, quiet=quiet, desc=desc)
    large = path.stat().st_size > MEMORY_LIMIT
    return np.load(path, mmap_mode="r" if large else None), reused


class Extractor:
    """The frozen base's forward pass, ``uint8 images -> pooled features``, on the fastest engine that computes the
    same numbers.

    LiteRT float32 runs MobileNetV2's base 2.9x as fast as Keras ``predict`` on a 2-core x86 and gives the same
    features to ~4e-5 (benchmarks/results/extraction-speed-*-2026-12-07), and converting costs ~7 s, repaid after
    ~1,000 images. So ``engine="auto"`` uses Keras for fewer than :data:`BREAK_EVEN` ``images``; otherwise it
    converts the extractor on first use (never, when every feature file is reused), checks a few images against
    Keras and keeps LiteRT only when they agree to :data:`AGREEMENT`. A conversion that fails or disagrees falls
    back to Keras with one line saying why. ``$EDGECLF_FEATURES=keras|litert`` (or ``engine=``) forces an engine;
    a forced LiteRT that fails is an error."""

    def __init__(self, model: keras.Model, *, images: int | None = None, engine: str | None = None,
                 quiet: bool = False):
        self.keras = extractor_of(model)
        self.width = int(self.keras.output.shape[-1])
        self.wanted = engine or os.environ.get(ENGINE_VAR) or "auto"
        if self.wanted not in ENGINES:
            raise ValueError(f"feature engine must be one of {ENGINES}, got {self.wanted!r}")
        if self.wanted == "auto" and images is not None and images < BREAK_EVEN:
            self.wanted = "keras"  # converting would cost more than it saves
        self.quiet = quiet
        self.engine: str | None = None  # "litert" or "keras" once started
        self.max_difference: float | None = None  # LiteRT vs Keras on the check images
        self._run = None

    def __call__(self, images: np.ndarray) -> np.ndarray:
        if self._run is None:
            self._run = self._start(images[:AGREEMENT_IMAGES])
        return self._run(images)

    def _keras(self, images: np.ndarray) -> np.ndarray:
        # predict, not predict_on_batch: under MirroredStrategy the latter returned 32 rows for 16 images
        return self.keras.predict(images, batch_size=len(images), verbose=0)

    def _start(self, sample: np.ndarray):
        if self.wanted == "keras":
            self.engine = "keras"
            return self._keras
        try:
            run = litert_runner(to_tflite(self.keras), self.keras.input_shape[1:])
            self.max_difference = float(np.max(np.abs(run(sample) - self._keras(sample))))
            if not self.max_difference <= AGREEMENT:
                raise ValueError(f"LiteRT features differ from Keras by {self.max_difference:.2g}")
        except Exception as exc:  # noqa: BLE001 - any converter or interpreter failure: Keras still works
            if self.wanted == "litert":
                raise
            note(f"phase 1: extracting features with Keras (LiteRT float32 unavailable: {first_line(exc)})",
                 quiet=self.quiet)
            self.engine = "keras"
            return self._keras
        self.engine = "litert"
        return run


def to_tflite(model: keras.Model) -> bytes:
    """``model`` as a float32 .tflite (builtin ops only), converted quietly."""
    with quiet_tensorflow():
        converter = tf.lite.TFLiteConverter.from_keras_model(model)
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
        return converter.convert()


def litert_runner(flatbuffer: bytes, image_shape, *, batch: int = 1, num_threads: int | None = None):
    """``images -> outputs`` on LiteRT, ``batch`` images per invoke (1, the default, was the fastest measured: 3.5 vs
    4.3 ms/image at 32), on every usable core unless ``num_threads``. With ``batch`` > 1, pass a multiple of it."""
    interpreter, _ = load_interpreter("the phase 1 feature extractor", num_threads, model_content=flatbuffer)
    inp, out = interpreter.get_input_details()[0]["index"], interpreter.get_output_details()[0]["index"]
    interpreter.resize_tensor_input(inp, [batch, *image_shape])
    interpreter.allocate_tensors()

    def run(images: np.ndarray) -> np.ndarray:
        rows = []
        for start in range(0, len(images), batch):
            interpreter.set_tensor(inp, images[start:start + batch])
            interpreter.invoke()
            rows.append(interpreter.get_tensor(out).copy())
        return np.concatenate(rows)

    return run


def _extract_to(path: Path, extractor: Extractor, pixels, indices, views, *, seed, batch_size, quiet, desc):
    """Fill a memory-mapped temp file batch by batch, then rename it into place (only complete files exist)."""
    n = len(indices)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".tmp-{path.name}")
    out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32, shape=(len(views) * n, extractor.width))
    bar = progress(total=len(views) * n, desc=f"{desc} ({len(views)} view{'s' * (len(views) > 1)})", quiet=quiet,
                   unit="img")
    with bar:
        for v, view in enumerate(views):
            rng = np.random.default_rng(seed + v * 7919)  # one stream per view, drawn in order: reproducible crops
            for start in range(0, n, batch_size):
                chunk = indices[start:start + batch_size]
                rows = v * n + start
                out[rows:rows + len(chunk)] = extractor(np.ascontiguousarray(transform(pixels[chunk], view, rng)))
                bar.update(len(chunk))
    out.flush()
    del out
    os.replace(tmp, path)


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


def _digest(key: str, views, indices: np.ndarray) -> str:
    h = hashlib.sha256(f"{key}|{','.join(views)}".encode())
    h.update(indices.tobytes())
    return h.hexdigest()[:16]
