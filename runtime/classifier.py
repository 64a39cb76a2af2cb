"""Classifier: a .tflite image classifier with its labels, ready for paths, PIL images and camera frames.

Every edgeclf model takes uint8 RGB at its input size (normalisation is inside the graph), so the only conversions
here are the ones the tensors' dtypes demand: int8 inputs are quantized with the input tensor's (scale, zero point),
float inputs get the raw 0..255 values, quantized outputs are dequantized with the output tensor's parameters. The
result is always a float32 probability vector, whatever the export format.

Not thread-safe: one Classifier per thread (the interpreter owns one set of tensors).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable, Iterator, NamedTuple, Sequence

import numpy as np

from edgeclf.contracts import LABELS_FILE, MANIFEST_FILE, read_labels_file
from edgeclf.errors import ImageError, ModelError, UsageError

from .interpreter import load_interpreter, resolve_threads
from .model_file import ModelInfo, read_model_file, read_model_info
from .prefetch import decode_ahead
from .preprocess import ImageSource, list_images, load_image

UNKNOWN = "unknown"


class Prediction(NamedTuple):
    """One class and its probability. ``index`` is -1 for the "unknown" answer below a threshold."""

    label: str
    index: int
    score: float


class Classifier:
    """Load ``model_path`` once, classify many images.

    ``labels`` (a list, or the path of a labels.txt) overrides the labels embedded in the model; without either, a
    labels.txt or edgeclf.json beside the model (or in its parent run directory) is used.
    ``num_threads`` is passed to the interpreter (None: every usable core; ``self.num_threads`` is the count used).
    """

    def __init__(self, model_path: str | os.PathLike, labels: Sequence[str] | str | os.PathLike | None = None,
                 num_threads: int | None = None, *, interpreter: str | None = None):
        self.model_path = Path(model_path)
        data = read_model_file(self.model_path)
        self.info: ModelInfo = read_model_info(data, self.model_path)
        self.num_threads = resolve_threads(num_threads)
        # The interpreter gets the very bytes that were checked (digest, structure), never a second read of the file.
        self._interpreter, self.backend = load_interpreter(self.model_path, self.num_threads, prefer=interpreter,
                                                           model_content=data)
        self._bind_tensors()
        self.labels = self._resolve_labels(labels)

    # --- set-up -------------------------------------------------------------------------------------------------

    def _bind_tensors(self) -> None:
        inputs = self._interpreter.get_input_details()
        outputs = self._interpreter.get_output_details()
        name = self.model_path
        if len(inputs) != 1 or len(outputs) != 1:
            raise ModelError(f"{name}: expected one input and one output tensor, found {len(inputs)} and "
                             f"{len(outputs)}", "edgeclf runs single-image classifiers")
        inp, out = inputs[0], outputs[0]
        shape = tuple(int(d) for d in inp["shape"])
        if len(shape) != 4 or shape[0] != 1 or shape[3] != 3 or shape[1] < 1 or shape[2] < 1:
            raise ModelError(f"{name}: expected an image input of shape (1, H, W, 3), found {shape}",
                             "export an edgeclf model (uint8 RGB input)")
        out_shape = tuple(int(d) for d in out["shape"])
        if len(out_shape) != 2 or out_shape[0] != 1 or out_shape[1] < 1:
            raise ModelError(f"{name}: expected a class-score output of shape (1, N), found {out_shape}")
        self.input_size: tuple[int, int] = (shape[2], shape[1])  # (width, height), Pillow's order
        self.input_dtype = np.dtype(inp["dtype"])
        self.output_dtype = np.dtype(out["dtype"])
        self.num_classes = out_shape[1]
        if self.input_dtype not in (np.dtype(np.uint8), np.dtype(np.int8), np.dtype(np.float32),
                                    np.dtype(np.float16)):
            raise ModelError(f"{name}: unsupported input type {self.input_dtype}",
                             "export with uint8, int8 or float32 input")
        self._input_index, self._output_index = inp["index"], out["index"]
        self._input_quant = _quant(inp)
        self._output_quant = _quant(out)
        if self.input_dtype == np.int8 and self._input_quant[0] == 0.0:
            raise ModelError(f"{name}: int8 input without quantization parameters", "export the model again")
        self._input_shape = shape

    def _resolve_labels(self, labels) -> list[str]:
        if labels is not None:
            found = read_labels_file(labels) if isinstance(labels, (str, os.PathLike)) else [str(x) for x in labels]
            source = str(labels) if isinstance(labels, (str, os.PathLike)) else "labels"
        elif self.info.labels:
            found, source = self.info.labels, f"{self.model_path} (embedded metadata)"
        else:
            found, source = _labels_beside(self.model_path)
            if found is None:
                raise ModelError(f"{self.model_path}: model has no embedded labels; pass --labels FILE",
                                 "or export it with edgeclf export, which embeds them")
        duplicates = sorted({label for label in found if list(found).count(label) > 1})
        if duplicates:  # a dog printed as "cats": refuse rather than guess which line is meant
            raise ModelError(f"{source}: duplicate label(s) {', '.join(duplicates)}",
                             "each class name must appear once, in output order")
        if len(found) != self.num_classes:
            raise ModelError(f"{source}: {len(found)} labels for a model with {self.num_classes} outputs "
                             f"({self.model_path})", "pass the labels file the model was trained with")
        self.labels_source = source
        return list(found)

    # --- inference ----------------------------------------------------------------------------------------------

    def probabilities(self, source: ImageSource) -> np.ndarray:
        """Class probabilities (float32, one per label) for a path, bytes, PIL image or RGB numpy frame of any size."""
        return self.probabilities_from_input(load_image(source, self.input_size))

    def probabilities_from_input(self, x: np.ndarray) -> np.ndarray:
        """The hot path: ``x`` is uint8 RGB already at the input size (H, W, 3). No copies beyond set_tensor's."""
        if not isinstance(x, np.ndarray) or x.dtype != np.uint8 or x.shape != self._input_shape[1:]:
            got = f"{x.dtype} {x.shape}" if isinstance(x, np.ndarray) else type(x).__name__
            width, height = self.input_size
            raise ImageError("<frame>", f"expected a uint8 array of shape ({height}, {width}, 3), got {got}",
                             "use Classifier.probabilities(), which resizes and converts any image")
        self._interpreter.set_tensor(self._input_index, self._to_input_dtype(x)[np.newaxis])
        try:
            self._interpreter.invoke()
        except (RuntimeError, ValueError) as exc:  # a model damaged in a way only running it shows
            first_line = (str(exc).strip().splitlines() or [exc.__class__.__name__])[0]
            raise ModelError(f"{self.model_path}: the model fails to run ({first_line})",
                             "export or copy it again") from None
        raw = self._interpreter.get_tensor(self._output_index)[0]
        return self._to_probabilities(raw)

    def _to_input_dtype(self, x: np.ndarray) -> np.ndarray:
        dtype = self.input_dtype
        scale, zero = self._input_quant
        if dtype == np.uint8:
            if scale == 0.0 or (scale == 1.0 and zero == 0):
                return x
            return _quantize(x, scale, zero, np.uint8)
        if dtype == np.int8:
            if scale == 1.0 and zero == -128:  # the usual [0, 255] range: x - 128 is a sign-bit flip, no arithmetic
                return (x ^ np.uint8(0x80)).view(np.int8)
            return _quantize(x, scale, zero, np.int8)
        return x.astype(dtype)  # float32/float16 models take the raw 0..255 values

    def _to_probabilities(self, raw: np.ndarray) -> np.ndarray:
        scale, zero = self._output_quant
        if raw.dtype.kind in "iu":
            values = (raw.astype(np.float32) - np.float32(zero)) * np.float32(scale if scale else 1.0)
        else:
            values = raw.astype(np.float32)
        tolerance = max(0.02, len(values) * scale)  # quantized softmax rounds each score by up to scale / 2
        if values.min() >= -1e-6 and abs(float(values.sum()) - 1.0) <= tolerance:
            return np.clip(values, 0.0, 1.0)
        return _softmax(values)  # logits (or anything else that is not a distribution)

    def classify(self, source: ImageSource, top_k: int | None = None, threshold: float | None = None
                 ) -> list[Prediction]:
        """Predictions sorted by score (all classes, or the ``top_k`` best). With ``threshold``, predictions below
        it are dropped; when none is left the answer is ``[Prediction("unknown", -1, best score)]``."""
        return self.top(self.probabilities(source), top_k, threshold)

    def top(self, probs: np.ndarray, top_k: int | None = None, threshold: float | None = None) -> list[Prediction]:
        """Turn a probability vector into sorted predictions (see :meth:`classify` and :func:`get_classes`)."""
        return get_classes(probs, self.labels, top_k, threshold)

    def classify_many(self, paths: Iterable[str | os.PathLike], top_k: int | None = None,
                      threshold: float | None = None, *, workers: int | None = None
                      ) -> Iterator[tuple[Path, list[Prediction] | ImageError]]:
        """(path, predictions) for every image in ``paths`` (folders are searched recursively), in order; unreadable
        files yield (path, ImageError) instead of stopping the batch. The next images are decoded by ``workers``
        threads while this one runs (see :mod:`.prefetch`; 0: no overlap)."""
        for item, x in decode_ahead(expand_paths(paths), self.input_size, workers):
            if isinstance(x, ImageError):
                yield Path(x.path if isinstance(item, ImageError) else item), x
            else:
                yield Path(item), self.top(self.probabilities_from_input(x), top_k, threshold)

    def __repr__(self) -> str:
        w, h = self.input_size
        return (f"Classifier({str(self.model_path)!r}, {len(self.labels)} labels, input {w}x{h} {self.input_dtype}, "
                f"output {self.output_dtype}, {self.backend})")


