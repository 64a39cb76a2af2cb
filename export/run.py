"""``edgeclf export``: run dir -> one self-describing .tflite per format, validated on the test split, gated.

Order matters for "nothing half-written": every input is checked (run dir, manifest, splits, model, test files,
output folder, clobbering) before any conversion, and what was decided is one :class:`ExportPlan`; models and
reports are written into a hidden staging folder inside the output folder and renamed into place only when all of
them exist. A gate failure still moves the files into place (the failing model is kept, marked ``failed`` in the
report) and is reported by the caller with exit code 1.

int8 is accuracy-aware (see :mod:`.recipes`): recipes are tried in order until one passes the gate, and every
attempt is recorded in the report.
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
from edgeclf.contracts import (DEFAULT_CALIBRATION_MIRROR, DEFAULT_CALIBRATION_SAMPLES, DEFAULT_FORMATS,
                               DEFAULT_INT8_TARGET, DEFAULT_IO, DEFAULT_MAX_DROP, DEFAULT_MIN_AGREEMENT, FORMATS,
                               MODEL_FILE, REPORT_FILE, REPORT_MD_FILE, check_image_size, model_filename)
from edgeclf.errors import UsageError
from edgeclf.fsutil import check_writable_dir, publish_staged, refuse_clobber, staging_dir
from edgeclf.manifest import Manifest, Splits, load_manifest, load_splits
from edgeclf.runtime.machine import package_versions

from . import quality
from . import report as reports
from .calibration import Calibration, load_calibration
from .convert import CALIBRATED_FORMATS, Converter, input_size, load_keras_model, op_set, tensor_io, with_input
from .int8 import Int8Builder, first_passing
from .metadata import build_contract, embed_metadata
from .recipes import Recipe, attempt_order
from .validate import (TestSet, keras_probabilities, latency_p50_ms, load_test_set, score, tflite_probabilities,
                       top1_changes)

EXPORT_DIR = "export"
STAGING_PREFIX = ".export-staging-"


@dataclass
class ExportOptions:
    run_dir: str
    formats: tuple[str, ...] = DEFAULT_FORMATS
    io_type: str = DEFAULT_IO
    calibration_samples: int = DEFAULT_CALIBRATION_SAMPLES
    calibration_mirror: bool = DEFAULT_CALIBRATION_MIRROR
    max_drop: float = DEFAULT_MAX_DROP
    min_agreement: float = DEFAULT_MIN_AGREEMENT
    int8_target: float = DEFAULT_INT8_TARGET
    int8_recipe: str | None = None  # force one recipe instead of the fallback chain
    keep_attempts: bool = False  # also keep every int8 attempt as model_int8.<recipe>.tflite (to compare recipes)
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


@dataclass
class ExportPlan:
    """What ``export_run`` checked and decided before converting anything."""

    opts: ExportOptions
    formats: tuple[str, ...]
    run_dir: Path
    manifest: Manifest
    splits: Splits
    out: Path
    names: list[str]  # every file it may write, refused up front if present (without --force)
    recipes: list[Recipe]  # the int8 attempts, in order (empty without int8)

    @property
    def labels(self) -> list[str]:
        return list(self.manifest.labels)


@dataclass
class _Work:
    """The loaded inputs every format's conversion and validation share."""

    plan: ExportPlan
    converter: Converter
    test: TestSet
    reference_probs: np.ndarray
    reference: dict
    calibration: Calibration | None
    staging: Path
    size: tuple[int, int]
    trained_size: tuple[int, int]
    quiet: bool
    probs: dict[str, np.ndarray] = field(default_factory=dict)  # file name -> its test-split probabilities


def output_dir(opts: ExportOptions) -> Path:
    return Path(opts.out) if opts.out else Path(opts.run_dir) / EXPORT_DIR


def export_run(opts: ExportOptions, *, quiet: bool = False) -> dict:
    """Convert, embed metadata, validate, write report.json/report.md; return the report (``report["status"]`` is
    "passed" or "failed"). Raises EdgeclfError for bad input or a failed conversion, leaving nothing behind."""
    plan = plan_export(opts)
    existed = plan.out.exists()
    check_writable_dir(plan.out, "--out")
    try:
        return _export(plan, quiet)
    except BaseException:
        if not existed:  # leave no empty folder behind when we created it
            with contextlib.suppress(OSError):
                plan.out.rmdir()
        raise


