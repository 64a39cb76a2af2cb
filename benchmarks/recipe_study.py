"""The study that chose ``edgeclf train``'s default recipe: recipe variant x dataset -> validation accuracy, wall time.

Defaults are chosen on VALIDATION accuracy only (test accuracy is reported once, for the chosen recipe, by the final
training records). Parts:

* ``head``: phase 1 variants (views, learning rate, label smoothing, dropout) on cached pooled features: features of
  every train view and of validation are extracted once per dataset (the expensive part) and each variant then trains
  the head in seconds with early stopping (best weights restored);
* ``finetune``: phase 2 variants (fine-tune learning rate, layers unfrozen, label smoothing, augmentation). Phase 1
  runs once per dataset with the default options (on the same cached features); every variant then starts from that
  head and fine-tunes through ``edgeclf.train``'s own ``run_phase2`` (early stopping on validation loss, the warm-up
  + cosine schedule, BatchNorm frozen), so a variant differs from the default in its one option only;
* ``report``: the Markdown tables beside the JSON.

Run (heavy; niced)::

    nice -n 5 python -m benchmarks.recipe_study head --work /tmp/study \\
        --result benchmarks/results/recipe-study-<machine>-<date>.json
    nice -n 5 python -m benchmarks.recipe_study finetune --dataset clothing-dataset-small --variant layers-60 ...
    python -m benchmarks.recipe_study report --work /tmp/study --result ...same file... --note "..."
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgeclf.train.options import TrainOptions  # TensorFlow-free

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
DATASETS = {"cats_and_dogs_filtered": SHARED / "data" / "cats_and_dogs_filtered",
            "clothing-dataset-small": SHARED / "data" / "clothing-dataset-small"}
WEIGHTS = SHARED / "weights" / "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224_no_top.h5"
# Views measured per dataset (zoom crops cost a forward pass each; on this 2-core machine they were measured on
# cats-vs-dogs only). Learning rate and dropout are explored at one view; views and label smoothing at the default
# learning rate and dropout.
STUDY_VIEWS = {"cats_and_dogs_filtered": 3, "clothing-dataset-small": 2}
BASE = {"lr": 1e-3, "label_smoothing": 0.0, "dropout": 0.2}


# Phase 2 variants: each changes one default of TrainOptions. "default" is the shipped recipe.
FINETUNE_VARIANTS = {"default": {}, "lr-3e-4": {"fine_tune_lr": 3e-4}, "lr-3e-5": {"fine_tune_lr": 3e-5},
                     "layers-60": {"fine_tune_at": 60}, "layers-130": {"fine_tune_at": 130},
                     "no-smoothing": {"label_smoothing": 0.0}, "no-augment": {"augment": False},
                     "patience-3": {"patience": 3}, "no-ema": {"ema_half_life": 0.0}, "ema-0.99": {"ema": 0.99}}


@dataclass
class StudyOptions(TrainOptions):
    """TrainOptions plus a fixed per-step weight-average momentum (``ema``), which the first averaging variant
    measured before the shipped option became a half-life in epochs."""

    ema: float = 0.0

    def ema_momentum(self, steps: int) -> float:
        return self.ema or super().ema_momentum(steps)


def head_grid(views: int) -> list[dict]:
    grid = [{"views": 1, **BASE, "lr": lr, "dropout": d} for lr in (1e-3, 3e-3) for d in (0.2, 0.5)]
    grid += [{"views": v, **BASE, "label_smoothing": ls} for v in range(1, views + 1) for ls in (0.0, 0.1)]
    unique = []
    for g in grid:
        if g not in unique:
            unique.append(g)
    return unique


def dataset_features(name: str, work: Path) -> dict:
    """Train features for STUDY_VIEWS views and validation features for one dataset (cached in ``work``)."""
    from edgeclf.train.data import prepare
    from edgeclf.train.dataset import discover
    from edgeclf.train.features import cached_features, view_names
    from edgeclf.train.model import build_model

    opts = TrainOptions(data=str(DATASETS[name]), weights=str(WEIGHTS))
    data = prepare(discover(DATASETS[name]), opts, cache_dir=work / name, out_dir=work / name, quiet=True)
    model = build_model(len(data.class_names), weights=str(WEIGHTS))
    t0 = time.perf_counter()
    common = dict(cache_dir=work / name, key=f"{name}-224", seed=opts.seed)
    train, _ = cached_features(model, data.cache.pixels, data.rows("train"), view_names(STUDY_VIEWS[name]),
                               **common)
    val, _ = cached_features(model, data.cache.pixels, data.rows("validation"), ["image"], **common)
    return {"model": model, "data": data, "train": train, "val": val, "extract_s": time.perf_counter() - t0}


def head_variants(result: Path, work: Path) -> None:
    from edgeclf.train.fit import fit_head_only

    rows = load(result)
    for name in DATASETS:
        todo = [v for v in head_grid(STUDY_VIEWS[name]) if not any(_same(r, name, v) for r in rows)]
        if not todo:
            continue
        d = dataset_features(name, work)
        data, n = d["data"], len(d["data"].rows("train"))
        y, yv = data.labels[data.rows("train")], data.labels[data.rows("validation")]
        print(f"{name}: features in {d['extract_s']:.0f} s", flush=True)
        for v in todo:
            t0 = time.perf_counter()
            out = fit_head_only(d["train"][: v["views"] * n], y, d["val"], yv, lr=v["lr"],
                                label_smoothing=v["label_smoothing"], dropout=v["dropout"],
                                class_weight=data.class_weight(), seed=42)
            rows.append({"dataset": name, "part": "head", **v, **out, "seconds": round(time.perf_counter() - t0, 2)})
            print(json.dumps(rows[-1]), flush=True)
            result.write_text(json.dumps({"rows": rows}, indent=1))


def finetune_variants(result: Path, work: Path, dataset: str, variants: list[str], seed: int = 42) -> None:
    """Phase 1 once per seed with the default options, then each phase 2 variant from that head (rows appended as
    they end). Another ``seed`` repeats the same recipes with other initialisation, dropout and augmentation draws
    (the splits and the cached features do not depend on it), which is what run-to-run noise is."""
    import keras

    from edgeclf.train.fit import TrainState, run_phase2
    from edgeclf.train.model import build_model
    from edgeclf.train.run import phase2_data

    rows = load(result)
    todo = [v for v in variants if not any(r["part"] == "finetune" and r["dataset"] == dataset
                                           and r["variant"] == v and r.get("seed", 42) == seed for r in rows)]
    if not todo:
        return
    d = dataset_features(dataset, work)
    tag = "" if seed == 42 else f"-seed{seed}"
    base = _phase1_once(d, work / dataset / f"phase1{tag}", seed)
    phase1_val = round(TrainState.load(base)["best"]["val_accuracy"], 5)
    data = d["data"]
    for name in todo:
        opts = StudyOptions(data=str(DATASETS[dataset]), weights=str(WEIGHTS), seed=seed, **FINETUNE_VARIANTS[name])
        run = work / dataset / f"phase2-{name}{tag}"
        shutil.rmtree(run, ignore_errors=True)
        shutil.copytree(base, run)
        state = TrainState.load(run)
        keras.utils.set_random_seed(opts.seed)
        model = build_model(len(data.class_names), weights=str(WEIGHTS), dropout=opts.dropout)
        t0 = time.perf_counter()
        run_phase2(model, state, phase2_data(data, opts, opts.batch_size), opts, class_weight=data.class_weight(),
                   quiet=True)
        best, phase2 = state["best"], [h for h in state["history"] if h.get("phase") == 2]
        rows.append({"dataset": dataset, "part": "finetune", "variant": name, "seed": seed, **FINETUNE_VARIANTS[name],
                     "phase1_val_accuracy": phase1_val,
                     "epochs": state["done"]["2"], "best_phase": best["phase"], "best_epoch": best["epoch"],
                     "val_loss": round(best["val_loss"], 5), "val_accuracy": round(best["val_accuracy"], 5),
                     "epoch_s": round(float(np.median([h["seconds"] for h in phase2])), 1) if phase2 else None,
                     "seconds": round(time.perf_counter() - t0, 1)})
        print(json.dumps(rows[-1]), flush=True)
        result.write_text(json.dumps({"rows": rows}, indent=1))


def _phase1_once(d: dict, run: Path, seed: int) -> Path:
    """The default phase 1 on the study's cached features (2 views), kept in ``run`` for every phase 2 variant."""
    import keras

    from edgeclf.train.fit import TrainState, feature_data, run_phase1

    done = TrainState.load(run)
    if done is not None and done["stopped"]["1"]:
        return run
    shutil.rmtree(run, ignore_errors=True)
    opts, data = TrainOptions(seed=seed), d["data"]
    n = len(data.rows("train"))
    keras.utils.set_random_seed(opts.seed)
    state = TrainState(run)
    state.dir.mkdir(parents=True)
    run_phase1(d["model"], state, feature_data(d["train"][: opts.views * n], d["val"],
                                               data.labels[data.rows("train")], data.labels[data.rows("validation")],
                                               opts.batch_size, opts.seed),
               opts, class_weight=data.class_weight(), quiet=True)
    state["stopped"]["1"] = True
    state.save()
    return run


