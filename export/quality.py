"""What export adds to the gate for people who deploy: calibration, what ``--threshold`` buys, and pictures.

* calibration: the temperature train folded into the model (edgeclf.json), the float model's test ECE with and
  without it, and each exported model's own ECE (in its row, from :func:`edgeclf.runtime.metrics.score`);
* per model: a confusion matrix, a gallery of its test mistakes (most confident first) and, for quantized formats, a
  gallery of the images whose top-1 differs from the float model (when there are any); one reliability diagram for
  all of them. Everything is linked from report.md.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgeclf import figures
from edgeclf.console import format_table
from edgeclf.runtime.metrics import (THRESHOLDS, WORST_FIRST_ABOVE, expected_calibration_error, reliability_bins,
                                     summary_order, with_temperature)

RELIABILITY = figures.RELIABILITY
PICTURES = ("confusion", "mistakes", "flips")


def picture_name(model_file: str, kind: str) -> str:
    return f"{Path(model_file).stem}-{kind}.png"


def picture_names(model_files: list[str]) -> list[str]:
    """Every PNG an export of these models may write (flips only appear when a quantized model changes a top-1)."""
    return [RELIABILITY] + [picture_name(f, kind) for f in model_files for kind in PICTURES]


def calibration_record(manifest, reference_probs: np.ndarray, targets: np.ndarray) -> dict | None:
    """T from training, and the float model's test ECE without T (undone here) and with it (as exported)."""
    recorded = (manifest.metrics or {}).get("temperature_scaling")
    if not recorded:
        return None
    t = recorded["temperature"]
    return {"temperature": t, "fitted_on": recorded.get("fitted_on", "validation"), "bins": recorded.get("bins"),
            "test_ece_before": expected_calibration_error(with_temperature(reference_probs, 1 / t), targets),
            "test_ece_after": expected_calibration_error(reference_probs, targets)}


def draw(report: dict, staging: Path, test, reference_probs: np.ndarray, probs: dict[str, np.ndarray],
         labels: list[str]) -> None:
    """Write every picture into ``staging`` and note its file name in the model's row (``row["pictures"]``)."""
    curves = {"keras (float ref)": (reliability_bins(reference_probs, test.targets), report["reference"].get("ece"))}
    for row in report["models"]:
        p = probs[row["file"]]
        curves[row["file"]] = (reliability_bins(p, test.targets), row.get("ece"))
        names = {"confusion": figures.plot_confusion(row["confusion"], labels,
                                                     staging / picture_name(row["file"], "confusion"),
                                                     title=f"{row['file']}, test split").name,
                 "mistakes": figures.plot_gallery(figures.mistake_tiles(p, test.targets, labels, test.images,
                                                                        test.paths),
                                                  staging / picture_name(row["file"], "mistakes"),
                                                  f"{row['file']}: test images it gets wrong, most confident first"
                                                  ).name}
        flips = figures.flip_tiles(reference_probs, p, test.targets, labels, test.images, test.paths)
        if flips and row["format"] != "float32":
            names["flips"] = figures.plot_gallery(flips, staging / picture_name(row["file"], "flips"),
                                                  f"{row['file']}: top-1 differs from the float model").name
        row["pictures"] = names
    figures.plot_reliability(curves, staging / RELIABILITY)
    report["pictures"] = {"reliability": RELIABILITY}


def markdown(report: dict) -> list[str]:
    """report.md sections: calibration, thresholds, beyond-accuracy metrics, worst classes, pictures."""
    lines = ["", "## Beyond accuracy", ""]
    rows = [["keras (float ref)", *_beyond(report["reference"])]] + [[r["file"], *_beyond(r)] for r in report["models"]]
    lines += [format_table(rows, ["model", "top-3", "top-5", "macro F1", "weighted F1", "ECE (15 bins)"])]
    cal = report.get("temperature_scaling")
    if cal:
        lines += ["", f"Calibration: temperature T = {cal['temperature']:.3f} fitted on the {cal['fitted_on']} split "
                      f"and folded into the final layer; float test ECE {cal['test_ece_before']:.4f} without it, "
                      f"{cal['test_ece_after']:.4f} with it."]
    lines += ["", "## What --threshold buys", "",
              "Coverage: share of test images whose top score reaches the threshold (the rest become \"unknown\"); "
              "accuracy: on those.", ""]
    header = ["model"] + [f"{kind} @ {t:g}" for t in THRESHOLDS for kind in ("coverage", "accuracy")]
    rows = [[r["file"]] + [_pct(r["thresholds"][f"{t:g}"][kind]) for t in THRESHOLDS
                           for kind in ("coverage", "accuracy")] for r in report["models"]]
    lines += [format_table(rows, header), ""]
    lines += class_lines(report["models"][-1] if report["models"] else report["reference"],
                         heading=f"## Per class ({report['models'][-1]['file'] if report['models'] else 'keras'})")
    lines += ["", "## Pictures", "", f"- reliability diagram: [{RELIABILITY}]({RELIABILITY})"]
    for r in report["models"]:
        links = ", ".join(f"[{kind}]({name})" for kind, name in r.get("pictures", {}).items())
        lines.append(f"- `{r['file']}`: {links}" + ("" if "flips" in r.get("pictures", {}) or r["format"] ==
                                                    "float32" else " (no top-1 changes against float)"))
    return lines


def class_lines(scored: dict, heading: str) -> list[str]:
    """Precision/recall/F1/support per class, the worst F1 first when there are many classes."""
    per_class = scored["per_class"]
    order = summary_order(per_class)
    rows = [[c, _pct(per_class[c].get("precision")), _pct(per_class[c].get("recall")),
             _pct(per_class[c].get("f1")), per_class[c]["count"]] for c in order]
    note = " (worst F1 first)" if len(per_class) > WORST_FIRST_ABOVE else ""
    return [heading + note, "", format_table(rows, ["class", "precision", "recall", "F1", "images"])]


def _beyond(scored: dict) -> list[str]:
    top = scored.get("top_k", {})
    return [_pct(top.get("3")), _pct(top.get("5")), _pct(scored.get("macro_f1")), _pct(scored.get("weighted_f1")),
            "-" if scored.get("ece") is None else f"{scored['ece']:.4f}"]


def _pct(value) -> str:
    return "-" if value is None else f"{value * 100:.1f} %"


def console_summary(report: dict) -> str:
    """After the gate table: calibration, what --threshold buys and the per-class scores of the last (deployable)
    model, worst classes first when there are many."""
    lines = []
    cal = report.get("temperature_scaling")
    if cal:
        lines.append(f"calibration: T = {cal['temperature']:.2f} folded in; float test ECE "
                     f"{cal['test_ece_before']:.3f} without it, {cal['test_ece_after']:.3f} with it")
    if report["models"]:
        last = report["models"][-1]
        lines.append(f"{last['file']} --threshold: " + "; ".join(
            f"{t} keeps {_pct(v['coverage'])} at {_pct(v['accuracy'])} accuracy" for t, v in last["thresholds"].items()))
        lines += class_lines(last, heading=f"{last['file']} per class")
    return "\n".join(lines)