def plan_export(opts: ExportOptions) -> ExportPlan:
    """Check the options and the run directory, and name every output; raises UsageError before any work."""
    formats = _check_options(opts)
    run_dir = Path(opts.run_dir)
    if not run_dir.exists():
        raise UsageError(f"{run_dir}: no such directory", "pass the run directory written by edgeclf train")
    if not run_dir.is_dir():
        raise UsageError(f"{run_dir}: not a directory", "pass the run directory written by edgeclf train")
    manifest, splits = load_manifest(run_dir), load_splits(run_dir)
    if list(splits.labels) != list(manifest.labels):
        raise UsageError(f"{run_dir}: splits.json and edgeclf.json disagree on the labels",
                         "they come from different runs; re-run edgeclf train")
    out = output_dir(opts)
    names = [model_filename(fmt, _io_for(fmt, opts.io_type)) for fmt in formats] + [REPORT_FILE, REPORT_MD_FILE]
    recipes = attempt_order(opts.int8_recipe, opts.io_type) if "int8" in formats else []
    if opts.keep_attempts:
        names += [attempt_filename(model_filename("int8", opts.io_type), r.name) for r in recipes]
    names += quality.picture_names([model_filename(fmt, _io_for(fmt, opts.io_type)) for fmt in formats])
    for name in names:
        refuse_clobber(out / name, opts.force, "export file")
    return ExportPlan(opts, formats, run_dir, manifest, splits, out, names, recipes)


def _check_options(opts: ExportOptions) -> tuple[str, ...]:
    formats = tuple(dict.fromkeys(opts.formats))  # unique, in the given order
    unknown = [f for f in formats if f not in FORMATS]
    if unknown or not formats:
        raise UsageError(f"unknown format(s) {unknown or '(none)'}", f"use one of: {', '.join(FORMATS)}")
    formats = tuple(f for f in FORMATS if f in formats)  # report in a fixed order: float32 first
    if opts.io_type != DEFAULT_IO and "int8" not in formats:
        raise UsageError(f"--io {opts.io_type} only applies to --int8", "add --int8 or drop --io")
    if opts.int8_recipe is not None and "int8" not in formats:
        raise UsageError("--int8-recipe only applies to --int8", "add --int8 or drop --int8-recipe")
    for name, value in (("--max-drop", opts.max_drop), ("--min-agreement", opts.min_agreement),
                        ("--int8-target", opts.int8_target)):
        if value != value:  # NaN
            raise UsageError(f"{name} must be a number, e.g. {DEFAULT_MAX_DROP if 'drop' in name else DEFAULT_MIN_AGREEMENT}")
    if opts.image_size is not None:
        check_image_size(opts.image_size)
    return formats


def _io_for(fmt: str, io_type: str) -> str:
    """--io is the int8 model's; int16x8 takes float32 (16x8 kernels have no uint8 input), the rest uint8."""
    return {"int8": io_type, "int16x8": "float32"}.get(fmt, DEFAULT_IO)


def _export(plan: ExportPlan, quiet: bool) -> dict:
    started = time.time()
    model, trained_size = _load_model(plan)
    size = input_size(model)
    test = load_test_set(plan.splits, plan.labels, size, allow_changed=plan.opts.allow_changed, quiet=quiet)
    reference_probs = keras_probabilities(model, test.images, quiet=quiet)
    reference = score(reference_probs, test.targets, plan.labels)
    reference.update(model=MODEL_FILE, size_bytes=(plan.run_dir / MODEL_FILE).stat().st_size,
                     float32_weight_bytes=4 * int(model.count_params()))
    calibration = _calibration(plan, size, quiet)
    staging = staging_dir(plan.out, STAGING_PREFIX)  # also removes what a killed export left behind
    try:
        with Converter(model) as converter:
            work = _Work(plan, converter, test, reference_probs, reference, calibration, staging, size,
                         trained_size, quiet)
            rows, debug = _convert_all(work)
        report = reports.build(opts=plan.opts, out=plan.out, run_dir=plan.run_dir, size=size,
                               trained_size=trained_size, test=test, reference=reference, rows=rows,
                               calibration=calibration, seconds=time.time() - started, debugger=debug,
                               options={k: v for k, v in asdict(plan.opts).items() if k != "calibration_images"})
        report["temperature_scaling"] = quality.calibration_record(plan.manifest, reference_probs, test.targets)
        quality.draw(report, staging, test, reference_probs, work.probs, plan.labels)
        reports.write(report, staging)
        publish_staged(staging, plan.out, plan.names)  # kept attempts and flips exist only when made
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return report


def _load_model(plan: ExportPlan):
    """The run's Keras model (checked against the labels), re-sized if ``--image-size`` asks; and its trained size."""
    keras_path = plan.run_dir / MODEL_FILE
    model = load_keras_model(keras_path)
    n_out = int(model.outputs[0].shape[-1])
    if n_out != len(plan.labels):
        raise UsageError(f"{keras_path}: {n_out} outputs but edgeclf.json lists {len(plan.labels)} labels",
                         "they come from different runs; re-run edgeclf train")
    trained_size = input_size(model)
    image_size = plan.opts.image_size
    if image_size and (image_size, image_size) != trained_size:
        model = with_input(model, image_size=image_size)
    return model, trained_size


