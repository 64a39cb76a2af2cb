"""`edgeclf export`: a run directory -> self-describing .tflite files, validated on the held-out test split."""

from __future__ import annotations

import click

from edgeclf.console import emit_json, note
from edgeclf.errors import EdgeclfError
from edgeclf.native import import_stage

FORMAT_FLAGS = ("float32", "float16", "dynamic", "int8")


@click.command("export")
@click.argument("run_dir", type=click.Path(file_okay=True, dir_okay=True, path_type=str))
@click.option("--int8", "int8", is_flag=True,
              help="Full-integer int8 (integer-only builtin ops; calibrated on the training split).")
@click.option("--float16", "float16", is_flag=True, help="float16 weights (half the size, float math).")
@click.option("--dynamic", "dynamic", is_flag=True, help="Dynamic-range: int8 weights, float activations.")
@click.option("--float32", "float32", is_flag=True, help="Plain float32 (the exact conversion).")
@click.option("--all", "all_formats", is_flag=True, help="Every format above.")
@click.option("--io", "io_type", type=click.Choice(["uint8", "int8", "float32"]), default="uint8", show_default=True,
              help="Input/output tensor type of the int8 model (uint8: raw camera pixels in, no conversion).")
@click.option("--calibration-samples", type=click.IntRange(min=1), default=256, show_default=True, metavar="N",
              help="Training-split images (stratified sample) used to calibrate int8.")
@click.option("--max-drop", type=float, default=1.0, show_default=True, metavar="POINTS",
              help="Gate: fail (exit 1) when a model's test accuracy is more than this many points below float.")
@click.option("--image-size", type=int, default=None, metavar="N",
              help="Export at another square input size (same weights); validation runs at that size.  "
                   "[default: the trained size]")
@click.option("--out", "-o", default=None, metavar="DIR", help="Output folder.  [default: RUN_DIR/export]")
@click.option("--force", is_flag=True, help="Replace existing files of the same names in the output folder.")
@click.option("--allow-changed", is_flag=True,
              help="Validate even if test files are missing or changed since training (counted in the report).")
@click.option("--json", "as_json", is_flag=True, help="Print report.json on stdout.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bars, notes or table; errors only.")
def command(run_dir, int8, float16, dynamic, float32, all_formats, io_type, calibration_samples, max_drop,
            image_size, out, force, allow_changed, as_json, quiet) -> None:
    """Convert a trained run to TFLite, check every model on the test split, and gate on accuracy.

    Each model is one self-describing file (labels, input size and normalisation embedded as standard TFLite
    Model Metadata, read by edgeclf, MediaPipe Tasks and the Android Task Library). Without a format flag,
    float32 and int8 are exported: int8 is the model for the Pi, float32 the exact reference it is compared to.

    The float Keras model and every exported model are evaluated on exactly the test split in splits.json, with
    edgeclf's own runtime. A table goes to stderr; report.json and report.md go next to the models. Any format
    whose accuracy is more than --max-drop points below float fails the export (exit 1); its file is kept and
    marked failed in the report.

    \b
    Output (RUN_DIR/export/ or --out):
      model_float32.tflite  model_float16.tflite  model_dynamic.tflite
      model_int8.tflite     (model_int8_io-int8.tflite, model_int8_io-float32.tflite with --io)
      report.json  report.md

    \b
    Examples:
      edgeclf export runs/catsdogs                      # float32 + int8, gated at 1.0 point
      edgeclf export runs/catsdogs --all --max-drop 0.5
      edgeclf export runs/catsdogs --int8 --io int8 --out /tmp/npu
      edgeclf export runs/catsdogs --int8 --image-size 160 --out runs/catsdogs/export-160
      edgeclf export runs/catsdogs --int8 --json | jq '.models[0].accuracy'
    """
    formats = FORMAT_FLAGS if all_formats else tuple(
        f for f, on in zip(FORMAT_FLAGS, (float32, float16, dynamic, int8)) if on)
    import_stage("edgeclf export", "edgeclf.export.run")  # quietly, or say which extra to install
    from edgeclf.export.report import gate_message, table
    from edgeclf.export.run import DEFAULT_FORMATS, ExportOptions, export_run
    opts = ExportOptions(run_dir=run_dir, formats=formats or DEFAULT_FORMATS, io_type=io_type,
                         calibration_samples=calibration_samples, max_drop=max_drop, out=out, force=force,
                         allow_changed=allow_changed, image_size=image_size)
    report = export_run(opts, quiet=quiet or as_json)
    if as_json:
        emit_json(report)
    elif not quiet:
        note(table(report))
        note(f"wrote {len(report['models'])} model(s), report.json and report.md to {report['out']}")
    failure = gate_message(report)
    if failure:
        raise EdgeclfError(failure, f"files kept and marked failed in {report['out']}/report.json; "
                                    "re-export with more --calibration-samples or another format")
