"""``edgeclf train`` end to end: data → decoded cache → splits → two-phase fine-tuning → evaluation → run dir.

The run is staged in ``<out>.partial/`` (checkpoints, state, decoded cache on disk when large) and renamed to
``<out>`` only when every artifact is written, so a run directory is always whole; an existing one is only replaced
with ``force``. A killed run leaves its ``.partial`` folder behind for :func:`train` with ``resume``.
"""

from __future__ import annotations

import contextlib
import platform
import resource
import shutil
import sys
import time
from dataclasses import asdict
from functools import partial
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from edgeclf.console import note
from edgeclf.errors import UsageError
from edgeclf.fsutil import atomic_path, atomic_write_json, atomic_write_text, check_writable_dir, replace_dir
from edgeclf.manifest import HISTORY_FILE, LABELS_FILE, MODEL_FILE, InputContract, Manifest, load_splits
from edgeclf.runtime.metrics import score

from . import datacheck, download
from .cache import decode_all
from .dataset import discover
from .fit import CHECKPOINT_DIR, TrainState, run_phases
from .plots import CONFUSION_MATRIX, LEARNING_CURVES, plot_confusion, plot_learning_curves
from .options import TrainOptions
from .preflight import check_new_run, check_resume, partial_dir, resume_dirs
from .splits import make_splits

CACHE_DIR = ".cache"
CALIBRATION_IMAGES = 128  # --weights none: BatchNorm statistics come from this many training images


def train(opts: TrainOptions | None = None, *, force: bool = False, resume: str | Path | None = None,
          quiet: bool = False) -> dict:
    """Train (or resume) a run and return its summary (what ``--json`` prints)."""
    t_start = time.perf_counter()
    state = None
    if resume is not None:
        check_resume(resume)
        out, staging, state = _open_resume(Path(resume))
        opts = TrainOptions.from_dict(state["options"])
        root = Path(state["data_root"])
        note(f"resuming {staging} (phase {state['phase']}, epoch {state['done'][str(state['phase'])]} done)",
             quiet=quiet)
    else:
        opts = opts or TrainOptions()
        out = check_new_run(opts, force)
        staging = partial_dir(out)
        with contextlib.redirect_stdout(sys.stderr):  # Keras prints "Downloading data from ..." on stdout
            root = _data_root(opts)
    layout = discover(root)

    import keras

    from .model import build_model

    keras.utils.set_random_seed(opts.seed)
    # The model before the data: a wrong --weights or a failed download fails before minutes of decoding.
    resumed = state is not None and state.last_checkpoint.exists()
    if resumed:
        model = keras.models.load_model(state.last_checkpoint)
    else:
        with contextlib.redirect_stdout(sys.stderr):
            model = build_model(len(layout.labels), alpha=opts.alpha, image_size=opts.image_size,
                                weights=opts.weights, dropout=opts.dropout)
    if state is None:
        if staging.exists():  # --force: the interrupted run is abandoned
            shutil.rmtree(staging)
        check_writable_dir(staging)
        state = TrainState(staging)
        state["options"] = asdict(opts)
        state["data_root"] = str(root)
    try:
        return _train_staged(opts, model, layout, state, staging, out, resumed=resumed, resume=resume is not None,
                             quiet=quiet, t_start=t_start)
    except BaseException as exc:
        if not state.last_checkpoint.exists():  # nothing worth resuming: leave no .partial behind
            if resume is None:
                shutil.rmtree(staging, ignore_errors=True)
        elif isinstance(exc, KeyboardInterrupt):
            note(f"interrupted: continue with  edgeclf train --resume {out}", quiet=False)
        raise