def _calibration(plan: ExportPlan, size: tuple[int, int], quiet: bool) -> Calibration | None:
    if not any(fmt in CALIBRATED_FORMATS for fmt in plan.formats):
        return None
    if plan.opts.calibration_images is not None:
        return Calibration(np.asarray(plan.opts.calibration_images, dtype=np.uint8), ["<override>"])
    calibration = load_calibration(plan.splits, size, plan.opts.calibration_samples, seed=plan.opts.seed,
                                   mirror=plan.opts.calibration_mirror, quiet=quiet)
    if calibration.skipped:
        note(f"note: skipped {len(calibration.skipped)} unreadable calibration image(s), e.g. "
             f"{calibration.skipped[0]}", quiet=quiet)
    return calibration


def _convert_all(work: _Work) -> tuple[list[dict], dict | None]:
    """One validated row per format (int8: the recipe chain); and the debugger's summary when int8 was made."""
    rows, debug = [], None
    for fmt in work.plan.formats:
        if fmt == "int8":
            builder = Int8Builder(work.converter, work.calibration.images, io_type=work.plan.opts.io_type,
                                  per_channel=work.plan.opts.per_channel)
            rows.append(_int8_chain(work, builder))
            debug = builder.debugger_summary()
        else:
            rows.append(_convert_one(work, fmt))
    return rows, debug


def _convert_one(work: _Work, fmt: str) -> dict:
    io_type = _io_for(fmt, DEFAULT_IO)
    note(f"converting {fmt} ...", quiet=work.quiet)
    data = work.converter.convert(fmt, io_type=io_type, per_channel=work.plan.opts.per_channel,
                                  calibration=work.calibration.images if work.calibration else None)
    row = _validate(work, fmt, io_type, data, model_filename(fmt, io_type))
    row["gate_failures"] = reports.gate_failures(row, work.reference, work.plan.opts)
    return row


def _int8_chain(work: _Work, builder: Int8Builder) -> dict:
    """Try the plan's recipes in order; the shipped attempt's file becomes model_int8*.tflite."""
    io_type = work.plan.opts.io_type
    final = model_filename("int8", io_type)

    def attempt(recipe: Recipe) -> dict:
        note(f"converting int8 (recipe {recipe.name}, io {io_type}) ...", quiet=work.quiet)
        row = _validate(work, "int8", io_type, builder.build(recipe), _staged_attempt(final, recipe.name),
                        recipe=recipe.name)
        row["gate_failures"] = reports.gate_failures(row, work.reference, work.plan.opts)
        return row

    row = first_passing(work.plan.recipes, attempt, target=work.plan.opts.int8_target / 100, quiet=work.quiet)
    shutil.copyfile(work.staging / row["file"], work.staging / final)
    work.probs[final] = work.probs[row["file"]]
    row["file"] = final
    for tried in row["attempts"]:
        if work.plan.opts.keep_attempts:
            tried["file"] = attempt_filename(final, tried["recipe"])
            os.replace(work.staging / _staged_attempt(final, tried["recipe"]), work.staging / tried["file"])
    return row


def _staged_attempt(final: str, recipe: str) -> str:
    return f".attempt-{recipe}-{final}"  # hidden: dropped with the staging folder unless kept


def attempt_filename(final: str, recipe: str) -> str:
    """model_int8.tflite -> model_int8.float-head.tflite: one int8 attempt kept with ``keep_attempts``."""
    return final.removesuffix(".tflite") + f".{recipe}.tflite"


def _validate(work: _Work, fmt: str, io_type: str, flat: bytes, name: str, recipe: str | None = None) -> dict:
    """Embed metadata, write ``name`` into staging, evaluate it on the test split: the report row."""
    plan, size = work.plan, work.size
    labels, tensors = plan.labels, tensor_io(flat)
    contract = build_contract(
        labels=labels, width=size[0], height=size[1], input_dtype=tensors["input"]["dtype"], quantization=fmt,
        io_type=io_type, versions=package_versions(("tensorflow", "keras")), recipe=recipe,
        source={"run_dir": str(plan.run_dir.resolve()), "dataset_fingerprint": plan.splits.fingerprint,
                "base_model": plan.manifest.base_model, "trained_input": list(work.trained_size)})
    data = embed_metadata(
        flat, contract, name=f"edgeclf {plan.manifest.base_model.get('name', 'classifier')} ({fmt})",
        description=(f"Image classifier ({len(labels)} classes: {', '.join(labels[:10])}"
                     f"{', ...' if len(labels) > 10 else ''}) exported by edgeclf as {fmt}; input "
                     f"{size[0]}x{size[1]} RGB {tensors['input']['dtype']}, output probabilities."))
    path = work.staging / name
    path.write_bytes(data)
    probs, seconds, clf = tflite_probabilities(path, work.test.images, labels, quiet=work.quiet)
    work.probs[name] = probs
    row = score(probs, work.test.targets, labels, work.reference_probs)
    row.update(format=fmt, io=io_type, file=name, size_bytes=len(data), recipe=recipe,
               drop_points=round((work.reference["accuracy"] - row["accuracy"]) * 100, 4),
               latency_p50_ms=latency_p50_ms(seconds), backend=clf.backend,
               input=tensors["input"], output=tensors["output"], ops=op_set(flat),
               top1_changes=top1_changes(probs, work.reference_probs, work.test.paths, labels))
    return row

