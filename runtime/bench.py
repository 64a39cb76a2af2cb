"""The latency/accuracy core of ``edgeclf bench`` (no TensorFlow: it runs on the Pi it measures).

For each model and thread count, one measurement (:func:`measure`) records:

* load time (``Classifier(...)``: read the file, parse metadata, create and allocate the interpreter) and the first
  inference (XNNPACK packs weights lazily, so the first call is much slower than the rest);
* ``invoke``: a bare interpreter ``invoke()`` loop on the same model, threads and interpreter class (what TensorFlow's
  ``benchmark_model`` reports), and ``classifier``: edgeclf's hot path ``Classifier.probabilities_from_input`` on a
  ready frame. The two run interleaved in blocks of ``BLOCK`` calls, so a noisy neighbour slows both alike; the
  runtime's overhead is the median over block pairs of (Classifier block median / invoke block median) - 1, a paired
  estimate that machine-state drift between blocks cannot fake (the plain ratio of overall medians is kept too);
* ``frame``: ``Classifier.probabilities`` on an in-memory 640x480 camera-sized frame (resize + inference);
* ``jpeg``: ``Classifier.probabilities`` on a JPEG file (decode + resize + inference), with a breakdown that times
  Pillow's (draft-mode) decode and the rest of the preprocessing path separately;
* throughput (sequential, batch 1), peak RSS, file size; and, given labelled images, accuracy.

By default every measurement runs in a fresh child process (``spawn``), so load time is a cold load and peak RSS
belongs to that one model, not to everything measured before it.
"""

from __future__ import annotations

import multiprocessing
import os
import queue as queue_module
import re
import sys
import tempfile
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from edgeclf.contracts import FORMATS
from edgeclf.errors import EdgeclfError, ImageError, ModelError, UsageError
from edgeclf.native import native_stderr_silenced

from . import metrics
from .machine import usable_cores
from .stats import LatencyStats, overhead, ratio

FRAME_SIZE = (640, 480)  # (width, height) of the synthetic in-memory "camera" frame and JPEG
BLOCK = 10  # interleaving block for the invoke()/Classifier comparison


@dataclass
class BenchConfig:
    threads: list[int] = field(default_factory=lambda: [usable_cores()])
    runs: int = 100
    warmup: int = 10
    labels: str | None = None  # labels file overriding the models' own
    interpreter: str | None = None  # force a backend (EDGECLF_INTERPRETER semantics)
    isolate: bool = True  # one fresh process per measurement


@dataclass
class Task:
    """One (model, threads) measurement, picklable for the child process."""

    model: str
    threads: int
    config: BenchConfig
    jpegs: list[str]
    eval_items: list[tuple[str, str]] = field(default_factory=list)  # (path, label) when accuracy is wanted here


# ---- inputs ------------------------------------------------------------------------------------------------------


def model_format(path: str | os.PathLike, input_dtype: str = "") -> str:
    """float32 / float16 / dynamic / int8 from edgeclf's export file names, else a guess from the input type."""
    stem = Path(path).stem.lower()
    for name in FORMATS:
        if re.search(rf"(^|[_\-.]){name}($|[_\-.])", stem):
            return name
    return "int8" if input_dtype in ("uint8", "int8") else "unknown"


def check_models(paths: Sequence[str | os.PathLike], config: BenchConfig) -> list[dict]:
    """Open every model once before hours of measuring: a missing file, a non-model or missing labels fail now,
    with the one-line error naming the file. Returns what each model declares (labels, input size, format, backend)."""
    from .classifier import Classifier
    from .model_metadata import describe

    if not paths:
        raise UsageError("no model given", "pass one or more .tflite files: edgeclf bench model_int8.tflite")
    seen, infos = set(), []
    for p in paths:
        key = os.path.realpath(p)
        if key in seen:
            raise UsageError(f"{p}: model given twice", "pass each model once")
        seen.add(key)
        clf = Classifier(p, labels=config.labels, num_threads=1, interpreter=config.interpreter)
        declared = describe(clf.info)  # an edgeclf export says its format; other models are guessed from the name
        infos.append({"model": str(p), "labels": list(clf.labels), "input_size": list(clf.input_size),
                      "input_dtype": str(clf.input_dtype), "backend": clf.backend,
                      "format": declared["quantization"] or model_format(p, str(clf.input_dtype))})
        del clf
    return infos


