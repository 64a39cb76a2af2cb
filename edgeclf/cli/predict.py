"""`edgeclf predict`: classify image files and folders with an exported .tflite model (runtime only, no TensorFlow)."""

from __future__ import annotations

import sys

import click

from . import options


@click.command("predict")
@click.argument("model", type=click.Path(dir_okay=False, path_type=str))
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=str))
@options.top_k
@options.threshold
@options.as_json("One JSON object per line (JSON Lines) on stdout.")
@click.option("--csv", "as_csv", is_flag=True, help="CSV on stdout: path,label,score[,label_1,score_1,...],error.")
@options.labels
@options.threads
@options.quiet("No progress bar or summary on stderr.")
def command(model, paths, top_k, threshold, as_json, as_csv, labels_file, threads, quiet):
    """Classify images (files, or folders searched recursively) with MODEL (.tflite).

    Unreadable images are reported on stderr and skipped; the exit code is 1 when any file failed, 0 otherwise.
    Ctrl-C stops after the image in hand: every line written is whole, and the summary says how many were
    classified (exit 130).

    \b
    Examples:
      edgeclf predict model_int8.tflite photo.jpg
      edgeclf predict model_int8.tflite photos/ --top-k 3
      edgeclf predict model_int8.tflite photos/ --threshold 0.8 --json > predictions.jsonl
      edgeclf predict model.tflite img.png --labels labels.txt --csv
    """
    from edgeclf.console import note, progress
    from edgeclf.errors import UsageError
    from edgeclf.runtime.classifier import Classifier, expand_paths
    from edgeclf.runtime.predict import make_writer, predict_files
    from edgeclf.runtime.signals import stop_requests

    if as_json and as_csv:
        raise UsageError("--json and --csv cannot be combined", "pick one output format")
    kind = "json" if as_json else "csv" if as_csv else "text"
    clf = Classifier(model, labels=labels_file, num_threads=threads)
    items = list(expand_paths(paths))
    if not items:
        raise UsageError(f"no images found in {', '.join(paths)}",
                         "pass image files or folders holding .jpg/.png/... files")
    if not quiet and kind == "text":
        note(f"{clf.model_path.name}: {len(clf.labels)} labels, input {clf.input_size[0]}x{clf.input_size[1]} "
             f"{clf.input_dtype}, {clf.backend}")
    show_bar = not quiet and len(items) > 1 and sys.stderr.isatty() and not sys.stdout.isatty()
    with stop_requests() as stop, progress(total=len(items), desc="predict", unit="img", quiet=not show_bar) as bar:
        writer = make_writer(kind, echo=lambda line: bar.write(line, file=sys.stdout), top_k=top_k,
                             threshold=threshold, num_labels=len(clf.labels))
        summary = predict_files(clf, items, writer, top_k=top_k, threshold=threshold, bar=bar,
                                report_skipped=not (quiet and kind != "text"), stop=stop)
    note(summary.line(), quiet=quiet and not summary.interrupted)
    if summary.interrupted:
        click.get_current_context().exit(130)
    if summary.failed:
        click.get_current_context().exit(1)