def _train_staged(opts: TrainOptions, model, layout, state: TrainState, staging: Path, out: Path, *,
                  resumed: bool, resume: bool, quiet: bool, t_start: float) -> dict:
    from .model import calibrate_batchnorm
    from .pipeline import batches, predict

    # Data: decode once, split, record.
    listed = list(layout.files())
    t0 = time.perf_counter()
    cache = decode_all([p for _, _, p in listed], opts.image_size, cache_dir=staging / CACHE_DIR, quiet=quiet,
                       mode=opts.cache)
    decode_s = time.perf_counter() - t0
    items = [(listed[i][0], listed[i][1], listed[i][2], sha) for i, sha in zip(cache.keep, cache.sha256)]
    _refuse_unreadable_classes(layout, listed, cache)
    if cache.skipped:
        note(f"skipped {len(cache.skipped)} unreadable image(s), e.g. {cache.skipped[0]['path']}: "
             f"{cache.skipped[0]['reason']} (all listed in edgeclf.json, dataset.skipped)", quiet=quiet)
    splits, chosen, data_check = datacheck.check_and_split(
        layout, listed, cache, partial(make_splits, layout.root, layout.labels, items, seed=opts.seed,
                                       val_fraction=opts.val_fraction, test_fraction=opts.test_fraction),
        strict=opts.strict_data, out_dir=staging, quiet=quiet)
    if resume:
        recorded = load_splits(staging)
        if recorded.fingerprint != splits.fingerprint:
            raise UsageError(f"{layout.root}: the dataset changed since this run started (splits differ from "
                             f"{staging / 'splits.json'})", "restore the data, or start a new run with --force")
    else:
        splits.save(staging)
        atomic_write_text(staging / LABELS_FILE, "\n".join(layout.labels) + "\n")
    state.save()
    labels = np.array([layout.labels.index(item[1]) for item in items], dtype=np.int32)
    class_weight = datacheck.class_weights(labels[chosen["train"]], len(layout.labels))

    # Train both phases (checkpointing every epoch).
    if not resumed and _weights_label(opts.weights) == "none":
        sample = np.sort(np.random.default_rng(opts.seed).permutation(chosen["train"])[:CALIBRATION_IMAGES])
        calibrate_batchnorm(model, cache.pixels[sample])
        state["batchnorm_calibration_images"] = int(len(sample))
    train_ds = batches(cache.pixels, labels, chosen["train"], opts.batch_size, shuffle=True, augment=opts.augment,
                       seed=opts.seed)
    val_ds = batches(cache.pixels, labels, chosen["validation"], opts.batch_size)
    steps = -(-len(chosen["train"]) // opts.batch_size)
    run_phases(model, state, train_ds=train_ds, val_ds=val_ds, steps=steps, opts=opts, class_weight=class_weight,
               resumed=resumed, quiet=quiet)

    # Evaluate the restored best model on validation and the untouched test split.
    t0 = time.perf_counter()
    metrics = {}
    for split in ("validation", "test"):
        probs = predict(model, cache.pixels, chosen[split], batch_size=max(opts.batch_size, 64))
        metrics[split] = score(labels[chosen[split]], probs, layout.labels)
    evaluate_s = time.perf_counter() - t0

    # Artifacts.
    with atomic_path(staging / MODEL_FILE) as tmp:
        inference_copy(model).save(tmp)
    history = state["history"]
    atomic_write_json(staging / HISTORY_FILE, {"history": history, "best": state["best"]})
    plot_learning_curves(history, staging / LEARNING_CURVES)
    plot_confusion(metrics["test"]["confusion"], layout.labels, staging / CONFUSION_MATRIX)
    timings = {"decode_s": round(decode_s, 2), "phase1_s": round(state["seconds"]["1"], 2),
               "phase2_s": round(state["seconds"]["2"], 2), "evaluate_s": round(evaluate_s, 2),
               "total_s": round(time.perf_counter() - t_start, 2)}
    peak_rss_mb = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    metrics["best_epoch"] = state["best"]
    metrics["epochs_run"] = {"phase1": state["done"]["1"], "phase2": state["done"]["2"]}
    metrics["early_stopped"] = {"phase1": state["stopped"]["1"], "phase2": state["stopped"]["2"]}
    metrics["timings"] = timings
    metrics["peak_rss_mb"] = peak_rss_mb
    counts = {name: {lab: sum(1 for e in splits.files(name) if e.label == lab) for lab in layout.labels}
              for name in splits.splits}
    manifest = Manifest(
        labels=list(layout.labels),
        input=InputContract(height=opts.image_size, width=opts.image_size),
        base_model={"name": "MobileNetV2", "alpha": opts.alpha, "weights": _weights_label(opts.weights),
                    "include_top": False, "fine_tune_at": opts.fine_tune_at,
                    "batchnorm_calibration_images": state.data.get("batchnorm_calibration_images")},
        hyperparameters={**{k: v for k, v in asdict(opts).items() if k not in ("data", "data_url", "out")},
                         "class_weight": {layout.labels[k]: v for k, v in class_weight.items()} if class_weight
                         else None,
                         "augmentation": _augmentation() if opts.augment else None,
                         "optimizer": "adam", "loss": "sparse_categorical_crossentropy",
                         "early_stopping": {"monitor": "val_loss", "patience": opts.patience,
                                            "restore_best_weights": True}},
        dataset={"source": opts.data if opts.data in download.BUILTIN_DATASETS else "folder",
                 "url": download.dataset_url(opts.data_url) if opts.data in download.BUILTIN_DATASETS else None,
                 "root": str(layout.root), "layout": layout.kind, "strategy": splits.strategy,
                 "fingerprint": splits.fingerprint, "counts": counts, "images": len(cache),
                 "skipped_count": len(cache.skipped), "skipped": cache.skipped, "data_check": data_check},
        versions=_versions(),
        metrics=metrics,
        created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
    )
    manifest.save(staging)

    # Done: drop the scratch state, then make the run visible in one rename.
    shutil.rmtree(staging / CHECKPOINT_DIR, ignore_errors=True)
    del cache
    shutil.rmtree(staging / CACHE_DIR, ignore_errors=True)
    replace_dir(staging, out)
    return {"run_dir": str(out), "labels": list(layout.labels), "image_size": opts.image_size, "alpha": opts.alpha,
            "weights": _weights_label(opts.weights), "counts": {k: sum(v.values()) for k, v in counts.items()},
            "skipped": manifest.dataset["skipped"], "test": _brief(metrics["test"]),
            "validation": _brief(metrics["validation"]), "best_epoch": state["best"],
            "epochs_run": metrics["epochs_run"], "timings": timings, "peak_rss_mb": peak_rss_mb}


def inference_copy(model):
    """The trained model without its optimizer state and compile settings: model.keras is for inference and export
    (9 MB instead of 24 MB at alpha 1.0), and loads without Keras warnings about uncompiled metrics."""
    import keras

    clean = keras.Model.from_config(model.get_config())  # a fresh, never-compiled model of the same graph
    clean.set_weights(model.get_weights())
    return clean


def _open_resume(resume: Path) -> tuple[Path, Path, TrainState]:
    """The interrupted run's folders and state (already checked by :func:`preflight.check_resume`)."""
    out, staging = resume_dirs(resume)
    return out, staging, TrainState.load(staging)


def _refuse_unreadable_classes(layout, listed: list, cache) -> None:
    """A class folder whose every image is unreadable: list those files on stderr, then refuse, naming the folder
    (no edgeclf.json will exist to list them in)."""
    kept = {(listed[i][0], listed[i][1]) for i in cache.keep}
    for split, label in dict.fromkeys((s, lab) for s, lab, _ in listed):
        if (split, label) in kept:
            continue
        folder = layout.root / split / label if split else layout.root / label
        bad = [item for item in cache.skipped if Path(item["path"]).is_relative_to(folder)]
        for item in bad:
            note(f"skipped: {item['path']}: {item['reason']}")
        raise UsageError(f"--data {folder}: class folder has no readable images ({len(bad)} unreadable, listed "
                         "above)", "replace them with readable images or remove the folder")


def _data_root(opts: TrainOptions) -> Path:
    if opts.data in download.BUILTIN_DATASETS:
        return download.fetch_cats_vs_dogs(opts.data_url)
    return Path(opts.data).expanduser()


def _weights_label(weights) -> str:
    w = str(weights)
    return w.lower() if w.lower() in ("imagenet", "none") else str(Path(w).expanduser().resolve())


def _augmentation() -> dict:
    from .pipeline import ROTATION, ZOOM

    return {"flip": "horizontal", "rotation": ROTATION, "zoom": ZOOM}


def _versions() -> dict:
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version()}
    for dist in ("edgeclf", "tensorflow", "keras", "numpy", "pillow"):
        try:
            out[dist] = version(dist)
        except PackageNotFoundError:
            pass
    return out


def _brief(m: dict) -> dict:
    return {k: m[k] for k in ("accuracy", "ci95", "correct", "count", "per_class")}

