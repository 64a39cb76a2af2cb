"""Two-phase fine-tuning with a checkpoint after every epoch, so an interrupted run resumes losing at most one epoch.

Phase 1 trains only the head on the frozen base; phase 2 unfreezes the base from ``fine_tune_at`` at a lower learning
rate (BatchNorm stays frozen, see :mod:`edgeclf.train.model`). Early stopping watches validation loss across both
phases and the weights of the best epoch are restored at the end of each phase.

Why not ``keras.callbacks.EarlyStopping``/``ModelCheckpoint``: their state (best loss, patience counter, best
weights) lives in memory and is reset at ``on_train_begin``, so it cannot survive a kill. :class:`RunState` keeps the
same bookkeeping in ``state.json`` beside the checkpoint, written after every epoch.
"""

from __future__ import annotations

import json
import math
import os
import time
import warnings
from pathlib import Path

import keras

from edgeclf.console import note, progress
from edgeclf.fsutil import atomic_path, atomic_write_json

from .model import set_trainable

from .preflight import CHECKPOINT_DIR, LAST_CHECKPOINT, STATE_FILE  # noqa: E402 (file names known without TF)
BEST_WEIGHTS = "best.weights.h5"


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

    @property
    def last_checkpoint(self) -> Path:
        return self.dir / LAST_CHECKPOINT

    @property
    def best_weights(self) -> Path:
        return self.dir / BEST_WEIGHTS

    def __getitem__(self, key):
        return self.data[key]

    def __setitem__(self, key, value):
        self.data[key] = value


class RunState(keras.callbacks.Callback):
    """After each epoch: record history, track the best validation loss (saving its weights), stop after
    ``patience`` epochs without improvement, save the last checkpoint, then state.json (in that order, so the state
    never points at a checkpoint that is not on disk)."""

    def __init__(self, state: TrainState, phase: int, patience: int, min_delta: float = 1e-4, quiet: bool = False):
        super().__init__()
        self.state, self.phase, self.patience, self.min_delta, self.quiet = state, phase, patience, min_delta, quiet
        self._t0 = 0.0

    def on_epoch_begin(self, epoch, logs=None):
        self._t0 = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        logs = {k: float(v) for k, v in (logs or {}).items()}
        seconds = time.perf_counter() - self._t0
        st, key = self.state, str(self.phase)
        record = {"phase": self.phase, "epoch": epoch + 1, **logs, "seconds": round(seconds, 2)}
        st["history"].append(record)
        st["seconds"][key] += seconds
        st["done"][key] = epoch + 1
        val_loss = logs.get("val_loss", math.inf)
        best = st["best"]
        if best is None or val_loss < best["val_loss"] - self.min_delta:
            st["best"] = {"val_loss": val_loss, "val_accuracy": logs.get("val_accuracy"), "phase": self.phase,
                          "epoch": epoch + 1}
            st["wait"] = 0
            save_weights_atomically(self.model, st.best_weights)
        else:
            st["wait"] += 1
        if self.patience and st["wait"] >= self.patience:
            st["stopped"][key] = True
            self.model.stop_training = True
        with atomic_path(st.last_checkpoint) as tmp:
            self.model.save(tmp)
        st["phase"] = self.phase
        st.save()
        note(f"phase {self.phase} epoch {epoch + 1}: " + "  ".join(
            f"{k} {logs[k]:.4f}" for k in ("loss", "accuracy", "val_loss", "val_accuracy") if k in logs)
            + f"  ({seconds:.0f} s)" + ("  [early stop]" if st["stopped"][key] else ""), quiet=self.quiet)


class EpochBar(keras.callbacks.Callback):
    """A tqdm bar per epoch on stderr (Keras's own progress bar writes to stdout, which --json keeps clean)."""

    def __init__(self, phase: int, epochs: int, steps: int, quiet: bool = False):
        super().__init__()
        self.phase, self.epochs, self.steps, self.quiet = phase, epochs, steps, quiet
        self.bar = None

    def on_epoch_begin(self, epoch, logs=None):
        self.bar = progress(total=self.steps, desc=f"phase {self.phase} epoch {epoch + 1}/{self.epochs}",
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


def compile_for(model: keras.Model, lr: float) -> None:
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=lr),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])


def run_phases(model: keras.Model, state: TrainState, *, train_ds, val_ds, steps: int, opts, class_weight=None,
               resumed: bool = False, quiet: bool = False, extra_callbacks=()) -> keras.Model:
    """Run phase 1 then phase 2 (skipping what ``state`` says is done), restoring the best weights after each."""
    phases = [(1, opts.epochs, opts.lr, None), (2, opts.fine_tune_epochs, opts.fine_tune_lr, opts.fine_tune_at)]
    for phase, epochs, lr, fine_tune_at in phases:
        key = str(phase)
        done = state["done"][key]
        if phase < state["phase"] or epochs == 0 or done >= epochs or state["stopped"][key]:
            continue
        continuing = resumed and state["phase"] == phase and done > 0
        if not continuing:  # a fresh phase: start from the best weights so far, set what trains, new optimizer
            restore_best(model, state)
            set_trainable(model, fine_tune_at=fine_tune_at)
            compile_for(model, lr)
            state["wait"] = 0
        state["phase"] = phase
        callbacks = [EpochBar(phase, epochs, steps, quiet), RunState(state, phase, opts.patience, quiet=quiet),
                     *extra_callbacks]
        model.fit(train_ds, validation_data=val_ds, epochs=epochs, initial_epoch=done, class_weight=class_weight,
                  callbacks=callbacks, shuffle=False, verbose=0)
    restore_best(model, state)
    return model


def restore_best(model: keras.Model, state: TrainState) -> None:
    """Load the best epoch's weights. The file also holds that epoch's optimizer slots, which Keras skips (with a
    warning we silence) when the optimizer has changed between phases; only the model weights matter here."""
    if state["best"] is None or not state.best_weights.exists():
        return
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Skipping variable loading for optimizer")
        model.load_weights(state.best_weights)