def get_classes(probs: np.ndarray, labels: Sequence[str], top_k: int | None = None,
                threshold: float | None = None) -> list[Prediction]:
    """The ``top_k`` best classes (all when None), best first, as pycoral's ``classify.get_classes`` gives them.

    With ``threshold``, classes scoring below it are dropped; when none is left the answer is
    ``[Prediction("unknown", -1, best score)]``, the same decision as :func:`answer`."""
    if top_k is not None and top_k < 1:
        raise UsageError(f"--top-k must be at least 1, got {top_k}")
    order = np.argsort(-probs, kind="stable")[: top_k or len(probs)]
    preds = [Prediction(labels[i], int(i), float(probs[i])) for i in order]
    if threshold is None:
        return preds
    return [p for p in preds if p.score >= threshold] or [answer(preds, threshold)]


def answer(preds: Sequence[Prediction], threshold: float | None) -> Prediction:
    """The one label to report for sorted ``preds``: the best, or "unknown" (index -1, the best score) when the best
    scores below ``threshold``."""
    best = preds[0]
    return best if threshold is None or best.score >= threshold else Prediction(UNKNOWN, -1, best.score)


def expand_paths(paths: Iterable[str | os.PathLike | ImageError]) -> Iterator[Path | ImageError]:
    """Files as given (whatever their extension) and image files under folders, recursively; a missing path yields an
    ImageError so batch callers can report it with the unreadable files (ImageErrors given pass through)."""
    for p in paths:
        if isinstance(p, ImageError):
            yield p
            continue
        p = Path(p)
        if p.is_dir():
            yield from list_images(p)
        elif p.is_file():
            yield p
        elif not p.exists():
            yield ImageError(p, "no such file or directory", "check the path")
        else:
            yield ImageError(p, "not a regular file")


