"""Everything ``edgeclf train`` can check before TensorFlow is imported, checked first.

Importing TensorFlow takes seconds and prints its own start-up noise, so a wrong path or option must be refused
before that (in well under a second, on one line): the numeric options, ``--weights`` file, the dataset folder with
its class folders, the output folder and, for ``--resume``, the run's saved state and checkpoint. ``train()`` runs the
same checks itself, so library callers get them too.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

from edgeclf.contracts import check_image_size
from edgeclf.errors import UsageError
from edgeclf.fsutil import refuse_clobber

from . import download
from .dataset import discover
from .options import ALPHA_RANGE, ALPHAS, TrainOptions

PARTIAL_SUFFIX = ".partial"
CHECKPOINT_DIR = ".checkpoint"
STATE_FILE = "state.json"
LAST_CHECKPOINT = "last.keras"
HEAD_LAST = "head-last.weights.h5"  # phase 1's checkpoint (see edgeclf.train.fit)


def default_out(data: str) -> Path:
    return Path("runs") / (data if data in download.BUILTIN_DATASETS else Path(data).expanduser().resolve().name)


def partial_dir(out: Path) -> Path:
    return out.with_name(out.name + PARTIAL_SUFFIX)


def check_new_run(opts: TrainOptions, force: bool) -> Path:
    """Validate a new run's options, data and output folder; return the output folder (``opts.out`` is set)."""
    check_options(opts)
    out = Path(opts.out).expanduser() if opts.out else default_out(opts.data)
    opts.out = str(out)
    refuse_clobber(out, force, "run directory")
    staging = partial_dir(out)
    if staging.exists() and not force:
        raise UsageError(f"{staging} holds an interrupted run",
                         f"continue it with --resume {out}, or pass --force to start over")
    if opts.data not in download.BUILTIN_DATASETS:
        discover(opts.data)
    return out


def check_options(opts: TrainOptions) -> None:
    for name in ("epochs", "fine_tune_epochs", "head_patience", "patience"):
        if getattr(opts, name) < 0:
            raise UsageError(f"--{name.replace('_', '-')} must be 0 or more")
    if not 0 <= opts.label_smoothing < 1:
        raise UsageError(f"--label-smoothing {opts.label_smoothing} must be in [0, 1)")
    if not 1 <= opts.views <= 6:
        raise UsageError(f"--views {opts.views} must be 1..6", "1 = the image, 2 = + its mirror, 3-6 = + zoom crops")
    if opts.epochs + opts.fine_tune_epochs == 0:
        raise UsageError("--epochs and --fine-tune-epochs are both 0: nothing to train", "set --epochs 1 or more")
    if opts.batch_size < 1:
        raise UsageError("--batch-size must be at least 1")
    if not 0 <= opts.dropout < 1:
        raise UsageError(f"--dropout {opts.dropout} must be in [0, 1)")
    for name in ("lr", "fine_tune_lr"):
        if getattr(opts, name) <= 0:
            raise UsageError(f"--{name.replace('_', '-')} must be positive")
    low, high = ALPHA_RANGE
    if not low <= opts.alpha <= high:
        raise UsageError(f"--alpha {opts.alpha:g} is out of range",
                         f"use {low:g}..{high:g} ({', '.join(f'{a:g}' for a in ALPHAS)} with --weights imagenet)")
    check_image_size(opts.image_size)
    weights = str(opts.weights)
    if weights.lower() not in ("imagenet", "none") and not Path(weights).expanduser().is_file():
        raise UsageError(f"--weights {weights}: file not found", "pass imagenet, none, or a path to a weights .h5 file")


def resume_dirs(resume: str | Path) -> tuple[Path, Path]:
    """(out, staging) for ``--resume`` given either the run's --out or its .partial folder."""
    resume = Path(resume).expanduser()
    if resume.name.endswith(PARTIAL_SUFFIX):
        return resume.with_name(resume.name[: -len(PARTIAL_SUFFIX)]), resume
    return resume, partial_dir(resume)


def check_resume(resume: str | Path) -> None:
    """Refuse to resume from a damaged or missing state/checkpoint with a line naming the file and the fix."""
    out, staging = resume_dirs(resume)
    state_file, last = staging / CHECKPOINT_DIR / STATE_FILE, staging / CHECKPOINT_DIR / LAST_CHECKPOINT
    fix = f"start over with: edgeclf train --force --out {out} (and the run's options)"
    if not state_file.exists():
        _nothing_to_resume(resume, out, staging)
    try:
        state = json.loads(state_file.read_text(encoding="utf-8"))
        done = sum(int(n) for n in state["done"].values())
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError, AttributeError):
        raise UsageError(f"--resume {resume}: {state_file} is damaged (truncated or not an edgeclf training state)",
                         fix) from None
    if "options" not in state:
        _nothing_to_resume(resume, out, staging)
    if not last.exists() and not int(state["done"].get("2", 0)):  # in phase 1 the checkpoint is the head's weights
        last = staging / CHECKPOINT_DIR / HEAD_LAST
    if last.suffix == ".h5":
        if not last.exists() and done:
            raise UsageError(f"--resume {resume}: the checkpoint {last} is missing although {state_file.name} "
                             f"records {done} finished epoch(s)", fix)
    elif last.exists():
        try:
            with zipfile.ZipFile(last) as archive:
                broken = archive.testzip()
        except (OSError, zipfile.BadZipFile, EOFError, ValueError):
            broken = "?"
        if broken is not None:
            raise UsageError(f"--resume {resume}: the checkpoint {last} is damaged (truncated or not a .keras file)",
                             fix)
    elif done:
        raise UsageError(f"--resume {resume}: the checkpoint {last} is missing although {state_file.name} records "
                         f"{done} finished epoch(s), so resuming would silently start from an earlier point", fix)


def _nothing_to_resume(resume, out: Path, staging: Path) -> None:
    if staging.is_dir():
        raise UsageError(f"--resume {resume}: {staging} was interrupted before training started; nothing to resume",
                         f"start again with --force --out {out}")
    if (out / "edgeclf.json").exists():
        raise UsageError(f"--resume {resume}: that run already finished", "start a new run with another --out")
    raise UsageError(f"--resume {resume}: no interrupted run found (looked for {staging / CHECKPOINT_DIR})",
                     "pass the --out of the interrupted run")
