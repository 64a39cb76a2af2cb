"""`edgeclf bench`: latency, throughput, memory, size and accuracy of .tflite models on this machine."""

from __future__ import annotations

import click

from . import options


def _parse_threads(ctx, param, value: str | None) -> list[int]:
    if value is None:  # the default: every usable core, like predict and camera
        from edgeclf.runtime.machine import usable_cores

        return [usable_cores()]
    try:
        threads = [int(t) for t in value.split(",") if t.strip()]
    except ValueError:
        threads = []
    if not threads or any(t < 1 for t in threads):
        raise click.BadParameter(f"{value!r} is not a comma-separated list of positive integers, e.g. 1,2,4")
    return list(dict.fromkeys(threads))


@click.command("bench")
@click.argument("models", nargs=-1, required=True, type=click.Path(dir_okay=True, path_type=str))
@click.option("--images", type=click.Path(path_type=str), metavar="DIR",
              help="Labelled folder (one sub-folder per class) for accuracy and top-1 agreement; its JPEGs are also "
                   "the end-to-end test files.")
@click.option("--threads", default=None, callback=_parse_threads, metavar="N[,N...]",
              help="Interpreter thread counts to measure, e.g. 1,2,4 (default: every usable core).")
@click.option("--runs", default=100, show_default=True, type=click.IntRange(min=1),
              help="Timed inferences per measurement.")
@click.option("--warmup", default=10, show_default=True, type=click.IntRange(min=0),
              help="Untimed inferences before timing.")
@options.labels
@click.option("--isolate/--no-isolate", default=True, show_default=True,
              help="Measure each model in a fresh process (cold load time, per-model peak memory).")
@options.as_json("Print the full result as JSON on stdout.")
@options.quiet("No progress bar.")
def command(models, images, threads, runs, warmup, labels_file, isolate, as_json, quiet) -> None:
    """Measure MODELS (.tflite files) on this machine: load time, first inference, invoke-only latency
    (min/p50/p90/p99/mean), end-to-end latency from a JPEG and from an in-memory frame, throughput, peak memory
    and file size, per thread count. With --images: accuracy and top-1 agreement between the models.

    The machine (CPU, Raspberry Pi model, temperature, throttling, library versions) is recorded with the numbers.

    \b
    Examples:
      edgeclf bench runs/catsdogs/export/model_int8.tflite
      edgeclf bench runs/catsdogs/export/*.tflite --threads 1,2,4 --runs 200
      edgeclf bench model_int8.tflite model_float32.tflite --images photos/test/ --json > bench.json
    """
    from edgeclf.console import emit_json, note
    from edgeclf.errors import UsageError
    from edgeclf.runtime.bench import BenchConfig, labelled_images, run_benchmark

    from pathlib import Path

    for m in models:
        if Path(m).is_dir():
            raise UsageError(f"{m}: is a directory, not a .tflite model", f"pass the models inside it: {m}/*.tflite")
    config = BenchConfig(threads=threads, runs=runs, warmup=warmup, labels=labels_file, isolate=isolate)

    eval_items, note_text = None, ""
    if images:
        from edgeclf.runtime.bench import check_models

        known = check_models(models, config)[0]["labels"]
        eval_items, empty = labelled_images(images, known)
        note_text = str(images)
        if empty:
            note(f"note: empty class folder(s) in {images}: {', '.join(empty)}", quiet=quiet)

    result = run_benchmark(models, config, eval_items=eval_items, quiet=quiet, images_note=note_text)
    if as_json:
        emit_json(result)
        return
    click.echo(render_text(result))


def render_text(result: dict) -> str:
    """The human summary: machine line, latency table, accuracy table."""
    from edgeclf.console import format_table

    m = result["machine"]
    head = (f"{m.get('pi_model') or m['cpu_model']} · {m['usable_cores']}/{m['cores']} cores · {m['os']} · "
            f"Python {m['python']} · {m['interpreter']}")
    temp = m.get("cpu_temperature")
    if temp:
        head += f" · {temp['celsius']:.1f} °C"
    if m.get("throttling") and not m["throttling"]["ok"]:
        head += f" · THROTTLED {m['throttling']['raw']}"
    rows = []
    for r in result["results"]:
        rows.append([
            r["name"], r["threads"], f"{r['size_bytes'] / 2**20:.2f}", f"{r['load_ms']:.0f}",
            f"{r['first_inference_ms']:.1f}", f"{r['invoke']['min']:.2f}", f"{r['invoke']['p50']:.2f}",
            f"{r['invoke']['p90']:.2f}", f"{r['invoke']['p99']:.2f}", f"{r['invoke']['mean']:.2f}",
            f"{r['classifier']['p50']:.2f}", _pct(r["overhead"]["paired"]), f"{r['frame']['p50']:.2f}",
            f"{r['jpeg']['p50']:.2f}", f"{r['throughput_ips']:.1f}", _mb(r["memory_mb"]["peak"]),
        ])
    table = format_table(rows, ["model", "thr", "MB", "load ms", "1st ms", "min", "p50", "p90", "p99", "mean",
                                "clf p50", "overhead", "frame p50", "jpeg p50", "img/s", "peak RSS MB"])
    parts = [head, "", table, "",
             "invoke = bare interpreter invoke(); clf = Classifier on a ready frame; frame = 640x480 array; "
             f"jpeg = file on disk ({result['jpegs']['source']}); times in ms."]
    acc = result.get("accuracy")
    if acc:
        arows = []
        for model, a in acc["per_model"].items():
            lo, hi = a["ci95"]
            arows.append([model.rsplit("/", 1)[-1], a["count"],
                          "-" if a["accuracy"] is None else f"{100 * a['accuracy']:.2f}",
                          "-" if lo is None else f"{100 * lo:.1f}-{100 * hi:.1f}",
                          "-" if a["agreement_with_first"] is None else f"{100 * a['agreement_with_first']:.2f}",
                          *_beyond_accuracy(a), a["skipped"]])
        parts += ["", format_table(arows, ["model", "images", "accuracy %", "95% CI", "agrees w/ first %",
                                           "top-3 %", "macro F1", "ECE", "skipped"])]
        if acc.get("skipped_files"):
            parts += ["skipped (unreadable):"] + [f"  {s}" for s in acc["skipped_files"]]
    return "\n".join(parts)


def _beyond_accuracy(a: dict) -> list[str]:
    """top-3 accuracy, macro F1 and ECE (the keys export's report uses), "-" where they do not apply."""
    top3, f1, ece = a.get("top_k", {}).get("3"), a.get("macro_f1"), a.get("ece")
    return ["-" if top3 is None else f"{100 * top3:.2f}", "-" if f1 is None else f"{f1:.3f}",
            "-" if ece is None else f"{ece:.3f}"]


def _pct(value) -> str:
    return "-" if value is None else f"{100 * value:+.1f}%"


def _mb(value) -> str:
    return "-" if value is None else f"{value:.0f}"
