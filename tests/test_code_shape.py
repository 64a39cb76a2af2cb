"""Code shape: no function over 60 lines (ARCHITECTURE.md, "Code shape"). Cheap: it parses the files, runs nothing."""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
MAX_LINES = 60
GENERATED = {"export/_metadata_schema_fb.py"}  # the vendored flatbuffer schema
FOLDERS = ("edgeclf", "train", "export", "runtime", "benchmarks", "tests", "scripts")


def python_files():
    for folder in FOLDERS:
        for path in sorted((REPO / folder).rglob("*.py")):
            rel = path.relative_to(REPO).as_posix()
            if rel not in GENERATED and not any(part.startswith(".") for part in path.relative_to(REPO).parts):
                yield rel, path


def long_functions(source: str, limit: int = MAX_LINES) -> list[tuple[str, int, int]]:
    """(name, first line, length) of every function or method longer than ``limit`` lines, def line to last line."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            length = node.end_lineno - node.lineno + 1
            if length > limit:
                found.append((node.name, node.lineno, length))
    return found


def test_the_check_sees_a_long_function():
    body = "\n".join(f"    x{i} = {i}" for i in range(MAX_LINES))
    assert long_functions(f"def short():\n    pass\n\ndef long():\n{body}\n") == [("long", 4, MAX_LINES + 1)]


def test_no_function_is_over_60_lines():
    too_long = [f"{rel}:{line} {name} ({length} lines)" for rel, path in python_files()
                for name, line, length in long_functions(path.read_text(encoding="utf-8"))]
    assert not too_long, "split these into named steps:\n" + "\n".join(too_long)