def labelled_images(folder: str | os.PathLike, known_labels: Sequence[str]) -> tuple[list[tuple[str, str]], list[str]]:
    """(path, label) for every image in a class-per-folder ``folder``; label folders the models do not know are an
    error (a typo there would silently count as wrong answers). Returns the items and the empty class folders."""
    from .preprocess import list_images

    folder = Path(folder)
    if not folder.exists():
        raise UsageError(f"--images {folder}: no such folder", "pass a folder with one sub-folder per class")
    if not folder.is_dir():
        raise UsageError(f"--images {folder}: not a folder", "pass a folder with one sub-folder per class")
    classes = sorted(d.name for d in folder.iterdir() if d.is_dir() and not d.name.startswith("."))
    if not classes:
        loose = list_images(folder)
        if loose:
            raise UsageError(f"--images {folder}: {len(loose)} images but no class sub-folders",
                             "put each image in a sub-folder named after its label, e.g. cats/ and dogs/")
        raise UsageError(f"--images {folder}: empty folder (no class sub-folders, no images)",
                         "pass a folder with one sub-folder of images per class")
    unknown = [c for c in classes if c not in known_labels]
    if unknown:
        raise UsageError(f"--images {folder}: label folder(s) {', '.join(unknown)} unknown to the model "
                         f"(its labels: {', '.join(known_labels)})", "rename or remove those folders")
    items, empty = [], []
    for c in classes:
        files = list_images(folder / c)
        if not files:
            empty.append(c)
        items.extend((str(p), c) for p in files)
    if not items:
        raise UsageError(f"--images {folder}: no images in {', '.join(classes)}",
                         "add .jpg/.png files to the class folders")
    return items, empty


def spread(items: Sequence, n: int) -> list:
    """Up to ``n`` items evenly spaced over ``items`` (so every class contributes to a latency sample)."""
    if len(items) <= n:
        return list(items)
    idx = np.linspace(0, len(items) - 1, n).round().astype(int)
    return [items[i] for i in idx]


def synthetic_photo(size=FRAME_SIZE, seed: int = 0) -> np.ndarray:
    """A photo-like uint8 RGB frame (smooth gradients, shapes and sensor noise): decodes and compresses like a
    photo, unlike pure noise (incompressible) or a flat colour (trivial)."""
    w, h = size
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    img = np.stack([128 + 90 * np.sin(x / 53 + c) * np.cos(y / 37 - c) for c in (0.0, 1.3, 2.6)], axis=-1)
    for _ in range(12):
        cx, cy, r = rng.uniform(0, w), rng.uniform(0, h), rng.uniform(h / 16, h / 4)
        mask = (x - cx) ** 2 + (y - cy) ** 2 < r * r
        img[mask] = rng.uniform(0, 255, 3)
    img += rng.normal(0, 6, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


@contextmanager
def synthetic_jpeg(size=FRAME_SIZE):
    """A temporary 640x480 JPEG (quality 90) for end-to-end timing when no real images are given."""
    from PIL import Image

    with tempfile.TemporaryDirectory(prefix="edgeclf-bench-") as tmp:
        path = Path(tmp) / "frame.jpg"
        Image.fromarray(synthetic_photo(size)).save(path, quality=90)
        yield str(path)


# ---- memory ------------------------------------------------------------------------------------------------------


def peak_rss_mb() -> float | None:
    """This process's peak resident set size (getrusage; psutil's peak where getrusage does not exist)."""
    try:
        import resource

        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return rss / 2**20 if sys.platform == "darwin" else rss / 1024  # bytes on macOS, KiB elsewhere
    except ImportError:  # Windows
        try:
            import psutil

            info = psutil.Process().memory_info()
            return getattr(info, "peak_wset", info.rss) / 2**20
        except ImportError:
            return None


def current_rss_mb() -> float | None:
    try:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError, IndexError, AttributeError):
        pass
    try:
        import psutil

        return psutil.Process().memory_info().rss / 2**20
    except ImportError:
        return None


