"""`edgeclf train`: fine-tune MobileNetV2 on a folder of labelled photos and write a run directory."""

from __future__ import annotations

import click

from edgeclf.console import emit_json, format_table, note
from edgeclf.native import import_stage

from edgeclf.train.options import TrainOptions  # dataclass only: importing it needs no TensorFlow

from . import options

D = TrainOptions()

# The recipe's options, in --help order: TrainOptions field -> help. Type and default are the field's own, so each
# default is written once (train/options.py) and shows in --help; EXTRA adds what a bare type cannot say.
RECIPE = {
    "data": "Folder of class sub-folders (or train/ validation/ test/ folders of them), or cats_vs_dogs to download "
            "the TensorFlow tutorial dataset once into Keras's cache.",
    "alpha": "MobileNetV2 width multiplier (0.35, 0.5, 0.75, 1.0, 1.3, 1.4).",
    "weights": "Base weights: imagenet (Keras download cache), none (random), or a no-top .h5 weights file.",
    "epochs": "Phase 1 MAXIMUM epochs (head on cached features of the frozen base; early stopping usually ends it "
              "far sooner, and each epoch takes about a second).",
    "lr": "Phase 1 learning rate (Adam).",
    "views": "Phase 1 feature views per training image: 1 = the image, 2 = + its mirror, 3-6 = + zoom crops.",
    "head_patience": "Phase 1 early stopping: epochs without validation-loss improvement (0 = off).",
    "fine_tune_at": "Phase 2 unfreezes base layers from this index on (BatchNorm stays frozen).",
    "fine_tune_epochs": "Phase 2 MAXIMUM epochs (early stopping ends it when validation loss stops improving; 0 "
                        "skips fine-tuning). The learning-rate schedule (1-epoch warm-up, cosine decay) spans this "
                        "maximum.",
    "fine_tune_lr": "Phase 2 peak learning rate (Adam).",
    "ema_half_life": "Phase 2 weight averaging: half-life in epochs of the exponential moving average of the "
                     "weights that validation, early stopping, checkpoints and the final model use (0 = off).",
    "batch_size": "Images per batch (per GPU when several are visible: the global batch scales with them).",
    "dropout": "Dropout before the head.",
    "label_smoothing": "Label smoothing of the cross-entropy loss, both phases (0 = off).",
    "patience": "Phase 2 early stopping: epochs without validation-loss improvement (0 = off); the best weights of "
                "either phase are restored. 1 suits the weight average's smooth validation loss; use 2 or more "
                "with --ema-half-life 0.",
    "min_improvement": "Phase 2 early stopping: an epoch that lowers the best validation loss by less than this "
                       "fraction (0.0025 = 0.25 %) counts against --patience; the lowest loss is still the one kept.",
    "seed": "Seed for the splits, shuffling, augmentation and initialisation.",
    "val_fraction": "Validation share carved per class from a flat folder (or train/ when validation/ is missing).",
    "test_fraction": "Test share carved per class from a flat folder (or train/ alone).",
    "cache": "Where decoded images live: RAM, or a memory-mapped file in the run's staging folder (auto: disk above "
             "2 GiB).",
}
EXTRA = {"data": {"metavar": "DIR|cats_vs_dogs"}, "weights": {"metavar": "imagenet|none|PATH"},
         "cache": {"type": click.Choice(["auto", "memory", "disk"])}}


def recipe_options(command):
    """Add one click option per RECIPE entry (applied last-first, so --help lists them in RECIPE's order)."""
    for name in reversed(RECIPE):
        default = getattr(D, name)
        kwargs = {"type": type(default), **EXTRA.get(name, {})}
        command = click.option("--" + name.replace("_", "-"), default=default, show_default=True, help=RECIPE[name],
                               **kwargs)(command)
    return command


@click.command("train")
@click.option("--out", "-o", default=None, metavar="DIR", help="Run directory to create.  [default: runs/<data name>]")
@click.option("--force", is_flag=True, help="Replace an existing run directory (only once the new one is complete).")
@click.option("--resume", default=None, metavar="RUN_DIR",
              help="Continue an interrupted run (its --out); all other training options come from that run.")
@recipe_options
@options.image_size("Square input size in pixels", default=D.image_size, show_default=True)
@click.option("--data-url", default=None, metavar="URL",
              help="Mirror for --data cats_vs_dogs (also env EDGECLF_CATS_DOGS_URL).")
@click.option("--no-augment", is_flag=True, help="Turn off random flip/rotation/zoom of training images (phase 2).")
@click.option("--strict-data", is_flag=True,
              help="Refuse to train when duplicate images leak across train/validation/test or sit in two classes "
                   "(default: warn and list them in RUN_DIR/data_check.json).")
