"""``edgeclf train`` end to end: data → decoded cache → splits → phase 1 on cached features → phase 2 fine-tuning →
evaluation → run dir.

The run is staged in ``<out>.partial/`` (checkpoints, state, decoded image cache and feature cache) and renamed to
``<out>`` only when every artifact is written, so a run directory is always whole; an existing one is only replaced
with ``force``. A killed run leaves its ``.partial`` folder behind for :func:`train` with ``resume``.
"""

from __future__ import annotations

import contextlib
import shutil
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from edgeclf.console import note
from edgeclf.contracts import LABELS_FILE
from edgeclf.errors import UsageError
from edgeclf.fsutil import atomic_write_text, check_writable_dir, replace_dir
from edgeclf.manifest import load_splits

from . import download
from .data import Prepared, prepare
from .dataset import discover
from .fit import CHECKPOINT_DIR, PhaseData, TrainState, feature_data, restore_best, run_phase1, run_phase2
from .options import TrainOptions
from .preflight import check_new_run, check_resume, partial_dir, resume_dirs
from .record import weights_label, write_run

CACHE_DIR = ".cache"
EXTRACT_BATCH = 64  # images per extraction step (Keras' batch when LiteRT is unavailable; no gradients to hold)
CALIBRATION_IMAGES = 128  # --weights none: BatchNorm statistics come from this many training images


@dataclass
class Session:
    """One run being trained: its options, where it lives, its resumable state and the clock."""

    opts: TrainOptions
    out: Path
    staging: Path
    state: TrainState
    root: Path
    resuming: bool
    t_start: float
    quiet: bool = False
    batch_size: int = 32  # global batch: opts.batch_size per replica


def train(opts: TrainOptions | None = None, *, force: bool = False, resume: str | Path | None = None,
          quiet: bool = False) -> dict:
    """Train (or resume) a run and return its summary (what ``--json`` prints)."""
    t_start = time.perf_counter()
    session = _open_resume(Path(resume), quiet) if resume is not None else _open_new(opts, force)
    session.t_start, session.quiet = t_start, quiet
    layout = discover(session.root)

    import keras
    import tensorflow as tf

    from .distribute import strategy_for

    tf.get_logger().setLevel("ERROR")  # tf.function retracing notes and the like are not for the user's terminal
    keras.utils.set_random_seed(session.opts.seed)
    strategy = strategy_for()
    session.batch_size = session.opts.batch_size * strategy.num_replicas_in_sync
    with strategy.scope():
        # The model before the data: a wrong --weights or a failed download fails before minutes of decoding.
        model = _model_for(session, len(layout.labels))
        _start_state(session, force)
        try:
            return _train_staged(session, model, layout, strategy)
        except BaseException as exc:
            _after_failure(session, exc, resume is not None)
            raise


def _train_staged(session: Session, model, layout, strategy) -> dict:
    opts, state = session.opts, session.state
    data = _prepare_recorded(session, layout)
    if not state.last(2).exists() and weights_label(opts.weights) == "none":
        _calibrate(model, data, opts.seed, state)  # deterministic, so a resumed phase 1 gets the same statistics
    class_weight = data.class_weight()
    t0, head_s = time.perf_counter(), state["seconds"]["1"]
    run_phase1(model, state, _phase1_data(model, data, session), opts, class_weight=class_weight,
               quiet=session.quiet)
    features_s = time.perf_counter() - t0 - (state["seconds"]["1"] - head_s)
    run_phase2(model, state, phase2_data(data, opts, session.batch_size), opts, class_weight=class_weight,
               resumed=session.resuming, quiet=session.quiet)
    restore_best(model, state)
    t0 = time.perf_counter()
    metrics = _evaluate(model, data, session.batch_size, session.staging)
    timings = {"decode_s": data.decode_s, "features_s": features_s, "evaluate_s": time.perf_counter() - t0}
    from .distribute import describe

    summary = write_run(session, model, data, metrics, timings, describe(strategy))
    _finish(session, data)
    return summary


def _prepare_recorded(session: Session, layout) -> Prepared:
    """Decode and split; a new run records its splits and labels, a resumed one checks the data did not change."""
    data = prepare(layout, session.opts, cache_dir=session.staging / CACHE_DIR, out_dir=session.staging,
                   quiet=session.quiet)
    if data.cache.skipped:
        first = data.cache.skipped[0]
        note(f"skipped {len(data.cache.skipped)} unreadable image(s), e.g. {first['path']}: {first['reason']} "
             "(all listed in edgeclf.json, dataset.skipped)", quiet=session.quiet)
    if session.resuming:
        recorded = load_splits(session.staging)
        if recorded.fingerprint != data.splits.fingerprint:
            raise UsageError(f"{layout.root}: the dataset changed since this run started (splits differ from "
                             f"{session.staging / 'splits.json'})", "restore the data, or start a new run with --force")
    else:
        data.splits.save(session.staging)
        atomic_write_text(session.staging / LABELS_FILE, "\n".join(layout.labels) + "\n")
    session.state.save()
    return data


