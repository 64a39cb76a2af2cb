"""edgeclf.runtime: run an exported .tflite classifier with numpy, Pillow and LiteRT only (never TensorFlow).

    from edgeclf.runtime import Classifier
    clf = Classifier("model_int8.tflite")
    clf.classify("photo.jpg", top_k=3)   # [Prediction(label='cats', index=0, score=0.97), ...]

Names are imported lazily so ``import edgeclf.runtime`` stays cheap on a Pi.
"""

from __future__ import annotations

_EXPORTS = {
    "Classifier": "classifier",
    "Prediction": "classifier",
    "UNKNOWN": "classifier",
    "answer": "classifier",
    "get_classes": "classifier",
    "expand_paths": "classifier",
    "find_interpreter": "interpreter",
    "load_interpreter": "interpreter",
    "load_image": "preprocess",
    "prepare_frame": "preprocess",
    "list_images": "preprocess",
    "is_image_file": "preprocess",
    "read_model_info": "model_file",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        import importlib

        value = getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
