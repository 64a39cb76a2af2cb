"""Where int8's changed answers come from, for benchmarks/results/int8-fidelity-*.{md,json}.

An agreement target such as 99.5 % (at most one changed answer in 200) is a statement about near-ties: a test image
whose two best classes the float model scores almost alike changes its answer under any small perturbation, int8 or
not. This study puts every quantized variant next to the float model's own margins. Per run directory, in one process:

1. The float model's margin on each test image (top-1 minus top-2 probability, float32 .tflite, which agrees with the
   Keras model), as a distribution: how many images a perturbation of a given size can flip at all.
2. float16, dynamic-range and every int8 recipe, plus the candidate recipes of :data:`CANDIDATES` (not in the chain;
   registered for this process only), for each calibration set of :data:`CALIBRATIONS` (sample size, with or without
   horizontally flipped copies): top-1 agreement with float32, each changed image's float margin, and the 95th
   percentile of the largest per-class probability shift.

Usage (heavy: one export per calibration set)::

    python -m benchmarks.int8_fidelity RUN_DIR [RUN_DIR ...] --work DIR --result benchmarks/results/NAME \
        [--calibrations 256,1024]

A second invocation with the same ``--result`` adds its run dirs to the file (a run dir studied again is replaced).
"""

from __future__ import annotations

import contextlib
import sys
import time
from pathlib import Path

import numpy as np

from edgeclf.runtime.classifier import Classifier

from edgeclf.export.recipes import RECIPES, Recipe

from benchmarks.consumers import test_images
from benchmarks.int8_recipes import models_of, study_parser, study_runs

# name -> (training images sampled, add horizontally flipped copies); None = the whole training split
CALIBRATIONS = {"256": (256, False), "1024": (1024, False), "256+flip": (256, True), "all": (None, False)}
MARGINS = (0.01, 0.02, 0.05, 0.1, 0.2)
# Recipes measured here before any joins the chain: every depthwise convolution in float (MobileNetV2's 17 depthwise
# layers hold about 3 % of its weights, and the debugger's worst layers are mostly depthwise).
# Then (2026-12-07) float-worst with 2x and 4x as many float layers: does more float buy the last changed answers?
CANDIDATES = (Recipe("float-depthwise", "float-head, plus every depthwise convolution in float", float_head=True,
                     float_ops=("DEPTHWISE_CONV_2D",)),
              *(Recipe(f"float-worst-{n}", f"float-head, plus the {n} worst layers in float", float_head=True,
                       float_worst=n) for n in (16, 32)))


@contextlib.contextmanager
def candidates_registered():
    """:data:`CANDIDATES` forceable through ``int8_recipe`` while the block runs, and gone after it."""
    RECIPES.update({r.name: r for r in CANDIDATES})
    try:
        yield
    finally:
        for r in CANDIDATES:
            RECIPES.pop(r.name, None)


def export_with(run_dir: Path, work: Path, formats: tuple[str, ...], calibration: np.ndarray | None,
                recipe: str | None = None) -> dict:
    """Every file of an export that tried (and kept) each int8 recipe, or only ``recipe``, calibrated on
    ``calibration``."""
    from edgeclf.export.run import ExportOptions, export_run

    report = export_run(ExportOptions(run_dir=str(run_dir), formats=formats, out=str(work), force=True,
                                      keep_attempts=True, min_agreement=101.0, calibration_images=calibration,
                                      int8_recipe=recipe), quiet=True)
    return models_of(report, work)


def calibration_set(run_dir: Path, size: tuple[int, int], count: int | None, flip: bool) -> np.ndarray:
    from edgeclf.export.calibration import load_calibration
    from edgeclf.manifest import load_splits

    splits = load_splits(run_dir)
    return load_calibration(splits, size, count or len(splits.files("train")), mirror=flip, quiet=True).images


def probabilities(path: Path, images: np.ndarray) -> np.ndarray:
    clf = Classifier(path)
    return np.stack([clf.probabilities_from_input(x) for x in images])


def margins(probs: np.ndarray) -> np.ndarray:
    top2 = np.sort(probs, axis=1)[:, -2:]
    return top2[:, 1] - top2[:, 0]


