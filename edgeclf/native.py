"""Keep native libraries' log lines (TensorFlow, XLA, absl, LiteRT) off the terminal unless --debug.

TensorFlow prints its C++ start-up logging (CUDA probing, CPU-feature notes, "All log messages before
absl::InitializeLog() ..."); some of it comes from absl before TensorFlow's own ``TF_CPP_MIN_LOG_LEVEL`` applies, so
the only reliable switch is to point file descriptor 2 at /dev/null while the library starts. Python-level errors
still reach the user: they are raised as exceptions and printed after the descriptor is restored.
"""

from __future__ import annotations

import contextlib
import os
import sys


def debugging() -> bool:
    """--debug (or EDGECLF_DEBUG=1): show everything, native logs included."""
    return os.environ.get("EDGECLF_DEBUG") == "1"


@contextlib.contextmanager
def native_stderr_silenced():
    """Send what native code writes to fd 2 to /dev/null for the duration of the block (not with --debug)."""
    if debugging():
        yield
        return
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError, AttributeError):  # no real fd 2 (embedded interpreters, some notebooks)
        yield
        return
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 2)
        os.close(devnull)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def import_tensorflow_quietly():
    """Import TensorFlow and Keras and initialise their devices with the native start-up logging hidden; returns
    the ``tensorflow`` module. Call it only after every option and path has been validated."""
    if not debugging():
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        os.environ.setdefault("ABSL_MIN_LOG_LEVEL", "2")
    with native_stderr_silenced():
        import tensorflow as tf

        import keras  # noqa: F401

        tf.config.list_physical_devices()  # CUDA probing logs here, on first use
        try:
            from absl import logging as absl_logging

            absl_logging.set_verbosity(absl_logging.ERROR)
        except ImportError:  # pragma: no cover - absl comes with TensorFlow
            pass
    return tf


def import_stage(feature: str, module: str):
    """Import a TensorFlow stage (``edgeclf.train.run``, ``edgeclf.export.run``) quietly, or say which extra to
    install when TensorFlow is missing."""
    import importlib

    from edgeclf.errors import MissingDependencyError

    try:
        import_tensorflow_quietly()
        return importlib.import_module(module)
    except ImportError as exc:
        missing = (getattr(exc, "name", None) or "").split(".")[0]
        if missing in ("tensorflow", "keras", "matplotlib", "h5py") or "tensorflow" in str(exc).lower():
            raise MissingDependencyError(feature, 'pip install "edgeclf[train]"') from None
        raise


@contextlib.contextmanager
def quiet_tensorflow():
    """Hide TensorFlow's chatter around a conversion: native lines (oneDNN/CUDA notes, the converter's "Statistics for
    quantized inputs were expected", "fully_quantize: 0, ..."), absl and Python warnings, and the "Saved artifact at
    ..." listing Keras prints to stdout when a converter exports a model (stdout is --json's). Errors still arrive as
    exceptions; --debug leaves everything alone."""
    if debugging():
        yield
        return
    import io
    import logging
    import warnings

    absl = logging.getLogger("absl")
    level = absl.level
    absl.setLevel(logging.ERROR)
    try:
        with native_stderr_silenced(), warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        absl.setLevel(level)