# ---- one measurement ---------------------------------------------------------------------------------------------


def _timed(fn, *args) -> float:
    t0 = time.perf_counter()
    fn(*args)
    return time.perf_counter() - t0


def _decode_only(path: str, size: tuple[int, int]):
    """Pillow decode exactly as the preprocessing path does it for JPEGs (draft to >= the target, then load)."""
    from PIL import Image

    img = Image.open(path)
    if img.format == "JPEG":
        side = max(size)
        img.draft("RGB", (side, side))
    img.load()
    return img


@dataclass
class Samples:
    """Per-call durations in seconds of one measurement, and the paired block ratios (see the module docstring)."""

    invoke: list[float] = field(default_factory=list)
    classifier: list[float] = field(default_factory=list)
    block_ratios: list[float] = field(default_factory=list)
    frame: list[float] = field(default_factory=list)
    jpeg: list[float] = field(default_factory=list)
    decode: list[float] = field(default_factory=list)
    resize: list[float] = field(default_factory=list)


def measure(task: Task, tick: Callable[[int], None] = lambda n: None) -> dict:
    """Run one (model, threads) measurement in this process and return its JSON-ready record."""
    from .classifier import Classifier
    from .interpreter import find_interpreter

    cfg = task.config
    find_interpreter(cfg.interpreter)  # import the backend first: load time is the model's, not the import's
    rss_before = current_rss_mb()
    t0 = time.perf_counter()
    clf = Classifier(task.model, labels=cfg.labels, num_threads=task.threads, interpreter=cfg.interpreter)
    load_s = time.perf_counter() - t0
    ready = synthetic_photo(clf.input_size, seed=1)
    first_s = _timed(clf.probabilities_from_input, ready)

    samples = Samples()
    _time_invoke_and_classifier(task, clf, ready, samples, tick)
    _time_frames(clf, cfg.runs, samples, tick)
    _time_jpegs(clf, task.jpegs, cfg.runs, samples, tick)

    record = {
        "model": task.model,
        "name": Path(task.model).name,
        "format": model_format(task.model, str(clf.input_dtype)),
        "size_bytes": os.path.getsize(task.model),
        "input_size": list(clf.input_size),
        "input_dtype": str(clf.input_dtype),
        "output_dtype": str(clf.output_dtype),
        "backend": clf.backend,
        "threads": task.threads,
        "runs": cfg.runs,
        "warmup": cfg.warmup,
        "load_ms": round(load_s * 1000, 3),
        "first_inference_ms": round(first_s * 1000, 3),
        **_summarise(samples),
        "jpeg_files": len(task.jpegs),
        "memory_mb": {"before_load": _round(rss_before, 1), "peak": _round(peak_rss_mb(), 1),
                      "isolated": cfg.isolate},
    }
    if task.eval_items:
        record["predictions"] = _predict_all(clf, task.eval_items, tick)
    return record


