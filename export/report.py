"""The export report: report.json (for scripts and the bench suite), report.md and the stderr table (for people),
and the gate decision.

A model fails the gate when its accuracy drop against the float Keras reference exceeds ``--max-drop`` points, or
when fewer than ``--min-agreement`` percent of the test images keep the float model's top-1. The failing file stays
on disk (someone may want to inspect it) and is marked ``"status": "failed"``.
"""

from __future__ import annotations

import time
from pathlib import Path

from edgeclf.console import format_table
from edgeclf.contracts import REPORT_FILE, REPORT_MD_FILE
from edgeclf.fsutil import atomic_write_json, atomic_write_text

from . import quality
REPORT_FORMAT = "edgeclf.export-report/1"


def gate_failures(row: dict, reference: dict, opts) -> list[str]:
    """Why ``row`` fails the gate (empty: it passes): accuracy drop over --max-drop, agreement under --min-agreement."""
    found = []
    if row["drop_points"] > opts.max_drop:
        found.append(f"accuracy {row['accuracy'] * 100:.2f} % is {row['drop_points']:.2f} points below float "
                     f"{reference['accuracy'] * 100:.2f} % (--max-drop {opts.max_drop:g})")
    if row["agreement"] * 100 < opts.min_agreement - 1e-9:
        found.append(f"top-1 agrees with float on {row['agreement'] * 100:.2f} % of the test images "
                     f"({len(row['top1_changes'])} changed; --min-agreement {opts.min_agreement:g})")
    return found


def build(*, opts, out: Path, run_dir: Path, size, trained_size, test, reference: dict, rows: list[dict],
          calibration, seconds: float, options: dict, debugger: dict | None = None) -> dict:
    float32 = next((r for r in rows if r["format"] == "float32"), None)
    failures = []
    for row in rows:
        if float32 is not None:
            row["size_ratio"] = round(row["size_bytes"] / float32["size_bytes"], 4)
            row["size_ratio_to"] = "float32"
        else:  # model.keras holds optimizer state too; the float32 weights are the fair denominator
            row["size_ratio"] = round(row["size_bytes"] / reference["float32_weight_bytes"], 4)
            row["size_ratio_to"] = "float32 weights"
        row["status"] = "failed" if row["gate_failures"] else "passed"
        failures += [f"{row['file']} ({_model_kind(row)}): {reason}" for reason in row["gate_failures"]]
    from edgeclf.runtime.machine import machine_info

    return {
        "format": REPORT_FORMAT,
        "status": "failed" if failures else "passed",
        "failures": failures,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "run_dir": str(run_dir.resolve()),
        "out": str(out.resolve()),
        "input_size": list(size),
        "trained_input_size": list(trained_size),
        "max_drop": opts.max_drop,
        "min_agreement": opts.min_agreement,
        "test_split": {"entries": test.total, "evaluated": len(test.paths), "missing": test.missing,
                       "changed": test.changed, "unreadable": test.unreadable, "allow_changed": opts.allow_changed},
        "calibration": None if calibration is None else {
            "split": "train", "requested": opts.calibration_samples, "used": len(calibration.paths),
            "mirrored": calibration.mirrored, "inputs": len(calibration.images),
            "paths": calibration.paths, "skipped": calibration.skipped},
        "quantization_debugger": debugger,
        "reference": reference,
        "models": rows,
        "seconds": round(seconds, 1),
        "options": options,
        "machine": machine_info(rows[0]["backend"] if rows else None),
    }


def _model_kind(row: dict) -> str:
    return f"int8, recipe {row['recipe']}" if row.get("recipe") else row["format"]


def gate_message(report: dict) -> str | None:
    """The one-line error for a failed gate, naming each failing format and its numbers; None when it passed."""
    if report["status"] != "failed":
        return None
    return "validation gate failed: " + "; ".join(report["failures"])


def table(report: dict) -> str:
    ref = report["reference"]
    rows = [["keras (float ref)", "-", _pct(ref["accuracy"]), _ci(ref["ci95"]), "-", "-", _mb(ref["size_bytes"]),
             "-", "-", "-"]]
    for r in report["models"]:
        name = r["file"] + (f" [{r['recipe']}]" if r.get("recipe") else "")
        rows.append([name, r["io"], _pct(r["accuracy"]), _ci(r["ci95"]), f"{r['drop_points']:+.2f}",
                     _pct(r["agreement"]), _mb(r["size_bytes"]), f"{r['size_ratio'] * 100:.1f} %",
                     f"{r['latency_p50_ms']:.2f}", r["status"]])
    ratio_to = report["models"][0]["size_ratio_to"] if report["models"] else "float32"
    return format_table(rows, ["model", "io", "accuracy", "95 % CI", "drop (pt)", "agreement", "size",
                               f"size vs {ratio_to}", "p50 ms", "gate"], align="llrrrrrrrl")


