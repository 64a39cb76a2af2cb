"""Two-phase fine-tuning that fits the data it is given, with a checkpoint after every epoch (resume loses <= 1 epoch).

* Phase 1 trains only the head, on cached pooled features of the frozen base (:mod:`edgeclf.train.features`):
  epochs take a fraction of a second, so it runs until validation loss stops improving (``--epochs`` is a maximum).
* Phase 2 unfreezes the base from ``fine_tune_at`` (BatchNorm stays frozen, see :mod:`edgeclf.train.model`) with
  augmentation in the input pipeline, a one-epoch linear warm-up to ``fine_tune_lr`` and a cosine decay over the
  maximum budget; early stopping on validation loss ends it when the data has nothing more to give. With
  ``ema_half_life`` it validates, keeps and ships a moving average of the weights (:class:`AveragedWeights`), which
  starts at phase 1's weights, so the first fine-tuning steps cannot throw away a good head.

Both phases watch the same validation loss (phase 1's head on validation features computes exactly what the full
model computes on the validation images), so "best epoch" spans both, and the best weights are restored at the end.

Why not ``keras.callbacks.EarlyStopping``/``ModelCheckpoint``: their state (best loss, patience counter, best
weights) lives in memory and is reset at ``on_train_begin``, so it cannot survive a kill. :class:`RunState` keeps the
same bookkeeping in ``state.json`` beside the checkpoint, written after every epoch. A phase 1 checkpoint is only the
head's weights (kilobytes, so checkpointing never costs more than the sub-second epoch itself).
"""

from __future__ import annotations

import json
import math
import os
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np

from edgeclf.console import note, progress
from edgeclf.fsutil import atomic_path, atomic_write_json

from .features import head_of
from .model import set_trainable
from .pipeline import batches

from .preflight import CHECKPOINT_DIR, LAST_CHECKPOINT, STATE_FILE  # noqa: E402 (file names known without TF)
BEST_WEIGHTS = "best.weights.h5"
HEAD_LAST = "head-last.weights.h5"
HEAD_BEST = "head-best.weights.h5"
WARMUP_EPOCHS = 1  # phase 2: linear warm-up from fine_tune_lr / WARMUP_START to fine_tune_lr over this many epochs
WARMUP_START = 10.0
EVAL_BATCH = 256


class TrainState:
    """Everything needed to continue a run: options, per-phase progress, early-stopping bookkeeping, history."""

    def __init__(self, run_dir: Path, data: dict | None = None):
        self.dir = Path(run_dir) / CHECKPOINT_DIR
        self.data = data or {"phase": 1, "done": {"1": 0, "2": 0}, "stopped": {"1": False, "2": False},
                             "best": None, "wait": 0, "history": [], "seconds": {"1": 0.0, "2": 0.0}}

    @classmethod
    def load(cls, run_dir: Path) -> "TrainState | None":
        path = Path(run_dir) / CHECKPOINT_DIR / STATE_FILE
        if not path.exists():
            return None
        return cls(run_dir, json.loads(path.read_text()))

    def save(self) -> None:
        atomic_write_json(self.dir / STATE_FILE, self.data)

    def last(self, phase: int) -> Path:
        return self.dir / (HEAD_LAST if phase == 1 else LAST_CHECKPOINT)

    def best_file(self, phase: int) -> Path:
        return self.dir / (HEAD_BEST if phase == 1 else BEST_WEIGHTS)

    @property
    def last_checkpoint(self) -> Path:
        return self.last(2)

    @property
    def has_checkpoint(self) -> bool:
        return self.last(1).exists() or self.last(2).exists()

    def __getitem__(self, key):
        return self.data[key]

    def __setitem__(self, key, value):
        self.data[key] = value


@keras.saving.register_keras_serializable(package="edgeclf")
class SparseCrossentropy(keras.losses.Loss):
    """Sparse categorical cross-entropy with label smoothing (Keras 3's sparse loss has none)."""

    def __init__(self, label_smoothing: float = 0.0, name: str = "sparse_crossentropy", **kwargs):
        super().__init__(name=name, **kwargs)
        self.label_smoothing = float(label_smoothing)

    def call(self, y_true, y_pred):
        ops = keras.ops
        onehot = ops.one_hot(ops.cast(ops.reshape(y_true, (-1,)), "int32"), ops.shape(y_pred)[-1])
        return keras.losses.categorical_crossentropy(onehot, y_pred, label_smoothing=self.label_smoothing)

    def get_config(self):
        return {**super().get_config(), "label_smoothing": self.label_smoothing}


