"""`edgeclf export`: a run directory -> self-describing .tflite files, validated on the held-out test split."""

from __future__ import annotations

import click

from edgeclf.console import emit_json, note
from edgeclf.contracts import (ALL_FORMATS, DEFAULT_CALIBRATION_MIRROR, DEFAULT_CALIBRATION_SAMPLES, DEFAULT_FORMATS,
                               DEFAULT_INT8_TARGET, DEFAULT_IO, DEFAULT_MAX_DROP, DEFAULT_MIN_AGREEMENT, FORMATS,
                               IO_TYPES)
from edgeclf.errors import EdgeclfError
from edgeclf.native import import_stage

from . import options

# edgeclf.export.recipes.FALLBACK_ORDER, repeated so --help needs no TensorFlow import (a test checks they match)
RECIPE_NAMES = ("full-int8", "float-head", "float-light", "float-worst")
FORMAT_HELP = {  # one flag per format in edgeclf.contracts.FORMATS, in the order --help lists them
    "int8": "int8 for the Pi: tries int8 recipes in order (full-integer first) until one passes the gate.",
    "float16": "float16 weights (half the size, float math).",
    "dynamic": "Dynamic-range: int8 weights, float activations.",
    "float32": "Plain float32 (the exact conversion).",
    "int16x8": "int16 activations, int8 weights: fidelity over speed (no XNNPACK kernels).",
}


def _format_flags(command):
    """``--int8``, ``--float16``, ... and ``--all`` (the everyday formats), from the one list of formats."""
    for fmt in reversed(FORMAT_HELP):
        command = click.option(f"--{fmt}", fmt, is_flag=True, help=FORMAT_HELP[fmt])(command)
        if fmt == "int16x8":
            command = click.option("--all", "all_formats", is_flag=True, help=", ".join(ALL_FORMATS[:-1])
                                   + f" and {ALL_FORMATS[-1]}.")(command)
    return command


@click.command("export")
@click.argument("run_dir", type=click.Path(file_okay=True, dir_okay=True, path_type=str))
@_format_flags
@click.option("--io", "io_type", type=click.Choice(IO_TYPES), default=DEFAULT_IO, show_default=True,
              help="Input/output tensor type of the int8 model (uint8: raw camera pixels in, no conversion).")
@click.option("--int8-recipe", type=click.Choice(RECIPE_NAMES), default=None,
              help="Force one int8 recipe instead of trying them in order (full-int8: integer-only).")
@click.option("--calibration-samples", type=click.IntRange(min=1), default=DEFAULT_CALIBRATION_SAMPLES, show_default=True, metavar="N",
              help="Training-split images (stratified sample) used to calibrate int8.")
@click.option("--calibration-mirror/--no-calibration-mirror", default=DEFAULT_CALIBRATION_MIRROR, show_default=True,
              help="Also calibrate on each image's horizontal mirror (twice the inputs, closer to float's answers).")
@click.option("--max-drop", type=float, default=DEFAULT_MAX_DROP, show_default=True, metavar="POINTS",
              help="Gate: fail (exit 1) when a model's test accuracy is more than this many points below float.")
@click.option("--min-agreement", type=float, default=DEFAULT_MIN_AGREEMENT, show_default=True, metavar="PERCENT",
              help="Gate: fail (exit 1) when fewer test images than this keep the float model's top-1.")
@click.option("--int8-target", type=float, default=DEFAULT_INT8_TARGET, show_default=True, metavar="PERCENT",
              help="int8 tries its next recipe until one keeps the float model's top-1 on this share of the test "
                   "images; if none does, it ships the first that passed the gate (0: the first that passes).")
@options.image_size("Export at another square input size (same weights); validation runs at that size",
                     show_default="the trained size")
@click.option("--out", "-o", default=None, metavar="DIR", help="Output folder.  [default: RUN_DIR/export]")
@click.option("--force", is_flag=True, help="Replace existing files of the same names in the output folder.")
@click.option("--allow-changed", is_flag=True,
              help="Validate even if test files are missing or changed since training (counted in the report).")
@options.as_json("Print report.json on stdout.")
@options.quiet("No progress bars, notes or table; errors only.")
def command(run_dir, all_formats, io_type, int8_recipe, calibration_samples, calibration_mirror, max_drop,
            min_agreement, int8_target, image_size, out, force, allow_changed, as_json, quiet, **format_flags) -> None:
    """Convert a trained run to TFLite, check every model on the test split, and gate on accuracy.

    Each model is one self-describing file (labels, input size and normalisation embedded as standard TFLite
    Model Metadata, read by edgeclf, MediaPipe Tasks and the Android Task Library). Without a format flag,
    float32 and int8 are exported: int8 is the model for the Pi, float32 the exact reference it is compared to.

    The float Keras model and every exported model are evaluated on exactly the test split in splits.json, with
    edgeclf's own runtime. A table goes to stderr; report.json and report.md go next to the models. A format
    fails the gate when its accuracy is more than --max-drop points below float, or its top-1 agrees with float
    on fewer than --min-agreement % of the test images. int8 then tries its next recipe (full-int8,
    float-head, float-light, float-worst: fastest first) and ships the first that passes; report.md lists
    every attempt and the layers TensorFlow's QuantizationDebugger finds worst. If nothing passes, the export
    fails (exit 1); the file is kept and marked failed in the report.

    \b
    Output (RUN_DIR/export/ or --out):
      model_float32.tflite  model_float16.tflite  model_dynamic.tflite  model_int16x8.tflite
      model_int8.tflite     (model_int8_io-int8.tflite, model_int8_io-float32.tflite with --io)
      report.json  report.md  reliability.png
      <model>-confusion.png  <model>-mistakes.png  <model>-flips.png (top-1 changes against float, if any)

    \b
    Examples:
      edgeclf export runs/catsdogs                      # float32 + int8, gated at 1.0 point / 99 % agreement
      edgeclf export runs/catsdogs --int8 --int8-recipe full-int8 --min-agreement 0   # integer-only, no fallback
      edgeclf export runs/catsdogs --all --max-drop 0.5
      edgeclf export runs/catsdogs --int8 --io int8 --out /tmp/npu
      edgeclf export runs/catsdogs --int8 --image-size 160 --out runs/catsdogs/export-160
      edgeclf export runs/catsdogs --int8 --json | jq '.models[0].accuracy'
    """
    chosen = tuple(f for f in FORMATS if format_flags[f])
    formats = tuple(dict.fromkeys((ALL_FORMATS if all_formats else ()) + chosen))
    import_stage("edgeclf export", "edgeclf.export.run")  # quietly, or say which extra to install
    from edgeclf.export import quality
    from edgeclf.export.report import gate_message, table
    from edgeclf.export.run import ExportOptions, export_run
    opts = ExportOptions(run_dir=run_dir, formats=formats or DEFAULT_FORMATS, io_type=io_type,
                         calibration_samples=calibration_samples, calibration_mirror=calibration_mirror,
                         max_drop=max_drop, min_agreement=min_agreement, int8_target=int8_target,
                         int8_recipe=int8_recipe, out=out, force=force,
                         allow_changed=allow_changed, image_size=image_size)
    report = export_run(opts, quiet=quiet or as_json)
    if as_json:
        emit_json(report)
    elif not quiet:
        note(table(report))
        note(quality.console_summary(report))
        note(f"wrote {len(report['models'])} model(s), report.json and report.md to {report['out']}")
    failure = gate_message(report)
    if failure:
        raise EdgeclfError(failure, f"files kept and marked failed in {report['out']}/report.json (report.md lists "
                                    "every int8 recipe tried); for fidelity over speed, try --int16x8")
