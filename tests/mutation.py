"""Fault injection for the reliability tests: damage files byte by byte, run the real CLI on each damaged copy in a
child process (so a crash is observed and counted, never fatal to pytest), and sort the outcomes.

The child (``python -m tests.mutation ARGS_JSON``) reads one file name per line on stdin and, for each, writes a
``begin`` line and then a result line to its results file, flushed, so when it dies by a signal or hangs the parent
knows which file did it and starts a new child on the rest.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
KINDS = ("byte", "bit", "word", "zero", "truncate")
HOSTILE_WORDS = (0x7FFFFFFF, 0xFFFFFFFF, 0x80000000, 0x69000000, 0x0000FFFF, 1)


def mutate(data: bytes, rng: np.random.Generator, kind: str) -> bytes:
    """A copy of ``data`` with one fault of ``kind``; it always differs from ``data``."""
    out = bytearray(data)
    pos = int(rng.integers(0, len(data)))
    if kind == "byte":
        out[pos] ^= int(rng.integers(1, 256))
    elif kind == "bit":
        out[pos] ^= 1 << int(rng.integers(0, 8))
    elif kind == "word":  # offsets and lengths are 32-bit: the values that send readers outside the file
        pos = min(pos - pos % 4, len(data) - 4)
        word = int(rng.choice(HOSTILE_WORDS)) if rng.random() < 0.5 else int(rng.integers(0, 1 << 32))
        new = word.to_bytes(4, "little")
        out[pos:pos + 4] = new if new != data[pos:pos + 4] else bytes(b ^ 0xFF for b in new)
    elif kind == "zero":
        span = int(rng.integers(4, 256))
        out[pos:pos + span] = bytes(len(out[pos:pos + span]))
        if out == data:
            out[pos] = 0xA5
    elif kind == "truncate":
        del out[max(1, pos):]
    else:
        raise ValueError(kind)
    return bytes(out)


def write_mutants(source: Path, dest: Path, n: int, seed: int = 0, suffix: str | None = None) -> list[Path]:
    """``n`` damaged copies of ``source`` in ``dest``, cycling through every kind of fault."""
    data = source.read_bytes()
    rng = np.random.default_rng(seed)
    dest.mkdir(parents=True, exist_ok=True)
    suffix = suffix or source.suffix
    paths = []
    for i in range(n):
        kind = KINDS[i % len(KINDS)]
        path = dest / f"m{i:04d}-{kind}{suffix}"
        path.write_bytes(mutate(data, rng, kind))
        paths.append(path)
    return paths


def run_cli_each(files: list[Path], argv: list[str], *, timeout: float = 300.0) -> list[dict]:
    """Run ``edgeclf argv`` once per file ({} in argv is replaced by the file) in child processes; one result dict
    per file: {"file", "exit", "stdout", "stderr", "uncaught"} or {"file", "signal"} / {"file", "hang"}."""
    results: dict[str, dict] = {}
    todo = [str(f) for f in files]
    while todo:
        log = Path(todo[0]).parent / f".results-{len(results)}.jsonl"
        env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
        stderr = ""
        try:
            done = subprocess.run([sys.executable, "-m", "tests.mutation", json.dumps({"argv": argv, "log": str(log)})],
                                  input="\n".join(todo) + "\n", text=True, capture_output=True, timeout=timeout,
                                  cwd=REPO_ROOT, env=env)
            rc, stderr = done.returncode, done.stderr
        except subprocess.TimeoutExpired:
            rc = None
        begun = None
        for line in log.read_text().splitlines() if log.exists() else []:
            record = json.loads(line)
            if "begin" in record:
                begun = record["begin"]
            else:
                results[record["file"]] = record
                begun = None
        if begun is None and rc != 0:
            raise RuntimeError(f"mutation child failed outside a file (rc {rc}): {stderr[-2000:]}")
        if begun is not None:
            results[begun] = {"file": begun, "signal": -rc} if rc is not None and rc < 0 else \
                {"file": begun, "hang" if rc is None else "died": rc}
        todo = [f for f in todo if f not in results]
    return [results[str(f)] for f in files]


def _child(spec: dict) -> None:
    from click.testing import CliRunner

    from edgeclf.cli import cli

    runner = CliRunner()
    with open(spec["log"], "a", encoding="utf-8") as log:
        for name in sys.stdin.read().splitlines():
            log.write(json.dumps({"begin": name}) + "\n")
            log.flush()
            result = runner.invoke(cli, [name if a == "{}" else a for a in spec["argv"]])
            uncaught = None
            if result.exception is not None and not isinstance(result.exception, SystemExit):
                uncaught = repr(result.exception)
            log.write(json.dumps({"file": name, "exit": result.exit_code, "stdout": result.stdout,
                                  "stderr": result.stderr, "uncaught": uncaught}) + "\n")
            log.flush()


if __name__ == "__main__":
    _child(json.loads(sys.argv[1]))