def _phase1_data(model, data: Prepared, session: Session) -> PhaseData | None:
    """Cached features of every training view and of validation (computed once, reused on resume)."""
    from .features import Extractor, cached_features, view_names

    opts, state = session.opts, session.state
    if opts.epochs == 0 or state["stopped"]["1"] or state["done"]["1"] >= opts.epochs or state["phase"] > 1:
        return None
    key = f"{opts.alpha}-{opts.image_size}-{weights_label(opts.weights)}-{opts.seed}-{data.splits.fingerprint}"
    images = len(data.rows("train")) * opts.views + len(data.rows("validation"))
    extractor = Extractor(model, images=images, quiet=session.quiet)  # converted once, on first use, for both
    common = dict(cache_dir=session.staging / CACHE_DIR, key=key, seed=opts.seed, extractor=extractor,
                  batch_size=max(session.batch_size, EXTRACT_BATCH), quiet=session.quiet)
    train, train_reused = cached_features(model, data.cache.pixels, data.rows("train"), view_names(opts.views),
                                          desc="phase 1: train features", **common)
    val, val_reused = cached_features(model, data.cache.pixels, data.rows("validation"), ["image"],
                                      desc="phase 1: validation features", **common)
    cache = {"train": "reused" if train_reused else "extracted", "validation": "reused" if val_reused else "extracted"}
    if extractor.engine:  # a resumed run that reused every file keeps the engine that made them on record
        cache.update(engine=extractor.engine, max_difference_vs_keras=extractor.max_difference)
    state["feature_cache"] = {**(state.data.get("feature_cache") or {}), **cache}
    return feature_data(train, val, data.labels[data.rows("train")], data.labels[data.rows("validation")],
                        session.batch_size, opts.seed)


def phase2_data(data: Prepared, opts: TrainOptions, batch_size: int) -> PhaseData:
    """Augmented image batches of the train split and plain ones of validation (also the recipe study's phase 2)."""
    from .pipeline import batches

    rows = data.rows
    train = batches(data.cache.pixels, data.labels, rows("train"), batch_size, shuffle=True, augment=opts.augment,
                    seed=opts.seed)
    val = batches(data.cache.pixels, data.labels, rows("validation"), batch_size)
    return PhaseData(train=train, validation=val, steps=-(-len(rows("train")) // batch_size))


def _evaluate(model, data: Prepared, batch_size: int, out_dir: Path) -> dict:
    """Calibrate the restored best model on validation, then score it on the untouched test split (+ pictures,
    see :mod:`edgeclf.train.assess`)."""
    from .assess import assess
    from .pipeline import predict

    probs = {split: predict(model, data.cache.pixels, data.rows(split), batch_size=max(batch_size, 64))
             for split in ("validation", "test")}
    return assess(model, probs, {split: data.labels[data.rows(split)] for split in probs}, data.class_names,
                  test_images=data.cache.pixels[data.rows("test")],
                  test_paths=[e.path for e in data.splits.files("test")], out_dir=out_dir)


def _calibrate(model, data: Prepared, seed: int, state: TrainState) -> None:
    from .model import calibrate_batchnorm

    sample = np.sort(np.random.default_rng(seed).permutation(data.rows("train"))[:CALIBRATION_IMAGES])
    calibrate_batchnorm(model, data.cache.pixels[sample])
    state["batchnorm_calibration_images"] = int(len(sample))


def _model_for(session: Session, num_classes: int):
    """The phase 2 checkpoint when resuming phase 2, else a fresh model (a phase 1 resume reloads only its head)."""
    import keras

    from .model import build_model

    opts = session.opts
    if session.resuming and session.state.last(2).exists():
        return keras.models.load_model(session.state.last(2))
    with contextlib.redirect_stdout(sys.stderr):
        return build_model(num_classes, alpha=opts.alpha, image_size=opts.image_size, weights=opts.weights,
                           dropout=opts.dropout)


def _open_new(opts: TrainOptions | None, force: bool) -> Session:
    opts = opts or TrainOptions()
    out = check_new_run(opts, force)
    with contextlib.redirect_stdout(sys.stderr):  # Keras prints "Downloading data from ..." on stdout
        root = _data_root(opts)
    return Session(opts=opts, out=out, staging=partial_dir(out), state=TrainState(partial_dir(out)), root=root,
                   resuming=False, t_start=0.0)


def _open_resume(resume: Path, quiet: bool) -> Session:
    """The interrupted run's folders and state (checked first by :func:`preflight.check_resume`)."""
    check_resume(resume)
    out, staging = resume_dirs(resume)
    state = TrainState.load(staging)
    note(f"resuming {staging} (phase {state['phase']}, epoch {state['done'][str(state['phase'])]} done)", quiet=quiet)
    return Session(opts=TrainOptions.from_dict(state["options"]), out=out, staging=staging, state=state,
                   root=Path(state["data_root"]), resuming=True, t_start=0.0)


def _start_state(session: Session, force: bool) -> None:
    """A new run: (with --force) abandon an interrupted one, then record what --resume needs."""
    if session.resuming:
        return
    if session.staging.exists():  # --force: the interrupted run is abandoned
        shutil.rmtree(session.staging)
    check_writable_dir(session.staging)
    session.state["options"] = asdict(session.opts)
    session.state["data_root"] = str(session.root)


def _after_failure(session: Session, exc: BaseException, resuming: bool) -> None:
    if not session.state.has_checkpoint:  # nothing worth resuming: leave no .partial behind
        if not resuming:
            shutil.rmtree(session.staging, ignore_errors=True)
    elif isinstance(exc, KeyboardInterrupt):
        note(f"interrupted: continue with  edgeclf train --resume {session.out}", quiet=False)


def _finish(session: Session, data: Prepared) -> None:
    """Drop the scratch state and caches, then make the run visible in one rename."""
    shutil.rmtree(session.staging / CHECKPOINT_DIR, ignore_errors=True)
    data.cache = None
    shutil.rmtree(session.staging / CACHE_DIR, ignore_errors=True)
    replace_dir(session.staging, session.out)


def _data_root(opts: TrainOptions) -> Path:
    if opts.data in download.BUILTIN_DATASETS:
        return download.fetch_cats_vs_dogs(opts.data_url)
    return Path(opts.data).expanduser()
