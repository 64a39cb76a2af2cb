"""``edgeclf export``: run dir -> one self-describing .tflite per format, validated on the test split, gated.

Order matters for "nothing half-written": every input is checked (run dir, manifest, splits, model, test files,
output folder, clobbering) before any conversion; models and reports are written into a hidden staging folder inside
the output folder and renamed into place only when all of them exist. A gate failure still moves the files into
place (the failing model is kept, marked ``failed`` in the report) and is reported by the caller with exit code 1.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgeclf.console import note
from edgeclf.errors import UsageError
from edgeclf.fsutil import check_writable_dir, refuse_clobber, staging_dir
from edgeclf.manifest import MODEL_FILE, load_manifest, load_splits

from . import report as reports
from .calibration import DEFAULT_SAMPLES, Calibration, load_calibration
from .convert import (DEFAULT_FORMATS, DEFAULT_IO, FORMATS, Converter, input_size, load_keras_model, model_filename,
                      op_set, tensor_io, with_input)
from .metadata import build_contract, embed_metadata
from .validate import keras_probabilities, latency_p50_ms, load_test_set, score, tflite_probabilities

EXPORT_DIR = "export"
STAGING_PREFIX = ".export-staging-"
DEFAULT_MAX_DROP = 1.0


@dataclass
class ExportOptions:
    run_dir: str
    formats: tuple[str, ...] = DEFAULT_FORMATS
    io_type: str = DEFAULT_IO
    calibration_samples: int = DEFAULT_SAMPLES
    max_drop: float = DEFAULT_MAX_DROP
    out: str | None = None
    force: bool = False
    allow_changed: bool = False
    image_size: int | None = None
    seed: int = 0
    # Test hook, not a CLI option: calibrate on these (N, H, W, 3) uint8 images instead of the training split, to
    # produce a genuinely degraded int8 model for the gate's tests. Recorded in the report as "override".
    calibration_images: Any = field(default=None, repr=False)
    # Test hook: per-tensor int8 weights (a known way to wreck MobileNetV2's accuracy; see Converter.convert).
    per_channel: bool = True


def output_dir(opts: ExportOptions) -> Path:
    return Path(opts.out) if opts.out else Path(opts.run_dir) / EXPORT_DIR


def export_run(opts: ExportOptions, *, quiet: bool = False) -> dict:
    """Convert, embed metadata, validate, write report.json/report.md; return the report (``report["status"]`` is
    "passed" or "failed"). Raises EdgeclfError for bad input or a failed conversion, leaving nothing behind."""
    formats = _check_options(opts)
    run_dir = Path(opts.run_dir)
    if not run_dir.exists():
        raise UsageError(f"{run_dir}: no such directory", "pass the run directory written by edgeclf train")
    if not run_dir.is_dir():
        raise UsageError(f"{run_dir}: not a directory", "pass the run directory written by edgeclf train")
    manifest = load_manifest(run_dir)
    splits = load_splits(run_dir)
    labels = manifest.labels
    if list(splits.labels) != list(labels):
        raise UsageError(f"{run_dir}: splits.json and edgeclf.json disagree on the labels",
                         "they come from different runs; re-run edgeclf train")
    out = output_dir(opts)
    names = [model_filename(fmt, opts.io_type) for fmt in formats] + [reports.JSON_NAME, reports.MD_NAME]
    for name in names:
        refuse_clobber(out / name, opts.force, "export file")
    existed = out.exists()
    check_writable_dir(out, "--out")
    try:
        return _export(opts, formats, run_dir, manifest, splits, labels, out, names, quiet)
    except BaseException:
        if not existed:  # leave no empty folder behind when we created it
            with contextlib.suppress(OSError):
                out.rmdir()
        raise


def _check_options(opts: ExportOptions) -> tuple[str, ...]:
    formats = tuple(dict.fromkeys(opts.formats))  # unique, in the given order
    unknown = [f for f in formats if f not in FORMATS]
    if unknown or not formats:
        raise UsageError(f"unknown format(s) {unknown or '(none)'}", f"use one of: {', '.join(FORMATS)}")
    formats = tuple(f for f in FORMATS if f in formats)  # report in a fixed order: float32 first
    if opts.io_type != DEFAULT_IO and "int8" not in formats:
        raise UsageError(f"--io {opts.io_type} only applies to --int8", "add --int8 or drop --io")
    if opts.max_drop != opts.max_drop:  # NaN
        raise UsageError("--max-drop must be a number of accuracy points, e.g. 1.0")
    if opts.image_size is not None and not 32 <= opts.image_size <= 1024:
        raise UsageError(f"--image-size {opts.image_size} is out of range", "use 32..1024 (96..224 typical)")
    return formats


def _export(opts, formats, run_dir, manifest, splits, labels, out, names, quiet) -> dict:
    started = time.time()
    keras_path = run_dir / MODEL_FILE
    model = load_keras_model(keras_path)
    n_out = int(model.outputs[0].shape[-1])
    if n_out != len(labels):
        raise UsageError(f"{keras_path}: {n_out} outputs but edgeclf.json lists {len(labels)} labels",
                         "they come from different runs; re-run edgeclf train")
    trained_size = input_size(model)
    if opts.image_size and (opts.image_size, opts.image_size) != trained_size:
        model = with_input(model, image_size=opts.image_size)
    size = input_size(model)

    test = load_test_set(splits, labels, size, allow_changed=opts.allow_changed, quiet=quiet)
    reference_probs = keras_probabilities(model, test.images, quiet=quiet)
    reference = score(reference_probs, test.targets, labels)
    reference.update(model=MODEL_FILE, size_bytes=keras_path.stat().st_size,
                     float32_weight_bytes=4 * int(model.count_params()))

    calibration = None
    if "int8" in formats and opts.calibration_images is not None:
        calibration = Calibration(np.asarray(opts.calibration_images, dtype=np.uint8), ["<override>"])
    elif "int8" in formats:
        calibration = load_calibration(splits, size, opts.calibration_samples, seed=opts.seed, quiet=quiet)
        if calibration.skipped:
            note(f"note: skipped {len(calibration.skipped)} unreadable calibration image(s), e.g. "
                 f"{calibration.skipped[0]}", quiet=quiet)

    staging = staging_dir(out, STAGING_PREFIX)  # also removes what a killed export left behind
    converter = Converter(model)
    try:
        rows = []
        for fmt in formats:
            io_type = opts.io_type if fmt == "int8" else DEFAULT_IO
            note(f"converting {fmt}" + (f" (io {io_type})" if fmt == "int8" else "") + " ...", quiet=quiet)
            flat = converter.convert(fmt, io_type=io_type, calibration=calibration.images if calibration else None,
                                     per_channel=opts.per_channel)
            tensors = tensor_io(flat)
            contract = build_contract(
                labels=labels, width=size[0], height=size[1], input_dtype=tensors["input"]["dtype"],
                quantization=fmt, io_type=io_type, versions=_versions(),
                source={"run_dir": str(run_dir.resolve()), "dataset_fingerprint": splits.fingerprint,
                        "base_model": manifest.base_model, "trained_input": list(trained_size)})
            data = embed_metadata(
                flat, contract, name=f"edgeclf {manifest.base_model.get('name', 'classifier')} ({fmt})",
                description=(f"Image classifier ({len(labels)} classes: {', '.join(labels[:10])}"
                             f"{', ...' if len(labels) > 10 else ''}) exported by edgeclf as {fmt}; input "
                             f"{size[0]}x{size[1]} RGB {tensors['input']['dtype']}, output probabilities."))
            name = model_filename(fmt, io_type)
            path = staging / name
            path.write_bytes(data)
            probs, seconds, clf = tflite_probabilities(path, test.images, labels, quiet=quiet)
            row = score(probs, test.targets, labels, reference_probs)
            row.update(format=fmt, io=io_type, file=name, size_bytes=len(data),
                       drop_points=round((reference["accuracy"] - row["accuracy"]) * 100, 4),
                       latency_p50_ms=latency_p50_ms(seconds), backend=clf.backend,
                       input=tensors["input"], output=tensors["output"], ops=op_set(flat))
            rows.append(row)
        report = reports.build(opts=opts, out=out, run_dir=run_dir, size=size, trained_size=trained_size,
                               test=test, reference=reference, rows=rows, calibration=calibration,
                               seconds=time.time() - started,
                               options={k: v for k, v in asdict(opts).items() if k != "calibration_images"})
        reports.write(report, staging)
        for name in names:
            os.replace(staging / name, out / name)
    finally:
        converter.close()
        shutil.rmtree(staging, ignore_errors=True)
    return report


def _versions() -> dict:
    from importlib import metadata

    found = {}
    for dist in ("tensorflow", "keras"):
        try:
            found[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    return found
