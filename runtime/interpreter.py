"""Find a TFLite interpreter: ai_edge_litert → tflite_runtime → tensorflow.lite, and say which one ran.

A Pi has one of the first two; a workstation may only have TensorFlow. TensorFlow is imported only as the last resort
(and only here), so ``import edgeclf.runtime`` never pulls it in. ``EDGECLF_INTERPRETER=ai_edge_litert|tflite_runtime|
tensorflow`` forces one, e.g. to compare backends.
"""

from __future__ import annotations

import importlib
import os
import warnings
from importlib import metadata as importlib_metadata

from edgeclf.errors import MissingDependencyError, ModelError, UsageError, first_line
from edgeclf.native import native_stderr_silenced

from .machine import usable_cores

BACKENDS = ("ai_edge_litert", "tflite_runtime", "tensorflow")
_MODULES = {"ai_edge_litert": "ai_edge_litert.interpreter", "tflite_runtime": "tflite_runtime.interpreter",
            "tensorflow": "tensorflow"}
_DISTRIBUTIONS = {"ai_edge_litert": "ai-edge-litert", "tflite_runtime": "tflite-runtime", "tensorflow": "tensorflow"}
ENV_VAR = "EDGECLF_INTERPRETER"


def _import_backend(name: str):
    module = importlib.import_module(_MODULES[name])
    if name == "tensorflow":
        return module.lite.Interpreter
    return module.Interpreter


def backend_version(name: str) -> str:
    """The installed version of a backend's distribution (tensorflow may be installed as tensorflow-cpu)."""
    candidates = (_DISTRIBUTIONS[name],) + (("tensorflow-cpu", "tf-nightly") if name == "tensorflow" else ())
    for dist in candidates:
        try:
            return importlib_metadata.version(dist)
        except importlib_metadata.PackageNotFoundError:
            continue
    return "unknown"


def find_interpreter(prefer: str | None = None):
    """(Interpreter class, "name version") of the first backend that imports; ``prefer`` or $EDGECLF_INTERPRETER
    forces one (and fails if it is missing)."""
    prefer = prefer or os.environ.get(ENV_VAR) or None
    if prefer:
        if prefer not in BACKENDS:
            raise UsageError(f"{ENV_VAR}={prefer!r} is not a known interpreter", f"use one of: {', '.join(BACKENDS)}")
        try:
            return _import_backend(prefer), f"{prefer} {backend_version(prefer)}"
        except ImportError:
            raise MissingDependencyError(f"the {prefer} interpreter ({ENV_VAR})",
                                         f"pip install {_DISTRIBUTIONS[prefer]}") from None
    for name in BACKENDS:
        try:
            return _import_backend(name), f"{name} {backend_version(name)}"
        except ImportError:
            continue
    raise MissingDependencyError("running a .tflite model",
                                 "pip install ai-edge-litert  (or tflite-runtime on 32-bit Raspberry Pi OS)")


def resolve_threads(num_threads: int | None) -> int:
    """The thread count to run with: ``None`` means every usable core. LiteRT's own default for None is
    ``int(num_threads or 1)``, one thread, which would leave three of a Pi 4's four cores idle."""
    if num_threads is None:
        return usable_cores()
    if isinstance(num_threads, bool) or not isinstance(num_threads, int) or num_threads < 1:
        raise UsageError(f"--threads must be a positive integer, got {num_threads!r}")
    return num_threads


def load_interpreter(model_path, num_threads: int | None = None, *, prefer: str | None = None,
                     model_content: bytes | None = None):
    """(allocated interpreter, backend string). ``num_threads=None``: every usable core. Any load failure becomes
    one ModelError line naming the file."""
    num_threads = resolve_threads(num_threads)
    interpreter_class, backend = find_interpreter(prefer)
    try:
        with warnings.catch_warnings(), native_stderr_silenced():
            warnings.simplefilter("ignore")  # tf.lite.Interpreter warns that it is deprecated in favour of LiteRT
            if model_content is not None:
                interpreter = interpreter_class(model_content=model_content, num_threads=num_threads)
            else:
                interpreter = interpreter_class(model_path=str(model_path), num_threads=num_threads)
            interpreter.allocate_tensors()
    except (ValueError, RuntimeError) as exc:
        raise ModelError(f"{model_path}: truncated, corrupt or unsupported TFLite model ({backend}: "
                         f"{first_line(exc)})",
                         "copy or export the model again, or update the interpreter package") from None
    return interpreter, backend
