"""Classify a list of files and write one result per file: a text line, a JSON line or a CSV row.

What ``edgeclf predict`` does between parsing its options and choosing its exit code. Unreadable files are written
as errors in the chosen format, reported on stderr, counted and skipped; they never stop the batch.
"""

from __future__ import annotations

import csv
import sys
import threading
from dataclasses import dataclass, field
from typing import Callable, Sequence

from edgeclf.errors import ImageError

from .classifier import UNKNOWN, Prediction, answer

Echo = Callable[[str], None]


@dataclass
class Summary:
    classified: int = 0
    failed: list[ImageError] = field(default_factory=list)
    interrupted: bool = False

    def line(self) -> str:
        text = f"{self.classified} image{'s' if self.classified != 1 else ''} classified"
        if self.failed:
            text += f", {len(self.failed)} skipped (unreadable, listed above)"
        if self.interrupted:
            text += "; interrupted, the rest were not classified"
        return text


class TextWriter:
    """``path<TAB>label score  label score ...``; below the threshold: ``unknown (below T: ...)``."""

    def __init__(self, echo: Echo, threshold: float | None):
        self.echo, self.threshold = echo, threshold

    def result(self, path: str, preds: list[Prediction], best: Prediction) -> None:
        shown = "  ".join(f"{p.label} {p.score:.3f}" for p in preds)
        if best.label == UNKNOWN:
            shown = f"{UNKNOWN} (below {self.threshold:g}: {shown})"
        self.echo(f"{path}\t{shown}")

    def error(self, path: str, reason: str) -> None:
        pass  # reported on stderr with the other skipped files


class JsonLinesWriter:
    """One JSON object per line: ``{"path", "label", "score", "top_k": [...]}`` or ``{"path", "error"}``."""

    def __init__(self):
        from edgeclf.console import emit_json

        self.emit = emit_json

    def result(self, path: str, preds: list[Prediction], best: Prediction) -> None:
        self.emit({"path": path, "label": best.label, "score": round(best.score, 6),
                   "top_k": [{"label": p.label, "index": p.index, "score": round(p.score, 6)} for p in preds]},
                  lines=True)

    def error(self, path: str, reason: str) -> None:
        self.emit({"path": path, "error": reason}, lines=True)


class CsvWriter:
    """``path,label,score[,label_1,score_1,...],error`` with ``ranks`` label/score pairs, header first."""

    def __init__(self, ranks: int, stream=None):
        self.ranks = ranks
        self.writer = csv.writer(stream or sys.stdout, lineterminator="\n")
        self.header = ["path", "label", "score"]
        for rank in range(1, ranks + 1):
            self.header += [f"label_{rank}", f"score_{rank}"]
        self.header.append("error")
        self.writer.writerow(self.header)

    def result(self, path: str, preds: list[Prediction], best: Prediction) -> None:
        row = [path, best.label, f"{best.score:.6f}"]
        for p in preds[: self.ranks]:
            row += [p.label, f"{p.score:.6f}"]
        self.writer.writerow(row + [""] * (len(self.header) - len(row)))

    def error(self, path: str, reason: str) -> None:
        self.writer.writerow([path] + [""] * (len(self.header) - 2) + [reason])


def make_writer(kind: str, *, echo: Echo, top_k: int, threshold: float | None, num_labels: int):
    """``kind``: "text", "json" or "csv". CSV shows the ranked labels only when more than the top one matters."""
    if kind == "json":
        return JsonLinesWriter()
    if kind == "csv":
        return CsvWriter(min(top_k, num_labels) if (top_k > 1 or threshold is not None) else 0)
    return TextWriter(echo, threshold)


def predict_files(clf, items: Sequence, writer, *, top_k: int, threshold: float | None, bar, report_skipped: bool,
                  stop: threading.Event | None = None) -> Summary:
    """Classify ``items`` (from :func:`.classifier.expand_paths`), write each result, tick ``bar`` once per item.
    ``stop`` (Ctrl-C, see runtime/signals.py) ends the batch after the image in hand, every written line whole."""
    summary = Summary()
    for path, preds in clf.classify_many(items, top_k=top_k):
        if stop is not None and stop.is_set():
            summary.interrupted = True
            break
        bar.update(1)
        if isinstance(preds, ImageError):
            summary.failed.append(preds)
            writer.error(str(path), preds.reason)
            if report_skipped:
                bar.write(f"skipped: {preds}", file=sys.stderr)
            continue
        summary.classified += 1
        writer.result(str(path), preds, answer(preds, threshold))
    return summary
