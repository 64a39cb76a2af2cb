"""int8 recipes: the ways edgeclf can make an int8 model, and the order ``--int8`` tries them in.

``edgeclf export --int8`` converts with the first recipe of :data:`FALLBACK_ORDER`, validates it on the test split,
and goes on down the order until a recipe passes the gate (``--max-drop``, ``--min-agreement``) **and** keeps the
float model's top-1 on ``--int8-target`` of the test images (99.5 %); it ships that one, or else the first that
passed the gate. Every attempt is recorded in the report. The order is fastest first (each recipe runs more of the
network in float than the one before; see benchmarks/results/int8-recipes-*.md). ``float-worst`` costs file size
(its float layers are large), so it is a rescue only: tried when no earlier recipe passed the gate at all.
``--int8-recipe NAME`` forces one recipe (it is still gated).

What each recipe changes, and why it helps:

* ``full-int8``: every op integer, uint8 pixels in, uint8 probabilities out. The fastest and smallest; what NPUs
  and the Coral need. Its error piles up through 60+ quantized layers and shows near class boundaries.
* ``float-head``: the same integer backbone, but global pooling, the classifier and softmax run in float, so the
  logits are not rounded to 256 levels and scores come out as float32 (no 1/256 ties between close classes). The
  head is one 1280 x classes matrix: it costs nothing measurable.
* ``float-light``: ``float-head`` plus the worst layers (largest RMSE/scale, see :mod:`.debugger`) that are cheap to
  keep in float: worst first, as long as their weights together stay within 2 % of the model's, so the file stays
  within about 1.5 points of full-int8's size. These are mostly depthwise convolutions (3 x 3 x channels weights).
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

from .debugger import LayerError
from .quantize import Selection

HEAD_OPS = ("MEAN", "FULLY_CONNECTED", "SOFTMAX")  # global average pooling -> classifier -> probabilities


@dataclass(frozen=True)
class Recipe:
    name: str
    summary: str
    float_head: bool = False
    float_ops: tuple[str, ...] = ()  # builtin op types kept float everywhere (besides the head's)
    float_worst: int = 0  # how many of the debugger's worst layers stay float, at most
    weight_budget: float = 0.0  # if set: only layers whose weights together stay within this share of the model's
    rescue_only: bool = False  # tried only when no earlier recipe passed the gate (not to reach --int8-target)

    @property
    def integer_only(self) -> bool:
        """Every op integer (what ``--io int8`` accelerators need)."""
        return not self.float_head and not self.float_ops and not self.float_worst

    def keep_float(self, worst: list[LayerError]) -> Selection:
        """The quantizer's denylist for this recipe, given the debugger's layers (worst first)."""
        chosen = within_budget(worst, self.weight_budget) if self.weight_budget else worst
        return Selection(ops=(HEAD_OPS if self.float_head else ()) + self.float_ops,
                         nodes=tuple(e.tensor for e in chosen[:self.float_worst]))

    def output_type(self, io_type: str) -> str:
        return "float32" if self.float_head else io_type


def within_budget(worst: list[LayerError], budget: float) -> list[LayerError]:
    """The layers of ``worst`` (worst first) whose weights, taken in that order, fit in ``budget`` of all weights;
    a layer too large for what is left is passed over and a smaller, less bad one may still fit."""
    allowed, used, chosen = budget * sum(e.weights for e in worst), 0, []
    for error in worst:
        if used + error.weights <= allowed:
            chosen.append(error)
            used += error.weights
    return chosen


RECIPES = {r.name: r for r in (
    Recipe("full-int8", "every op integer; uint8 in, uint8 out"),
    Recipe("float-head", "integer backbone; pooling, classifier and softmax in float (float32 out)", float_head=True),
    Recipe("float-light", "float-head, plus up to 8 of the worst layers whose weights fit in 2 % of the model's",
           float_head=True, float_worst=8, weight_budget=0.02),
    Recipe("float-worst", "float-head, plus the 8 layers with the largest quantization error in float",
           float_head=True, float_worst=8, rescue_only=True),
)}
FALLBACK_ORDER = ("full-int8", "float-head", "float-light", "float-worst")
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