def _same(row: dict, name: str, variant: dict) -> bool:
    return row["dataset"] == name and row["part"] == "head" and all(row[k] == v for k, v in variant.items())


def load(result: Path) -> list[dict]:
    return json.loads(result.read_text())["rows"] if result.exists() else []


def render(result: Path, notes: list[str]) -> Path:
    """The study as Markdown beside its JSON: one table per part it holds, recipe variant x dataset."""
    rows = load(result)
    lines = [f"# Recipe study: {result.stem}", "", *notes, *_head_table(rows), *_finetune_table(rows)]
    md = result.with_suffix(".md")
    md.write_text("\n".join(lines) + "\n")
    return md


def _head_table(rows: list[dict]) -> list[str]:
    rows = sorted((r for r in rows if r["part"] == "head"),
                  key=lambda r: (r["dataset"], r["views"], r["lr"], r["label_smoothing"], r["dropout"]))
    if not rows:
        return []
    lines = ["", "## Phase 1 on cached features (validation accuracy at the best epoch; chosen on validation only)", "",
             "| dataset | views | lr | label smoothing | dropout | epochs run | best epoch | val loss | val accuracy "
             "| wall time (s) |", "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['dataset']} | {r['views']} | {r['lr']:g} | {r['label_smoothing']:g} | {r['dropout']:g} "
                     f"| {r['epochs']} | {r['best_epoch']} | {r['val_loss']:.4f} | {r['val_accuracy']:.2%} "
                     f"| {r['seconds']:.0f} |")
    return lines


