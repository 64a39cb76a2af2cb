"""Console output shared by every command: progress bars, tables, JSON for scripts.

Human output goes to stderr (progress, tables, notes) unless it *is* the result; with ``--json`` stdout carries
only JSON, so ``edgeclf ... --json | jq`` always works.
"""

from __future__ import annotations

import json
import sys
from typing import Iterable, Sequence

import click


def progress(iterable: Iterable | None = None, *, total: int | None = None, desc: str = "", quiet: bool = False,
             unit: str = "it"):
    """A tqdm progress bar on stderr (never stdout, which may carry --json); silent when ``quiet``."""
    from tqdm.auto import tqdm

    return tqdm(iterable, total=total, desc=desc, unit=unit, disable=quiet, file=sys.stderr, dynamic_ncols=True,
                leave=False)


def emit_json(obj, *, lines: bool = False) -> None:
    """Print one JSON document (or one JSON line) to stdout."""
    text = json.dumps(obj, default=_json_default, separators=(",", ":") if lines else None,
                      indent=None if lines else 2)
    click.echo(text)


def _json_default(value):
    try:
        import numpy as np

        if isinstance(value, np.generic):
            return value.item()
        if isinstance(value, np.ndarray):
            return value.tolist()
    except ImportError:  # pragma: no cover - numpy is a base dependency
        pass
    return str(value)


def note(message: str, *, quiet: bool = False) -> None:
    """A human note on stderr."""
    if not quiet:
        click.echo(message, err=True)


def format_table(rows: Sequence[Sequence], headers: Sequence[str], align: str | None = None) -> str:
    """A plain aligned text table (also valid Markdown), e.g. for summaries and benchmark results."""
    cells = [[str(h) for h in headers]] + [["" if c is None else str(c) for c in r] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    align = align or "l" + "r" * (len(headers) - 1)

    def fmt(row):
        return "| " + " | ".join(c.ljust(w) if a == "l" else c.rjust(w) for c, w, a in zip(row, widths, align)) + " |"

    sep = "|" + "|".join(("-" * (w + 1) + ":") if a == "r" else ("-" * (w + 2)) for w, a in zip(widths, align)) + "|"
    return "\n".join([fmt(cells[0]), sep] + [fmt(r) for r in cells[1:]])