def compare(probs: np.ndarray, reference: np.ndarray, paths: list[str]) -> dict:
    """Agreement with ``reference``, every changed image with its reference margin, and the p95 probability shift."""
    changed = np.flatnonzero(probs.argmax(1) != reference.argmax(1))
    ref_margin = margins(reference)
    return {"agreement": round(1 - len(changed) / len(probs), 5), "changed": len(changed),
            "changes": [{"path": paths[i], "float_margin": round(float(ref_margin[i]), 4)} for i in changed],
            "max_changed_margin": round(float(ref_margin[changed].max()), 4) if len(changed) else None,
            "p95_shift": round(float(np.percentile(np.abs(probs - reference).max(1), 95)), 4)}


def study(run_dir: Path, work: Path, calibrations: dict = CALIBRATIONS) -> dict:
    from edgeclf.manifest import load_splits

    paths = [e.path for e in load_splits(run_dir).files("test")]
    t0 = time.perf_counter()
    floats = export_with(run_dir, work / "float", ("float32", "float16", "dynamic"), None)
    size = Classifier(floats["float32"]["path"]).input_size
    images = test_images(run_dir, size)
    reference = probabilities(floats["float32"]["path"], images)
    float_margin = margins(reference)
    rows = [{"model": name, "calibration": "-", **compare(probabilities(floats[name]["path"], images), reference,
                                                          paths)} for name in ("float16", "dynamic")]
    for cal, (count, flip) in calibrations.items():
        print(f"  calibration {cal} ...", file=sys.stderr, flush=True)
        calibration = calibration_set(run_dir, size, count, flip)
        models = export_with(run_dir, work / f"int8-{cal}", ("int8",), calibration)
        with candidates_registered():
            for r in CANDIDATES:
                models.update(export_with(run_dir, work / f"{r.name}-{cal}", ("int8",), calibration, r.name))
        rows += [{"model": name, "calibration": cal, **compare(probabilities(model["path"], images), reference, paths)}
                 for name, model in models.items()]
    return {"run_dir": str(run_dir), "test_images": len(images), "seconds": round(time.perf_counter() - t0),
            "float_margins": {f"below_{t:g}": int((float_margin < t).sum()) for t in MARGINS},
            "float_margin_quantiles": {q: round(float(np.quantile(float_margin, q)), 4) for q in (0.01, 0.05, 0.1)},
            "rows": rows}


def markdown(results: list[dict]) -> str:
    lines = ["# Where int8's changed answers come from", ""]
    for r in results:
        n, fm = r["test_images"], r["float_margins"]
        lines += [f"## `{r['run_dir']}` ({n} test images)", "",
                  "Float model margins (top-1 minus top-2 probability): "
                  + ", ".join(f"{v} below {k.split('_')[1]}" for k, v in fm.items()) + ".", "",
                  "| model | calibration | agreement with float32 | changed | float margins of the changed images "
                  "| p95 probability shift |", "|---|---|---:|---:|---|---:|"]
        for row in r["rows"]:
            changed = ", ".join(f"{c['float_margin']:.3f}" for c in row["changes"]) or "-"
            lines.append(f"| {row['model']} | {row['calibration']} | {row['agreement'] * 100:.2f} % "
                         f"| {row['changed']} | {changed} | {row['p95_shift']:.4f} |")
        lines.append("")
    return "\n".join(lines) + "\n"


def main(argv=None) -> None:
    parser = study_parser(__doc__)
    parser.add_argument("--calibrations", default=",".join(CALIBRATIONS),
                        help=f"comma-separated subset of {', '.join(CALIBRATIONS)} (the whole training split is slow)")
    args = parser.parse_args(argv)
    chosen = args.calibrations.split(",")
    if unknown := set(chosen) - set(CALIBRATIONS):
        parser.error(f"unknown calibration set(s): {', '.join(sorted(unknown))}")
    study_runs(args.runs, args.work, args.result,
               lambda run, work: study(run, work, {c: CALIBRATIONS[c] for c in chosen}), markdown)

if __name__ == "__main__":
    main()