def _finetune_table(rows: list[dict]) -> list[str]:
    """Phase 2 variants, default first per dataset; best = the epoch with the lowest validation loss of either phase."""
    rows = [r for r in rows if r["part"] == "finetune"]
    if not rows:
        return []
    order = list(FINETUNE_VARIANTS)
    lines = ["", "## Phase 2 fine-tuning variants (from the same default phase 1 head; chosen on validation only)", "",
             "| dataset | variant | changes | seed | phase 1 val accuracy | epochs run | best (phase/epoch) | val loss "
             "| val accuracy | median epoch (s) | wall time (s) |", "|---|---|---|---:|---:|---:|---|---:|---:|---:|---:|"]
    for r in sorted(rows, key=lambda r: (r["dataset"], order.index(r["variant"]), r.get("seed", 42))):
        changes = ", ".join(f"{k}={v}" for k, v in FINETUNE_VARIANTS[r["variant"]].items()) or "-"
        lines.append(f"| {r['dataset']} | {r['variant']} | {changes} | {r.get('seed', 42)} "
                     f"| {r['phase1_val_accuracy']:.2%} | {r['epochs']} "
                     f"| {r['best_phase']}/{r['best_epoch']} | {r['val_loss']:.4f} | {r['val_accuracy']:.2%} "
                     f"| {r['epoch_s'] or 0:.0f} | {r['seconds']:.0f} |")
    return lines


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("part", choices=["head", "finetune", "report"])
    p.add_argument("--dataset", choices=sorted(DATASETS), help="finetune: the dataset")
    p.add_argument("--variant", action="append", choices=sorted(FINETUNE_VARIANTS), default=[],
                   help="finetune: a phase 2 variant (repeat; run in the order given)")
    p.add_argument("--seed", type=int, default=42, help="finetune: the training seed (42 is the default's)")
    p.add_argument("--note", action="append", default=[], help="a line for the report's preamble")
    p.add_argument("--work", type=Path, required=True)
    p.add_argument("--result", type=Path, required=True)
    args = p.parse_args(argv)
    args.work.mkdir(parents=True, exist_ok=True)
    if args.part == "head":
        head_variants(args.result, args.work)
    elif args.part == "finetune":
        finetune_variants(args.result, args.work, args.dataset, args.variant, args.seed)
    else:
        print(render(args.result, args.note))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
