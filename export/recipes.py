"""int8 recipes: the ways edgeclf can make an int8 model, and the order ``--int8`` tries them in.

``edgeclf export --int8`` converts with the first recipe of :data:`FALLBACK_ORDER`, validates it on the test split,
and stops at the first one that passes the gate (``--max-drop`` and ``--min-agreement``); every attempt is recorded
in the report. The order is fastest first (each recipe runs more of the network in float than the one before; see
benchmarks/results/int8-recipes-*.md), so the first recipe that passes is the fastest one that passes.
``--int8-recipe NAME`` forces one recipe (it is still gated).

What each recipe changes, and why it helps:

* ``full-int8``: every op integer, uint8 pixels in, uint8 probabilities out. The fastest and smallest; what NPUs
  and the Coral need. Its error piles up through 60+ quantized layers and shows near class boundaries.
* ``float-head``: the same integer backbone, but global pooling, the classifier and softmax run in float, so the
  logits are not rounded to 256 levels and scores come out as float32 (no 1/256 ties between close classes). The
  head is one 1280 x classes matrix: it costs nothing measurable.
* ``float-worst``: ``float-head`` plus the layers the QuantizationDebugger finds worst (largest RMSE/scale, see
  :mod:`.debugger`) kept in float, each behind a DEQUANTIZE/QUANTIZE pair.

All of them use TFLite builtin ops only (those with float parts need the float kernels every interpreter has), so they
load in tflite-runtime 2.14 and MediaPipe Tasks. 16x8 (int16 activations) is a separate format (``--int16x8``), not
a step of this chain: XNNPACK has no int16 kernels, so it runs on TFLite's builtin kernels, for users who want
fidelity over speed.
"""

from __future__ import annotations

from dataclasses import dataclass

from edgeclf.errors import UsageError

from .quantize import Selection

HEAD_OPS = ("MEAN", "FULLY_CONNECTED", "SOFTMAX")  # global average pooling -> classifier -> probabilities


@dataclass(frozen=True)
class Recipe:
    name: str
    summary: str
    float_head: bool = False
    float_worst: int = 0  # how many of the debugger's worst layers stay float

    @property
    def integer_only(self) -> bool:
        """Every op integer (what ``--io int8`` accelerators need)."""
        return not self.float_head and not self.float_worst

    def keep_float(self, worst_tensors: list[str]) -> Selection:
        """The quantizer's denylist for this recipe, given the debugger's worst tensors (worst first)."""
        return Selection(ops=HEAD_OPS if self.float_head else (), nodes=tuple(worst_tensors[:self.float_worst]))

    def output_type(self, io_type: str) -> str:
        return "float32" if self.float_head else io_type


RECIPES = {r.name: r for r in (
    Recipe("full-int8", "every op integer; uint8 in, uint8 out"),
    Recipe("float-head", "integer backbone; pooling, classifier and softmax in float (float32 out)", float_head=True),
    Recipe("float-worst", "float-head, plus the 8 layers with the largest quantization error in float",
           float_head=True, float_worst=8),
)}
FALLBACK_ORDER = ("full-int8", "float-head", "float-worst")
DEFAULT_RECIPE = FALLBACK_ORDER[0]


def attempt_order(forced: str | None, io_type: str) -> list[Recipe]:
    """The recipes ``--int8`` tries, in order. ``--io int8`` (integer-only hardware) keeps integer-only ones."""
    if forced is not None:
        if forced not in RECIPES:
            raise UsageError(f"--int8-recipe {forced!r} is not a recipe", f"use one of: {', '.join(RECIPES)}")
        recipe = RECIPES[forced]
        if io_type == "int8" and not recipe.integer_only:
            raise UsageError(f"--int8-recipe {forced} keeps float ops, which --io int8 (integer-only hardware) "
                             "cannot run", "use --int8-recipe full-int8, or another --io")
        return [recipe]
    return [RECIPES[name] for name in FALLBACK_ORDER if io_type != "int8" or RECIPES[name].integer_only]