def _labels_beside(model_path: Path) -> tuple[list[str] | None, str]:
    """labels.txt / edgeclf.json next to the model, then in its parent (an export dir inside a run dir)."""
    for folder in (model_path.parent, model_path.parent.parent):
        labels_file = folder / LABELS_FILE
        if labels_file.is_file():
            return read_labels_file(labels_file), str(labels_file)
        manifest = folder / MANIFEST_FILE
        if manifest.is_file():
            from edgeclf.manifest import load_manifest

            return load_manifest(folder).labels, str(manifest)
    return None, ""


def _quant(details: dict) -> tuple[float, int]:
    """(scale, zero_point) of a tensor; (0.0, 0) when it is not quantized. Per-tensor only (inputs/outputs are)."""
    scale, zero = details.get("quantization", (0.0, 0))
    params = details.get("quantization_parameters") or {}
    scales = params.get("scales")
    if scales is not None and len(scales) > 1:
        raise ModelError("per-channel quantized input/output tensors are not supported")
    return float(scale), int(zero)


def _quantize(x: np.ndarray, scale: float, zero: int, dtype) -> np.ndarray:
    info = np.iinfo(dtype)
    q = np.round(x.astype(np.float32) / np.float32(scale)) + np.float32(zero)
    return np.clip(q, info.min, info.max).astype(dtype)


def _softmax(values: np.ndarray) -> np.ndarray:
    e = np.exp(values - values.max())
    return (e / e.sum()).astype(np.float32)