def compile_for(model: keras.Model, lr, label_smoothing: float = 0.0, ema: float = 0.0) -> None:
    """Adam at ``lr`` (a float or a schedule), keeping an exponential moving average of the weights when ``ema`` > 0;
    the loss knows about label smoothing."""
    optimizer = keras.optimizers.Adam(learning_rate=lr, use_ema=ema > 0, ema_momentum=ema or 0.99)
    model.compile(optimizer=optimizer, loss=SparseCrossentropy(label_smoothing), metrics=["accuracy"])


def fine_tune_schedule(lr: float, epochs: int, steps: int) -> keras.optimizers.schedules.LearningRateSchedule:
    """Linear warm-up over WARMUP_EPOCHS, then cosine decay to 0 at the end of the maximum budget. A function of the
    optimizer's step counter, which the checkpoint saves, so a resumed run continues the same curve."""
    warm = min(WARMUP_EPOCHS, max(epochs - 1, 0)) * steps
    return keras.optimizers.schedules.CosineDecay(lr / WARMUP_START, decay_steps=max(epochs * steps - warm, 1),
                                                  warmup_target=lr, warmup_steps=warm)


class RunState(keras.callbacks.Callback):
    """After each epoch: record history, track the best validation loss (saving its weights), stop after
    ``patience`` epochs without improvement, save the last checkpoint, then state.json (in that order, so the state
    never points at a checkpoint that is not on disk). ``save_last(path)`` writes the phase's checkpoint.

    The first ``grace`` epochs of the phase do not count against patience (Keras' ``start_from_epoch``): phase 2's
    warm-up epoch disturbs a good head before the fine-tuned layers have adapted (in both cats-vs-dogs runs that
    fine-tuned from layer 60 it was worse than phase 1), and counting it left fine-tuning one epoch at its peak rate."""

    def __init__(self, state: TrainState, phase: int, patience: int, save_last, *, min_delta: float = 1e-4,
                 min_improvement: float = 0.0, grace: int = 0, quiet: bool = False, bar=None):
        super().__init__()
        self.state, self.phase, self.patience, self.save_last = state, phase, patience, save_last
        self.min_delta, self.min_improvement = min_delta, min_improvement
        self.grace, self.quiet, self.bar = grace, quiet, bar
        self._t0 = 0.0

    def on_epoch_begin(self, epoch, logs=None):
        self._t0 = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        logs = {k: float(v) for k, v in (logs or {}).items() if k != "learning_rate"}
        seconds = time.perf_counter() - self._t0
        st, key = self.state, str(self.phase)
        st["history"].append({"phase": self.phase, "epoch": epoch + 1, **logs, "seconds": round(seconds, 3)})
        st["seconds"][key] += seconds
        st["done"][key] = epoch + 1
        self._track_best(epoch, logs)
        if self.patience and st["wait"] >= self.patience:
            st["stopped"][key] = True
            self.model.stop_training = True
        self.save_last(st.last(self.phase))
        st["phase"] = self.phase
        st.save()
        self._report(epoch, logs, seconds)

    def _track_best(self, epoch: int, logs: dict) -> None:
        """A lower loss (by ``min_delta``) is kept as the best; it resets the patience count only when it is also
        ``min_improvement`` (a fraction) below the previous best, so a run of crumbs stops while keeping the last."""
        st, val_loss = self.state, logs.get("val_loss", math.inf)
        best = st["best"]
        if best is None or val_loss < best["val_loss"] - self.min_delta:
            worthwhile = best is None or val_loss < best["val_loss"] * (1 - self.min_improvement)
            st["best"] = {"val_loss": val_loss, "val_accuracy": logs.get("val_accuracy"), "phase": self.phase,
                          "epoch": epoch + 1}
            save_weights_atomically(self.model, st.best_file(self.phase))
            if worthwhile:
                st["wait"] = 0
                return
        if epoch >= self.grace:
            st["wait"] += 1

    def _report(self, epoch: int, logs: dict, seconds: float) -> None:
        stopped = self.state["stopped"][str(self.phase)]
        if self.bar is not None:  # phase 1: one bar over epochs, no line per sub-second epoch
            self.bar.update(1)
            self.bar.set_postfix(val_loss=f"{logs.get('val_loss', math.nan):.4f}",
                                 val_acc=f"{logs.get('val_accuracy', math.nan):.4f}", refresh=False)
            return
        note(f"phase {self.phase} epoch {epoch + 1}: " + "  ".join(
            f"{k} {logs[k]:.4f}" for k in ("loss", "accuracy", "val_loss", "val_accuracy") if k in logs)
            + f"  ({seconds:.0f} s)" + ("  [early stop]" if stopped else ""), quiet=self.quiet)


