"""Accuracy-aware int8: calibrate once, find the worst layers once, then try recipes until one passes the gate.

``Int8Builder`` owns the expensive shared steps (the calibrated float model, the QuantizationDebugger's layer list)
and turns a :class:`~.recipes.Recipe` into .tflite bytes. :func:`first_passing` walks the recipes in order with a
caller-supplied ``validate(data, recipe) -> row`` and returns the shipped row with every attempt recorded.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from edgeclf.console import note

from . import debugger, quantize
from .convert import check_input_quantization
from .recipes import Recipe


class Int8Builder:
    """int8 models of one Keras model (through ``converter``, a :class:`~.convert.Converter`) from one calibration
    set; the calibrated model and the debugger's findings are computed on first use and shared by every recipe."""

    def __init__(self, converter, calibration: np.ndarray, *, io_type: str = "uint8", per_channel: bool = True):
        self.converter = converter
        self.calibration = calibration
        self.io_type = io_type
        self.per_channel = per_channel
        self._calibrated: bytes | None = None
        self._errors: list[debugger.LayerError] | None = None

    def calibrated(self) -> bytes:
        if self._calibrated is None:
            self._calibrated = self.converter.calibrated(self.calibration)
        return self._calibrated

    def layer_errors(self) -> list[debugger.LayerError]:
        """The debugger's per-layer error of plain full-integer int8, worst first."""
        if self._errors is None:
            self._errors = self.converter.quietly(debugger.layer_errors, self.calibrated(), self.calibration,
                                                  model=self.converter.model,
                                                  per_channel=self.per_channel)
        return self._errors

    def debugger_summary(self) -> dict:
        """The report's ``quantization_debugger`` section."""
        used = min(len(self.calibration), debugger.DEBUG_SAMPLES)
        return debugger.summary(self.layer_errors(), used)

    def build(self, recipe: Recipe) -> bytes:
        worst = self.layer_errors() if recipe.float_worst else []
        data = self.converter.quietly(
            quantize.quantize, self.calibrated(), io_type=self.io_type, output_type=recipe.output_type(self.io_type),
            keep_float=recipe.keep_float(worst), per_channel=self.per_channel)
        check_input_quantization(data, self.io_type)
        return data


def first_passing(recipes: list[Recipe], validate: Callable[[Recipe], dict], *, target: float = 0.0,
                  quiet: bool = False) -> dict:
    """Try ``recipes`` in order; ``validate(recipe)`` converts, evaluates and gates one, returning its report row
    (``row["gate_failures"]`` empty when it passes). Stops at the first row that passes and agrees with float on at
    least ``target`` (a fraction); a ``rescue_only`` recipe is tried only while nothing has passed. Ships that row,
    else the first that passed, else the attempt with the best agreement; ``row["attempts"]`` lists every attempt."""
    def passed(row: dict) -> bool:
        return not row["gate_failures"]

    def meets(row: dict) -> bool:
        return passed(row) and row["agreement"] >= target

    rows: list[dict] = []
    for recipe in recipes:
        if recipe.rescue_only and any(map(passed, rows)):
            break
        rows.append(validate(recipe))
        if meets(rows[-1]):
            break
        if recipe is not recipes[-1]:
            row = rows[-1]
            why = "; ".join(row["gate_failures"]) or (f"passes the gate, but keeps float's top-1 on only "
                                                      f"{row['agreement'] * 100:.2f} % (--int8-target "
                                                      f"{target * 100:g} %)")
            note(f"int8 recipe {recipe.name}: {why}; trying the next recipe", quiet=quiet)
    shipped = next(filter(meets, rows), None) or next(filter(passed, rows), None)
    if shipped is not None and not meets(shipped) and target:
        note(f"int8 ships recipe {shipped['recipe']}, which keeps float's top-1 on "
             f"{shipped['agreement'] * 100:.2f} % of the test images, short of --int8-target {target * 100:g} %; "
             "for fidelity over speed, export --float16 as well (half of float32's size, its answers closest to "
             "float's)", quiet=quiet)
    shipped = shipped or max(rows, key=lambda r: (r["agreement"], r["accuracy"]))
    shipped["attempts"] = [attempt_summary(r, target) for r in rows]
    return shipped


def attempt_summary(row: dict, target: float = 0.0) -> dict:
    return {**{key: row.get(key) for key in ("recipe", "accuracy", "agreement", "drop_points", "latency_p50_ms",
                                             "size_bytes", "gate_failures")},
            "meets_target": row["agreement"] >= target}
