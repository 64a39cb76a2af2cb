"""`edgeclf predict`: classify image files and folders with an exported .tflite model (runtime only, no TensorFlow)."""

from __future__ import annotations

import csv
import sys

import click


@click.command("predict")
@click.argument("model", type=click.Path(dir_okay=False, path_type=str))
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=str))
@click.option("-k", "--top-k", type=click.IntRange(min=1), default=1, show_default=True,
              help="How many labels to show per image, best first.")
@click.option("-t", "--threshold", type=click.FloatRange(0.0, 1.0), default=None,
              help='Minimum top-1 score; below it the label is "unknown" (the top-k scores are still shown).')
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line (JSON Lines) on stdout.")
@click.option("--csv", "as_csv", is_flag=True, help="CSV on stdout: path,label,score[,label_1,score_1,...],error.")
@click.option("--labels", "labels_file", type=click.Path(exists=True, dir_okay=False, path_type=str),
              help="labels.txt for a model without embedded labels (overrides embedded ones).")
@click.option("--threads", type=click.IntRange(min=1), default=None, help="Interpreter threads (default: every usable core).")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar or summary on stderr.")
def command(model, paths, top_k, threshold, as_json, as_csv, labels_file, threads, quiet):
    """Classify images (files, or folders searched recursively) with MODEL (.tflite).

    Unreadable images are reported on stderr and skipped; the exit code is 1 when any file failed, 0 otherwise.

    \b
    Examples:
      edgeclf predict model_int8.tflite photo.jpg
      edgeclf predict model_int8.tflite photos/ --top-k 3
      edgeclf predict model_int8.tflite photos/ --threshold 0.8 --json > predictions.jsonl
      edgeclf predict model.tflite img.png --labels labels.txt --csv
    """
    from edgeclf.console import emit_json, note, progress
    from edgeclf.errors import ImageError, UsageError
    from edgeclf.runtime.classifier import UNKNOWN, Classifier, expand_paths

    if as_json and as_csv:
        raise UsageError("--json and --csv cannot be combined", "pick one output format")
    clf = Classifier(model, labels=labels_file, num_threads=threads)
    items = list(expand_paths(paths))
    if not items:
        raise UsageError(f"no images found in {', '.join(paths)}",
                         "pass image files or folders holding .jpg/.png/... files")
    if not quiet and not as_json and not as_csv:
        note(f"{clf.model_path.name}: {len(clf.labels)} labels, input {clf.input_size[0]}x{clf.input_size[1]} "
             f"{clf.input_dtype}, {clf.backend}")

    writer = None
    ranks = min(top_k, len(clf.labels)) if (top_k > 1 or threshold is not None) else 0
    if as_csv:
        writer = csv.writer(sys.stdout, lineterminator="\n")
        header = ["path", "label", "score"]
        for rank in range(1, ranks + 1):
            header += [f"label_{rank}", f"score_{rank}"]
        header.append("error")
        writer.writerow(header)

    show_bar = not quiet and len(items) > 1 and sys.stderr.isatty() and not sys.stdout.isatty()
    failed: list[ImageError] = []
    done = 0
    bar = progress(total=len(items), desc="predict", unit="img", quiet=not show_bar)
    try:
        for path, preds in clf.classify_many(items, top_k=top_k):  # decodes the next images during inference
            path = str(path)
            bar.update(1)
            if isinstance(preds, ImageError):
                failed.append(preds)
                if as_json:
                    emit_json({"path": path, "error": preds.reason}, lines=True)
                elif as_csv:
                    writer.writerow([path] + [""] * (len(header) - 2) + [preds.reason])
                if not (quiet and (as_json or as_csv)):
                    bar.write(f"skipped: {preds}", file=sys.stderr)
                continue
            done += 1
            best = preds[0]
            label = best.label if threshold is None or best.score >= threshold else UNKNOWN
            if as_json:
                emit_json({"path": path, "label": label, "score": round(best.score, 6),
                           "top_k": [{"label": p.label, "index": p.index, "score": round(p.score, 6)}
                                     for p in preds]}, lines=True)
            elif as_csv:
                row = [path, label, f"{best.score:.6f}"]
                for p in preds[:ranks]:
                    row += [p.label, f"{p.score:.6f}"]
                writer.writerow(row + [""] * (len(header) - len(row)))
            else:
                shown = "  ".join(f"{p.label} {p.score:.3f}" for p in preds)
                if label == UNKNOWN:
                    shown = f"{UNKNOWN} (below {threshold:g}: {shown})"
                bar.write(f"{path}\t{shown}", file=sys.stdout)
    finally:
        bar.close()
    if not quiet:
        summary = f"{done} image{'s' if done != 1 else ''} classified"
        if failed:
            summary += f", {len(failed)} skipped (unreadable, listed above)"
        note(summary)
    if failed:
        click.get_current_context().exit(1)