@options.as_json("Print a machine-readable summary on stdout.")
@options.quiet()
def command(data_url, out, force, resume, image_size, no_augment, strict_data, as_json, quiet, **recipe) -> None:
    """Fine-tune MobileNetV2 on labelled photos and write a run directory.

    Phase 1 trains a new head on cached features of the frozen ImageNet base (each training image goes through
    the base once per view, then many sub-second epochs); phase 2 fine-tunes the top of the base with augmentation,
    warm-up and cosine decay. Both phases stop early when validation loss stops improving (--epochs and
    --fine-tune-epochs are maximums) and the best weights are restored. Splits (train/validation/test) are decided
    once and recorded in splits.json; the final model is evaluated on the test split and everything lands in OUT/:
    model.keras, edgeclf.json, splits.json, labels.txt,
    history.json, learning_curves.png, confusion_matrix.png, data_check.json (duplicates, leakage, label
    conflicts, class balance: see `edgeclf data check`).

    \b
    Examples:
      edgeclf train --out runs/catsdogs                          # download cats_vs_dogs, default recipe
      edgeclf train --data photos/ --out runs/photos             # photos/<class>/*.jpg
      edgeclf train --data ../shared/data/cats_and_dogs_filtered \\
          --weights mobilenet_v2_..._1.0_224_no_top.h5 --out runs/offline   # no network
      edgeclf train --data photos/ --alpha 0.35 --image-size 96 --out runs/tiny
      edgeclf train --resume runs/photos                         # after Ctrl-C or a kill
    """
    from edgeclf.train import preflight

    opts = TrainOptions(**recipe, data_url=data_url, out=out, image_size=image_size, augment=not no_augment,
                        strict_data=strict_data)
    # Paths and options first: a mistake is one line in well under a second, before TensorFlow's seconds-long import.
    if resume is not None:
        preflight.check_resume(resume)
    else:
        preflight.check_new_run(opts, force)
    train = import_stage("edgeclf train", "edgeclf.train.run").train
    summary = train(opts, force=force, resume=resume, quiet=quiet or as_json)
    if as_json:
        emit_json(summary)
    elif not quiet:
        note(render_summary(summary))


def render_summary(s: dict) -> str:
    """The end-of-run table: splits, accuracy with its interval, F1, top-k, calibration, per-class scores (worst
    first when there are many classes), time and memory."""
    from edgeclf.runtime.metrics import WORST_FIRST_ABOVE, summary_order

    t, cal = s["test"], s["temperature_scaling"]
    lo, hi = t["ci95"]
    rows = [["run directory", s["run_dir"]],
            ["model", f"MobileNetV2 alpha {s['alpha']:g}, {s['image_size']} px, weights {s['weights']}"],
            ["images (train/val/test)", "/".join(str(s["counts"].get(k, 0)) for k in ("train", "validation", "test"))],
            ["skipped unreadable", len(s["skipped"])],
            ["epochs (phase 1 + 2)", f"{s['epochs_run']['phase1']} + {s['epochs_run']['phase2']}"],
            ["best epoch", f"phase {s['best_epoch']['phase']} epoch {s['best_epoch']['epoch']}" if s["best_epoch"]
             else "-"],
            ["validation accuracy", f"{s['validation']['accuracy']:.2%}"],
            ["test accuracy", f"{t['accuracy']:.2%} ({t['correct']}/{t['count']}, 95% CI {lo:.1%}-{hi:.1%})"],
            ["test macro / weighted F1", f"{t['macro_f1']:.3f} / {t['weighted_f1']:.3f}"]]
    rows += [[f"test top-{k}", f"{v:.2%}"] for k, v in t["top_k"].items()]
    rows += [["calibration (test ECE)", f"T = {cal['temperature']:.2f}: {cal['test_ece_before']:.3f} -> "
                                        f"{cal['test_ece_after']:.3f}"],
             ["per class" + (" (worst first)" if len(t["per_class"]) > WORST_FIRST_ABOVE else ""),
              "recall / precision / F1 (test images)"]]
    rows += [[f"  {label}", _class_cell(t["per_class"][label])] for label in summary_order(t["per_class"])]
    tm = s["timings"]
    rows += [["time (decode/phase 1/phase 2)", f"{tm['decode_s']:.0f} s / {tm['phase1_s']:.0f} s / "
                                               f"{tm['phase2_s']:.0f} s (total {tm['total_s']:.0f} s)"],
             ["peak memory", f"{s['peak_rss_mb']:.0f} MB"]]
    text = format_table(rows, ["edgeclf train", "result"], align="ll")
    for item in s["skipped"][:10]:
        text += f"\nskipped: {item['path']}: {item['reason']}"
    if len(s["skipped"]) > 10:
        text += f"\n... and {len(s['skipped']) - 10} more (see edgeclf.json)"
    return text


def _class_cell(c: dict) -> str:
    def pct(v):
        return "-" if v is None else f"{v:.1%}"

    return f"{pct(c['recall'])} / {pct(c['precision'])} / {'-' if c['f1'] is None else format(c['f1'], '.3f')} " \
           f"({c['count']})"