def _time_invoke_and_classifier(task: Task, clf, ready: np.ndarray, samples: Samples, tick) -> None:
    """A bare interpreter of the same class, model and threads (input set once, invoke() only) against the
    Classifier's hot path, in alternating blocks of ``BLOCK`` calls."""
    from .interpreter import load_interpreter

    cfg = task.config
    bare, _ = load_interpreter(task.model, task.threads, prefer=clf.backend.split()[0])
    detail = bare.get_input_details()[0]
    bare.set_tensor(detail["index"], ready.astype(detail["dtype"])[np.newaxis])
    calls = {"invoke": (bare.invoke, ()), "classifier": (clf.probabilities_from_input, (ready,))}
    for _ in range(cfg.warmup):
        for fn, args in calls.values():
            fn(*args)
    tick(2 * cfg.warmup)
    perf = time.perf_counter
    for block in range(0, cfg.runs, BLOCK):
        n = min(BLOCK, cfg.runs - block)
        order = ("invoke", "classifier") if (block // BLOCK) % 2 == 0 else ("classifier", "invoke")
        for which in order:
            fn, args = calls[which]
            out = getattr(samples, which)
            for _ in range(n):
                t0 = perf()
                fn(*args)
                out.append(perf() - t0)
        # Paired estimate: neighbouring blocks saw the same machine state (other jobs, clock speed).
        samples.block_ratios.append(float(np.median(samples.classifier[-n:]) / np.median(samples.invoke[-n:])))
        tick(2 * n)


def _time_frames(clf, runs: int, samples: Samples, tick) -> None:
    """``Classifier.probabilities`` on an in-memory camera-sized frame: resize + inference."""
    frame = synthetic_photo(FRAME_SIZE, seed=2)
    samples.frame.extend(_timed(clf.probabilities, frame) for _ in range(runs))
    tick(runs)


def _time_jpegs(clf, jpegs: Sequence[str], runs: int, samples: Samples, tick) -> None:
    """End to end from a file, and its parts, interleaved call by call so both see the same machine state."""
    from .preprocess import load_image

    perf = time.perf_counter
    for i in range(runs):
        path = jpegs[i % len(jpegs)]
        samples.jpeg.append(_timed(clf.probabilities, path))
        t0 = perf()
        img = _decode_only(path, clf.input_size)
        t1 = perf()
        load_image(img, clf.input_size)  # the rest of the one path: EXIF orientation, to RGB, resize
        samples.decode.append(t1 - t0)
        samples.resize.append(perf() - t1)
        if i % BLOCK == BLOCK - 1:
            tick(2 * BLOCK)
    tick(2 * (runs % BLOCK))


def _summarise(samples: Samples) -> dict:
    """The latency part of a record: one summary per timed path, the runtime's overhead, a breakdown, throughput."""
    invoke, clf, jpeg = (LatencyStats.from_seconds(s) for s in (samples.invoke, samples.classifier, samples.jpeg))
    decode_ms, resize_ms = float(np.mean(samples.decode)) * 1000, float(np.mean(samples.resize)) * 1000
    return {
        "invoke": invoke.to_dict(),
        "classifier": clf.to_dict(),
        "frame": LatencyStats.from_seconds(samples.frame).to_dict(),
        "jpeg": jpeg.to_dict(),
        "overhead": {  # Classifier on a ready frame vs bare invoke(): 0.02 = 2 % slower
            "paired": _round(float(np.median(samples.block_ratios)) - 1.0),  # median over block pairs: the headline
            "p50": _round(overhead(clf.p50, invoke.p50)),  # ratio of the two overall medians
            "mean": _round(overhead(clf.mean, invoke.mean)),
            "block_ratios": [round(r, 5) for r in samples.block_ratios],
        },
        "breakdown_ms": {  # means, which add up (medians do not)
            "decode": round(decode_ms, 3),
            "resize": round(resize_ms, 3),
            "inference": round(clf.mean, 3),
            "sum": round(decode_ms + resize_ms + clf.mean, 3),
            "jpeg_end_to_end": round(jpeg.mean, 3),
        },
        "jpeg_vs_invoke": {"p50": _round(ratio(jpeg.p50, invoke.p50)), "mean": _round(ratio(jpeg.mean, invoke.mean))},
        "throughput_ips": round(clf.throughput, 2),
        "jpeg_throughput_ips": round(jpeg.throughput, 2),
    }


def _predict_all(clf, items: Sequence[tuple[str, str]], tick) -> dict:
    """Top-1 label and class scores per image (None for unreadable ones, which are listed, not counted)."""
    predicted, scores, skipped = [], [], []
    for i, (path, _label) in enumerate(items):
        try:
            probs = clf.probabilities(path)
            predicted.append(clf.labels[int(np.argmax(probs))])
            scores.append([float(p) for p in probs])
        except ImageError as exc:
            predicted.append(None)
            scores.append(None)
            skipped.append(str(exc))
        if i % 25 == 24:
            tick(25)
    tick(len(items) % 25)
    return {"labels": predicted, "scores": scores, "class_names": list(clf.labels), "skipped": skipped}


def _round(value, digits: int = 4):
    return None if value is None else round(value, digits)


def task_units(task: Task) -> int:
    """Progress units (roughly: inferences) a task reports, for the progress bar's total."""
    return 2 * task.config.warmup + 5 * task.config.runs + len(task.eval_items)


# ---- running tasks (optionally in a fresh process each) ----------------------------------------------------------


def _child(task: Task, messages) -> None:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    # The child's native stderr ("INFO: Created TensorFlow Lite XNNPACK delegate") would tear through the parent's
    # progress bar; failures reach the parent through the queue, a crash through the exit code.
    with native_stderr_silenced():
        try:
            record = measure(task, tick=lambda n: messages.put(("tick", n)))
            messages.put(("result", record))
        except EdgeclfError as exc:
            messages.put(("error", (exc.__class__.__name__, exc.message, exc.hint)))
        except BaseException as exc:  # report, do not hang the parent
            messages.put(("error", ("EdgeclfError", f"{task.model}: benchmark failed ({exc.__class__.__name__}: "
                                    f"{exc})", None)))


def run_task(task: Task, tick: Callable[[int], None] = lambda n: None) -> dict:
    """Measure in a fresh ``spawn`` process when ``task.config.isolate``, else here."""
    if not task.config.isolate:
        return measure(task, tick)
    ctx = multiprocessing.get_context("spawn")
    messages = ctx.Queue()
    proc = ctx.Process(target=_child, args=(task, messages), daemon=True)
    proc.start()
    try:
        while True:
            try:
                kind, payload = messages.get(timeout=1.0)
            except queue_module.Empty:
                if not proc.is_alive():
                    raise EdgeclfError(f"{task.model}: benchmark process died (exit code {proc.exitcode}) at "
                                       f"{task.threads} thread(s)", "re-run with --no-isolate --debug to see why")
                continue
            if kind == "tick":
                tick(payload)
            elif kind == "result":
                return payload
            else:
                cls_name, message, hint = payload
                cls = {"ModelError": ModelError, "UsageError": UsageError}.get(cls_name, EdgeclfError)
                raise cls(message, hint)
    finally:
        proc.join(timeout=10)
        if proc.is_alive():
            proc.terminate()
            proc.join()


# ---- the whole benchmark -----------------------------------------------------------------------------------------


def score(items: Sequence[tuple[str, str]], per_model: dict[str, list[str | None]],
          class_names: Sequence[str] = (), scores: dict[str, tuple[list[str], list]] | None = None) -> dict:
    """:func:`.metrics.score` per model (on the images it could read, ``None`` predictions are skipped), and top-1
    agreement of each model with every other on the images all of them could read. ``class_names`` orders
    ``per_class``; labels seen in ``items`` or predictions but missing from it are appended. ``scores`` (model ->
    (its labels, per-image class scores)) adds top-k, calibration and threshold coverage, as export reports them."""
    names = list(dict.fromkeys([*class_names, *(label for _, label in items),
                                *(p for preds in per_model.values() for p in preds if p is not None)]))
    index = {name: i for i, name in enumerate(names)}
    accuracy = {}
    for model, predicted in per_model.items():
        readable = [i for i, p in enumerate(predicted) if p is not None]
        truth = [index[items[i][1]] for i in readable]
        outputs = np.asarray([index[predicted[i]] for i in readable], dtype=np.int64)
        if scores and model in scores:  # the model's score columns, in the order of ``names``
            model_labels, rows = scores[model]
            outputs = np.zeros((len(readable), len(names)), np.float32)
            outputs[:, [index[label] for label in model_labels]] = [rows[i] for i in readable]
        accuracy[model] = {**metrics.score(truth, outputs, names), "skipped": len(predicted) - len(readable)}
    models = list(per_model)
    common = [i for i in range(len(items)) if all(per_model[m][i] is not None for m in models)]
    pairwise = {}
    for a in models:
        for b in models:
            if a < b and common:
                pairwise[f"{a} | {b}"] = metrics.agreement([per_model[a][i] for i in common],
                                                           [per_model[b][i] for i in common])
    reference = models[0]
    for m in models:
        accuracy[m]["agreement_with_first"] = (metrics.agreement(
            [per_model[reference][i] for i in common], [per_model[m][i] for i in common]) if common else None)
    return {"reference": reference, "per_model": accuracy, "pairwise_agreement": pairwise, "common_images": len(common)}


def run_benchmark(models: Sequence[str | os.PathLike], config: BenchConfig, *,
                  eval_items: Sequence[tuple[str, str]] | None = None, jpegs: Sequence[str] | None = None,
                  quiet: bool = True, images_note: str = "") -> dict:
    """Benchmark ``models`` at every thread count in ``config``. ``eval_items`` (path, label) adds accuracy and
    agreement; ``jpegs`` are the files timed end to end (default: a sample of ``eval_items``, else a synthetic
    640x480 JPEG). A progress bar on stderr unless ``quiet``."""
    from edgeclf.console import progress

    from .machine import machine_info

    infos = check_models([str(m) for m in models], config)
    eval_items = list(eval_items or [])
    if eval_items:
        for info in infos:
            unknown = sorted({label for _, label in eval_items} - set(info["labels"]))
            if unknown:
                raise UsageError(f"{info['model']}: image labels {', '.join(unknown)} unknown to this model "
                                 f"(its labels: {', '.join(info['labels'])})", "pass images of the model's classes")
    with _jpegs_for(jpegs, eval_items, config.runs) as jpeg_list:
        tasks = [Task(info["model"], t, config, jpeg_list, eval_items if i == 0 else [])
                 for info in infos for i, t in enumerate(config.threads)]
        with progress(total=sum(task_units(t) for t in tasks), desc="bench", quiet=quiet, unit="inf") as bar:
            records = [run_task(task, bar.update) for task in tasks]
        jpeg_desc = _describe_jpegs(jpeg_list, bool(jpegs or eval_items))
    result = {
        "format": "edgeclf.bench/1",
        "machine": machine_info(infos[0]["backend"]),
        "config": {**asdict(config), "block": BLOCK, "frame_size": list(FRAME_SIZE)},
        "jpegs": jpeg_desc,
        "models": infos,
        "results": [],
    }
    per_model: dict[str, list] = {}
    scores: dict[str, tuple] = {}
    for rec in records:
        preds = rec.pop("predictions", None)
        if preds is not None:
            per_model[rec["model"]] = preds["labels"]
            scores[rec["model"]] = (preds["class_names"], preds["scores"])
            rec["skipped_images"] = preds["skipped"]
        result["results"].append(rec)
    if eval_items:
        result["accuracy"] = score(eval_items, per_model, infos[0]["labels"], scores)
        result["accuracy"]["images"] = len(eval_items)
        result["accuracy"]["source"] = images_note
        skipped = next((r.get("skipped_images") for r in records if r.get("skipped_images")), [])
        result["accuracy"]["skipped_files"] = skipped
    return result


@contextmanager
def _jpegs_for(jpegs, eval_items, runs):
    """The files timed end to end: the given ones, else up to 50 readable images spread over ``eval_items``, else
    a synthetic JPEG. Unreadable files are left out here (they are counted by the accuracy pass)."""
    candidates = list(jpegs) if jpegs else spread([p for p, _ in eval_items], min(runs, 50) * 2)
    readable = [p for p in candidates if _readable(p)][: min(runs, 50)] if candidates else []
    if readable:
        yield readable
    elif jpegs:
        raise UsageError(f"none of the {len(candidates)} end-to-end test images can be read",
                         "pass readable JPEG files")
    else:
        with synthetic_jpeg() as path:
            yield [path]


def _readable(path: str) -> bool:
    from .preprocess import load_image

    try:
        load_image(path, (8, 8))
        return True
    except ImageError:
        return False


def _describe_jpegs(paths: list[str], real: bool) -> dict:
    from PIL import Image

    sizes = []
    for p in paths[:50]:
        try:
            with Image.open(p) as img:
                sizes.append(img.size)
        except OSError:
            continue
    mean_px = float(np.mean([w * h for w, h in sizes])) if sizes else 0.0
    return {"files": len(paths), "source": "given images" if real else f"synthetic {FRAME_SIZE[0]}x{FRAME_SIZE[1]} "
            "JPEG (quality 90)", "mean_megapixels": round(mean_px / 1e6, 3),
            "mean_bytes": int(np.mean([os.path.getsize(p) for p in paths])) if paths else 0,
            "note": "files are read from the OS page cache after the first pass"}
