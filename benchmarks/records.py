"""Where a benchmark's record goes: ``results/<kind>-<machine>-<date>.json`` and ``.md``, side by side."""

from __future__ import annotations

import json
from pathlib import Path

from edgeclf.runtime.machine import machine_slug

RESULTS = Path(__file__).resolve().parent / "results"


def write_record(kind: str, result: dict, markdown: str, machine: str | None = None) -> Path:
    """Write ``result`` (which holds ``machine_info()`` under "machine") and its Markdown, print the Markdown, and
    return the path without suffix. ``machine`` overrides the machine's slug in the file names."""
    info = result["machine"]
    stem = RESULTS / f"{kind}-{machine or machine_slug(info)}-{info['recorded'][:10]}"
    RESULTS.mkdir(exist_ok=True)
    Path(f"{stem}.json").write_text(json.dumps(result, indent=2) + "\n")
    Path(f"{stem}.md").write_text(markdown)
    print(markdown)
    return stem