class AveragedWeights(keras.callbacks.SwapEMAWeights):
    """Validation, the best weights and the checkpoint all see the weights' moving average (Polyak averaging): it
    sits in the model from the end of an epoch to the start of the next, and the raw weights train in between. Must
    come before :class:`RunState`. A checkpoint therefore holds the average in the model and the raw weights in the
    optimizer's slots, so a resumed phase (``in_model``) swaps them back before its first epoch."""

    def __init__(self, in_model: bool = False):
        super().__init__(swap_on_epoch=True)
        self._ema_weights_in_model = in_model


class EpochBar(keras.callbacks.Callback):
    """A tqdm bar per epoch on stderr (Keras's own progress bar writes to stdout, which --json keeps clean)."""

    def __init__(self, phase: int, epochs: int, steps: int, quiet: bool = False):
        super().__init__()
        self.phase, self.epochs, self.steps, self.quiet = phase, epochs, steps, quiet
        self.bar = None

    def on_epoch_begin(self, epoch, logs=None):
        self.bar = progress(total=self.steps, desc=f"phase {self.phase} epoch {epoch + 1}/{self.epochs} (max)",
                            quiet=self.quiet, unit="batch")

    def on_train_batch_end(self, batch, logs=None):
        if self.bar is not None:
            self.bar.update(1)
            if logs and "loss" in logs:
                self.bar.set_postfix(loss=f"{float(logs['loss']):.3f}", refresh=False)

    def on_epoch_end(self, epoch, logs=None):
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def save_weights_atomically(model: keras.Model, path: Path) -> None:
    """Keras insists the name ends in ``.weights.h5``, so the temp name keeps the suffix (``atomic_path`` does not)."""
    tmp = path.with_name(f".tmp-{path.name}")
    model.save_weights(tmp)
    os.replace(tmp, path)


def save_model_atomically(model: keras.Model, path: Path) -> None:
    with atomic_path(path) as tmp:
        model.save(tmp)


@dataclass
class PhaseData:
    """What a phase trains on. Phase 1: feature rows (view-major) and validation features; phase 2: image batches."""

    train: object
    validation: object
    steps: int