def markdown(report: dict) -> str:
    t = report["test_split"]
    w, h = report["input_size"]
    lines = [
        f"# edgeclf export report — {report['status'].upper()}",
        "",
        f"- run: `{report['run_dir']}`",
        f"- input: {w}x{h} RGB (trained at {report['trained_input_size'][0]}x{report['trained_input_size'][1]})",
        f"- test split: {t['evaluated']} of {t['entries']} images from splits.json "
        f"(missing {len(t['missing'])}, changed {len(t['changed'])}, unreadable {len(t['unreadable'])})",
        f"- gate: accuracy drop vs the float Keras model ≤ {report['max_drop']:.2f} points, top-1 agreement with "
        f"it ≥ {report['min_agreement']:.2f} %",
        f"- machine: {report['machine'].get('cpu_model')} ({report['machine'].get('arch')}, "
        f"{report['machine'].get('usable_cores')} usable cores), interpreter {report['machine'].get('interpreter')}",
        f"- created {report['created']} in {report['seconds']} s",
    ]
    cal = report["calibration"]
    if cal:
        lines.append(f"- int8 calibration: {cal['used']} images, stratified sample of the training split "
                     f"(requested {cal['requested']}, skipped {len(cal['skipped'])})"
                     + (f", each also mirrored: {cal['inputs']} inputs" if cal.get("mirrored") else ""))
    lines += ["", table(report), "", "Latency: p50 of single-image `Classifier.probabilities_from_input` calls over "
              "the test split on this machine (decoding excluded).", "", "## Per-class accuracy", ""]
    labels = list(report["reference"]["per_class"])
    rows = [["keras (float ref)"] + [_pct(report["reference"]["per_class"][k]["accuracy"]) for k in labels]]
    rows += [[r["file"]] + [_pct(r["per_class"][k]["accuracy"]) for k in labels] for r in report["models"]]
    counts = ", ".join(f"{k}: {report['reference']['per_class'][k]['count']}" for k in labels)
    lines += [format_table(rows, ["model"] + labels), "", f"Test images per class: {counts}."]
    lines += quality.markdown(report) + ["", "## Operators", ""]
    for r in report["models"]:
        lines.append(f"- `{r['file']}` ({r['input']['dtype']} in, {r['output']['dtype']} out): "
                     + ", ".join(r["ops"]))
    lines += _attempts_md(report) + _debugger_md(report["quantization_debugger"]) + _changes_md(report)
    if report["failures"]:
        lines += ["", "## Failures", ""] + [f"- {f}" for f in report["failures"]]
    return "\n".join(lines) + "\n"


def _attempts_md(report: dict) -> list[str]:
    """The int8 recipes tried, in order, with the numbers that decided."""
    lines = []
    for r in report["models"]:
        if not r.get("attempts"):
            continue
        rows = [[a["recipe"], _pct(a["accuracy"]), f"{a['drop_points']:+.2f}", _pct(a["agreement"]),
                 f"{a['latency_p50_ms']:.2f}", _mb(a["size_bytes"]),
                 "passed" if not a["gate_failures"] else "failed: " + "; ".join(a["gate_failures"])]
                for a in r["attempts"]]
        lines += ["", f"## int8 recipes tried for `{r['file']}`", "",
                  f"In the documented order (edgeclf.export.recipes), stopping at the first that passes; shipped: "
                  f"**{r['recipe']}**.", "",
                  format_table(rows, ["recipe", "accuracy", "drop (pt)", "agreement", "p50 ms", "size", "gate"],
                               align="lrrrrrl")]
    return lines


def _debugger_md(debug: dict | None) -> list[str]:
    if not debug:
        return []
    rows = [[i + 1, f"`{e['layer']}`", e["op"], e["position"], f"{e['rmse_over_scale']:.3f}", f"{e['rmse']:.4g}"]
            for i, e in enumerate(debug["worst"])]
    return ["", "## Where int8 loses precision (QuantizationDebugger)", "",
            f"Plain full-integer int8, {debug['layers']} quantized layers measured on {debug['images']} calibration "
            f"images: each op is re-run in float on the same input and compared. RMSE / scale is the error in "
            f"quantization steps; {debug['rounding_only']:.2f} is rounding alone. The worst layers (their full "
            f"tensor names, which `float-worst` keeps in float, are in report.json):", "",
            format_table(rows, ["#", "Keras layer", "op", "layer no.", "RMSE/scale", "RMSE"], align="rllrrr")]


CHANGES_LISTED = 20


def _changes_md(report: dict) -> list[str]:
    """Per model, the test images whose top-1 differs from float (the first CHANGES_LISTED)."""
    lines = ["", "## Top-1 changes vs the float model", ""]
    for r in report["models"]:
        changes = r.get("top1_changes") or []
        lines.append(f"- `{r['file']}`: {len(changes)} of {r['count']} test images"
                     + (":" if changes else ""))
        lines += [f"  - `{c['path']}`: float {c['reference']} ({c['reference_score']:.2f}) -> {c['predicted']} "
                  f"({c['score']:.2f})" for c in changes[:CHANGES_LISTED]]
        if len(changes) > CHANGES_LISTED:
            lines.append(f"  - ... and {len(changes) - CHANGES_LISTED} more (report.json)")
    return lines


def write(report: dict, folder: Path) -> None:
    for path in (atomic_write_json(folder / REPORT_FILE, report),
                 atomic_write_text(folder / REPORT_MD_FILE, markdown(report))):
        path.chmod(0o644)  # like the models beside it (the atomic temp file is created private)


def _pct(value) -> str:
    return "-" if value is None else f"{value * 100:.2f} %"


def _ci(ci) -> str:
    return f"{ci[0] * 100:.1f}–{ci[1] * 100:.1f}"


def _mb(size: int) -> str:
    return f"{size / 1e6:.2f} MB"
