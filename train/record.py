"""Writing a finished run's artifacts: model.keras (inference copy), history, plots, edgeclf.json, and the summary
``edgeclf train --json`` prints. Everything lands in the staging folder first (see :mod:`edgeclf.train.run`)."""

from __future__ import annotations

import platform
import resource
import time
from dataclasses import asdict
from datetime import datetime, timezone
from pathlib import Path

from edgeclf.contracts import HISTORY_FILE, MODEL_FILE, InputContract
from edgeclf.fsutil import atomic_path, atomic_write_json
from edgeclf.manifest import Manifest
from edgeclf.runtime.machine import package_versions

from . import download
from .options import BASE_NAME
from .plots import LEARNING_CURVES, plot_learning_curves

RECORDED_VERSIONS = ("edgeclf", "tensorflow", "keras", "numpy", "pillow")  # in edgeclf.json, with the Python version

VIEWS_WHY = ("the image and its horizontal flip: in the recipe study (benchmarks/results/recipe-study-x86_64-xeon-"
             "2core-2026-12-01.md) the mirror view gave the best phase 1 validation accuracy on clothing (85.0 % vs "
             "84.5 % with one view, label smoothing 0.1) and +0.2 points on cats-vs-dogs; a third (zoom-crop) view "
             "added 1 image of 500 on cats-vs-dogs, within noise, for 50 % more extraction time")


def write_run(session, model, data, metrics: dict, timings: dict, distribution: dict) -> dict:
    """Save every artifact of the run into ``session.staging`` and return the run's summary."""
    state, staging = session.state, session.staging
    with atomic_path(staging / MODEL_FILE) as tmp:
        inference_copy(model).save(tmp)
    atomic_write_json(staging / HISTORY_FILE, {"history": state["history"], "best": state["best"]})
    plot_learning_curves(state["history"], staging / LEARNING_CURVES)
    timings = {k: round(v, 2) for k, v in {**timings, "phase1_s": state["seconds"]["1"],
                                           "phase2_s": state["seconds"]["2"],
                                           "total_s": time.perf_counter() - session.t_start}.items()}
    metrics = {**metrics, "best_epoch": state["best"], "timings": timings,
               "epochs_run": {"phase1": state["done"]["1"], "phase2": state["done"]["2"]},
               "early_stopped": {"phase1": state["stopped"]["1"], "phase2": state["stopped"]["2"]},
               "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}
    manifest = _manifest(session, data, metrics, distribution)
    manifest.save(staging)
    return _summary(session, data, manifest)


def inference_copy(model):
    """The trained model without its optimizer state and compile settings: model.keras is for inference and export
    (9 MB instead of 24 MB at alpha 1.0), and loads without Keras warnings about uncompiled metrics."""
    import keras

    clean = keras.Model.from_config(model.get_config())  # a fresh, never-compiled model of the same graph
    clean.set_weights(model.get_weights())
    return clean


def _manifest(session, data, metrics: dict, distribution: dict) -> Manifest:
    opts, state = session.opts, session.state
    class_weight = data.class_weight()
    return Manifest(
        labels=data.class_names,
        input=InputContract(height=opts.image_size, width=opts.image_size),
        base_model={"name": BASE_NAME, "alpha": opts.alpha, "weights": weights_label(opts.weights),
                    "include_top": False, "fine_tune_at": opts.fine_tune_at,
                    "batchnorm_calibration_images": state.data.get("batchnorm_calibration_images")},
        hyperparameters={**{k: v for k, v in asdict(opts).items() if k not in ("data", "data_url", "out")},
                         "class_weight": {data.class_names[k]: v for k, v in class_weight.items()} if class_weight
                         else None,
                         "augmentation": _augmentation() if opts.augment else None,
                         "optimizer": "adam", "loss": "sparse_categorical_crossentropy",
                         "phase1": _phase1_record(opts, state), "phase2": _phase2_record(opts),
                         "global_batch_size": session.batch_size, "distribution": distribution},
        dataset={"source": opts.data if opts.data in download.BUILTIN_DATASETS else "folder",
                 "url": download.dataset_url(opts.data_url) if opts.data in download.BUILTIN_DATASETS else None,
                 "root": str(data.layout.root), "layout": data.layout.kind, "strategy": data.splits.strategy,
                 "fingerprint": data.splits.fingerprint, "counts": data.counts(), "images": len(data.items),
                 "skipped_count": len(data.cache.skipped), "skipped": data.cache.skipped,
                 "data_check": data.data_check},
        versions={"python": platform.python_version(), **package_versions(RECORDED_VERSIONS)},
        metrics=metrics,
        created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
    )


def _phase1_record(opts, state) -> dict:
    from .features import view_names

    return {"on": "cached pooled features of the frozen base", "views": view_names(opts.views),
            "feature_cache": state.data.get("feature_cache"),
            "views_why": VIEWS_WHY if opts.views == 2 else "set with --views",
            "max_epochs": opts.epochs, "lr": opts.lr,
            "early_stopping": {"monitor": "val_loss", "patience": opts.head_patience, "restore_best_weights": True}}


def _phase2_record(opts) -> dict:
    from .fit import WARMUP_EPOCHS, WARMUP_START

    return {"fine_tune_at": opts.fine_tune_at, "max_epochs": opts.fine_tune_epochs, "peak_lr": opts.fine_tune_lr,
            "schedule": f"linear warm-up over {WARMUP_EPOCHS} epoch from peak/{WARMUP_START:g}, cosine decay to 0 "
                        f"at the maximum epoch",
            "weight_average": {"half_life_epochs": opts.ema_half_life, "used_for": "validation, early stopping, "
                               "checkpoints and the final model"} if opts.ema_half_life else None,
            "early_stopping": {"monitor": "val_loss", "patience": opts.patience, "start_from_epoch": WARMUP_EPOCHS,
                               "min_improvement": opts.min_improvement, "restore_best_weights": True}}


def _summary(session, data, manifest: Manifest) -> dict:
    m, opts = manifest.metrics, session.opts
    return {"run_dir": str(session.out), "labels": data.class_names, "image_size": opts.image_size,
            "alpha": opts.alpha, "weights": weights_label(opts.weights),
            "counts": {k: sum(v.values()) for k, v in manifest.dataset["counts"].items()},
            "skipped": manifest.dataset["skipped"], "test": _brief(m["test"]), "validation": _brief(m["validation"]),
            "temperature_scaling": m["temperature_scaling"], "data_check": manifest.dataset["data_check"],
            "best_epoch": m["best_epoch"], "epochs_run": m["epochs_run"], "timings": m["timings"],
            "peak_rss_mb": m["peak_rss_mb"]}


def weights_label(weights) -> str:
    w = str(weights)
    return w.lower() if w.lower() in ("imagenet", "none") else str(Path(w).expanduser().resolve())


def _augmentation() -> dict:
    from .pipeline import ROTATION, ZOOM

    return {"flip": "horizontal", "rotation": ROTATION, "zoom": ZOOM}


def _brief(m: dict) -> dict:
    return {k: m[k] for k in ("accuracy", "ci95", "correct", "count", "per_class", "macro_f1", "weighted_f1",
                              "top_k", "ece", "thresholds")}