def feature_data(train_features, val_features, train_labels, val_labels, batch_size: int, seed: int) -> PhaseData:
    """tf.data over cached features; each training label repeats once per view (rows are view-major)."""
    views = len(train_features) // max(len(train_labels), 1)
    labels = np.tile(np.asarray(train_labels, np.int32), views)
    train = batches(train_features, labels, np.arange(len(labels)), batch_size, shuffle=True, seed=seed)
    val = batches(val_features, val_labels, np.arange(len(val_labels)), EVAL_BATCH)
    return PhaseData(train=train, validation=val, steps=-(-len(labels) // batch_size))


def run_phase1(model: keras.Model, state: TrainState, data: PhaseData, opts, *, class_weight=None,
               quiet: bool = False) -> None:
    """Train the head on cached features until validation loss stops improving (at most ``opts.epochs``)."""
    done = state["done"]["1"]
    if opts.epochs == 0 or done >= opts.epochs or state["stopped"]["1"] or state["phase"] > 1:
        return
    head = head_of(model)
    set_trainable(model, fine_tune_at=None)
    compile_for(head, opts.lr, opts.label_smoothing)
    if done and state.last(1).exists():  # resuming: the head's weights as of the last finished epoch
        head.load_weights(state.last(1))
    state["phase"] = 1
    with progress(total=opts.epochs, desc="phase 1: head on cached features (max epochs)", quiet=quiet,
                  unit="epoch") as bar:
        bar.update(done)
        tracker = RunState(state, 1, opts.head_patience, lambda path: save_weights_atomically(head, path),
                           quiet=quiet, bar=bar)
        head.fit(data.train, validation_data=data.validation, epochs=opts.epochs, initial_epoch=done,
                 class_weight=class_weight, callbacks=[tracker], shuffle=False, verbose=0)
    s = state["best"] or {}
    note(f"phase 1: {state['done']['1']} epochs in {state['seconds']['1']:.0f} s, best val_loss "
         f"{s.get('val_loss', math.nan):.4f} (val accuracy {s.get('val_accuracy') or math.nan:.4f})", quiet=quiet)


def run_phase2(model: keras.Model, state: TrainState, data: PhaseData, opts, *, class_weight=None,
               resumed: bool = False, quiet: bool = False) -> None:
    """Fine-tune from ``opts.fine_tune_at`` until validation loss stops improving (at most ``fine_tune_epochs``)."""
    epochs, done = opts.fine_tune_epochs, state["done"]["2"]
    if epochs == 0 or done >= epochs or state["stopped"]["2"]:
        return
    if not (resumed and state["phase"] == 2 and done > 0):  # a fresh phase: best weights so far, new optimizer
        restore_best(model, state)
        _keep_best_whole(model, state)
        set_trainable(model, fine_tune_at=opts.fine_tune_at)
        compile_for(model, fine_tune_schedule(opts.fine_tune_lr, epochs, data.steps), opts.label_smoothing,
                    opts.ema_momentum(data.steps))
        state["wait"] = 0
    state["phase"] = 2
    averaging = [AveragedWeights(in_model=done > 0)] if getattr(model.optimizer, "use_ema", False) else []
    callbacks = [EpochBar(2, epochs, data.steps, quiet), *averaging,
                 RunState(state, 2, opts.patience, lambda path: save_model_atomically(model, path),
                          min_improvement=opts.min_improvement, grace=WARMUP_EPOCHS, quiet=quiet)]
    model.fit(data.train, validation_data=data.validation, epochs=epochs, initial_epoch=done,
              class_weight=class_weight, callbacks=callbacks, shuffle=False, verbose=0)


def _keep_best_whole(model: keras.Model, state: TrainState) -> None:
    """Phase 2 changes the base, so a phase 1 best (a file of head weights only) is saved whole before it starts."""
    best = state["best"]
    if best is not None and best["phase"] == 1 and not best.get("whole"):
        save_weights_atomically(model, state.best_file(2))
        best["whole"] = True
        state.save()


def restore_best(model: keras.Model, state: TrainState) -> None:
    """Load the best epoch's weights (the head's alone while the base is still untouched). The file also holds that
    epoch's optimizer slots, which Keras skips (with a warning we silence) when the optimizer has changed."""
    best = state["best"]
    whole = best is not None and (best["phase"] == 2 or best.get("whole", False))
    path = state.best_file(2 if whole else 1)
    if best is None or not path.exists():
        return
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Skipping variable loading for optimizer")
        (model if whole else head_of(model)).load_weights(path)


def fit_head_only(train_features, train_labels, val_features, val_labels, *, lr: float,
                  label_smoothing: float, dropout: float, class_weight=None, seed: int = 0, batch_size: int = 32,
                  epochs: int = 200, patience: int = 5) -> dict:
    """A stand-alone phase 1 (for the recipe study): a fresh dropout + softmax head on the given features, early
    stopping on validation loss with the best weights restored. Returns the best epoch's validation numbers."""
    keras.utils.set_random_seed(seed)
    classes = int(max(np.max(train_labels), np.max(val_labels))) + 1
    head = keras.Sequential([keras.Input(shape=(train_features.shape[-1],)), keras.layers.Dropout(dropout),
                             keras.layers.Dense(classes, activation="softmax")])
    compile_for(head, lr, label_smoothing)
    data = feature_data(train_features, val_features, train_labels, val_labels, batch_size, seed)
    stop = keras.callbacks.EarlyStopping(patience=patience, restore_best_weights=True, min_delta=1e-4)
    hist = head.fit(data.train, validation_data=data.validation, epochs=epochs, class_weight=class_weight,
                    callbacks=[stop], shuffle=False, verbose=0).history
    best = int(np.argmin(hist["val_loss"]))
    return {"epochs": len(hist["val_loss"]), "best_epoch": best + 1, "val_loss": round(hist["val_loss"][best], 5),
            "val_accuracy": round(hist["val_accuracy"][best], 5)}
