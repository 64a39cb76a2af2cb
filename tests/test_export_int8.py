"""int8 recipes, the fallback chain and the QuantizationDebugger report, on the tiny runs (fast) and the real run.

Unit level: the two-step path (calibrate, then quantize) gives plain int8 exactly; each recipe keeps in float what
it says (checked on the operators and tensor types of the file, not on our own bookkeeping); the debugger's layers
are tensors and operators that exist in the quantized model; ``--int8-recipe`` forces one recipe; a gate no recipe
can pass tries every recipe, lists every attempt and exits 1.

End to end (real cats-vs-dogs run): a model made to fail plain int8 (per-tensor weights, as the gate test does)
goes down the chain, and every attempt is in the report with its numbers.
"""

from __future__ import annotations

import json
import re
import zipfile

import numpy as np
import pytest
from click.testing import CliRunner

from edgeclf.cli import cli
from edgeclf.contracts import MODEL_CONTRACT_FILE
from edgeclf.export.recipes import FALLBACK_ORDER, RECIPES
from edgeclf.train.model import BASE_LAYER

from tests.fixtures.models import run_export


def tensor_types(data: bytes) -> dict:
    from edgeclf.export.convert import tensor_io

    found = tensor_io(data)
    return {"input": found["input"]["dtype"], "output": found["output"]["dtype"]}


def tensor_names(data: bytes) -> set[str]:
    from tensorflow.lite.python import schema_py_generated as fb

    graph = fb.Model.GetRootAsModel(data, 0).Subgraphs(0)
    return {graph.Tensors(i).Name().decode() for i in range(graph.TensorsLength())}


@pytest.fixture(scope="module")
def builder(tiny_run):
    """An Int8Builder of the tiny run, calibrated on 8 training images (shared by the unit tests here)."""
    from edgeclf.export.calibration import load_calibration
    from edgeclf.export.convert import Converter, input_size, load_keras_model
    from edgeclf.export.int8 import Int8Builder
    from edgeclf.manifest import load_splits

    model = load_keras_model(tiny_run / "model.keras")
    with Converter(model) as converter:
        images = load_calibration(load_splits(tiny_run), input_size(model), 8, quiet=True).images
        yield Int8Builder(converter, images)


def outputs(data: bytes, images: np.ndarray) -> np.ndarray:
    from edgeclf.runtime.interpreter import load_interpreter

    interpreter, _ = load_interpreter("<bytes>", model_content=data)
    rows = []
    for x in images:
        interpreter.set_tensor(interpreter.get_input_details()[0]["index"], x[np.newaxis])
        interpreter.invoke()
        rows.append(interpreter.get_tensor(interpreter.get_output_details()[0]["index"])[0].copy())
    return np.stack(rows)


def test_calibrate_then_quantize_is_the_converters_int8(builder):
    """The module docstring's claim: same options, same model as TFLiteConverter.convert() (same operators and
    quantized weights, so bit-identical outputs; only the flatbuffer's layout differs)."""
    import tensorflow as tf

    from edgeclf.export.convert import _pin_input_range, op_set, tensor_io
    from edgeclf.export.quantize import representative

    converter = builder.converter.tflite_converter("float32")
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = converter.inference_output_type = tf.uint8
    converter.representative_dataset = representative(_pin_input_range(builder.calibration))
    direct = builder.converter.quietly(lambda: bytes(converter.convert()))
    ours = builder.build(RECIPES["full-int8"])
    assert op_set(ours) == op_set(direct) and tensor_io(ours) == tensor_io(direct)
    np.testing.assert_array_equal(outputs(ours, builder.calibration), outputs(direct, builder.calibration))


def test_each_recipe_keeps_in_float_what_it_says(builder):
    from edgeclf.export.quantize import operator_names

    plain, head, light, worst = (builder.build(RECIPES[name])
                                 for name in ("full-int8", "float-head", "float-light", "float-worst"))
    assert tensor_types(plain) == {"input": "uint8", "output": "uint8"}
    assert "DEQUANTIZE" not in operator_names(plain)  # integer only
    assert tensor_types(head) == {"input": "uint8", "output": "float32"}
    ops = operator_names(head)
    # the integer backbone hands over to float once, right before pooling: DEQUANTIZE, MEAN, FC, SOFTMAX last
    assert ops.count("DEQUANTIZE") == 1 and ops[-4:] == ["DEQUANTIZE", "MEAN", "FULLY_CONNECTED", "SOFTMAX"]
    assert operator_names(worst).count("DEQUANTIZE") > 1  # and the worst layers get their own float islands
    assert operator_names(light).count("DEQUANTIZE") > 1 and tensor_types(light)["output"] == "float32"
    assert len(worst) > len(head)  # their float weights are stored too


def test_the_cli_offers_exactly_the_chain():
    from edgeclf.cli.export import RECIPE_NAMES

    assert RECIPE_NAMES == FALLBACK_ORDER and set(RECIPES) == set(FALLBACK_ORDER)


@pytest.mark.parametrize("agreements, target, shipped, tried", [
    ({"full-int8": 0.992, "float-head": 0.992, "float-light": 0.998}, 0.995, "float-light",
     ["full-int8", "float-head", "float-light"]),  # the default cats run's numbers: the target picks float-light
    ({"full-int8": 0.992, "float-head": 0.992, "float-light": 0.993}, 0.995, "full-int8",
     ["full-int8", "float-head", "float-light"]),  # nothing reaches it: the fastest that passed; float-worst not tried
    ({"full-int8": 0.997}, 0.995, "full-int8", ["full-int8"]),  # plain int8 already there: nothing else is built
    ({"full-int8": 0.992}, 0.0, "full-int8", ["full-int8"]),  # target 0: the first that passes, as before
    ({"full-int8": 0.98, "float-head": 0.985, "float-light": 0.987, "float-worst": 0.991}, 0.995, "float-worst",
     list(FALLBACK_ORDER)),  # the gate (99 %) failed until float-worst: the rescue runs
])
def test_int8_goes_on_to_the_target_and_ships_the_right_attempt(agreements, target, shipped, tried):
    from edgeclf.export.int8 import first_passing

    def validate(recipe):
        agreement = agreements[recipe.name]
        return {"recipe": recipe.name, "agreement": agreement, "accuracy": 0.99, "drop_points": 0.0,
                "gate_failures": [] if agreement >= 0.99 else ["agreement"]}

    row = first_passing([RECIPES[name] for name in FALLBACK_ORDER], validate, target=target, quiet=True)
    assert row["recipe"] == shipped and [a["recipe"] for a in row["attempts"]] == tried
    assert [a["meets_target"] for a in row["attempts"]] == [agreements[name] >= target for name in tried]


def test_an_int8_short_of_the_target_says_so_and_names_the_fidelity_option(capsys):
    """Shipping below --int8-target is allowed (the gate passed), but never silent: one line names float16."""
    from edgeclf.export.int8 import first_passing

    def validate(recipe):
        return {"recipe": recipe.name, "agreement": 0.992, "accuracy": 0.99, "drop_points": 0.0, "gate_failures": []}

    first_passing([RECIPES[name] for name in FALLBACK_ORDER], validate, target=0.995)
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert "ships recipe full-int8" in last and "99.20 %" in last and "--int8-target 99.5 %" in last
    assert "--float16" in last
    first_passing([RECIPES["full-int8"]], validate, target=0.99)  # the target met: no such line
    assert "--float16" not in capsys.readouterr().err


def test_float_light_keeps_worst_layers_only_within_its_weight_budget():
    """Worst first; a layer too big for what is left is passed over, a smaller less-bad one still fits."""
    from edgeclf.export.debugger import LayerError
    from edgeclf.export.recipes import within_budget

    def layer(name, weights):
        return LayerError(tensor=name, layer=name, op="CONV_2D", position=0, rmse_over_scale=1.0, rmse=0.1,
                          max_abs_error=0.1, scale=0.1, weights=weights)

    worst = [layer("big", 900), layer("small", 30), layer("none", 0), layer("medium", 60), layer("rest", 10)]
    assert [e.tensor for e in within_budget(worst, 0.1)] == ["small", "none", "medium", "rest"]  # 100 of 1000
    assert [e.tensor for e in within_budget(worst, 0.05)] == ["small", "none", "rest"]
    recipe = RECIPES["float-light"]
    chosen = recipe.keep_float(worst)
    assert chosen.ops and set(chosen.nodes) <= {"small", "none", "medium", "rest"}


def test_float_light_stores_few_float_weights(builder):
    """On the file itself: float-light's extra float32 weights stay within 2 % of all weights, while float-worst's
    (no budget) may not; both keep the worst cheap layers' outputs as float tensors."""
    from tensorflow.lite.python import schema_py_generated as fb

    def float_weight_elements(data: bytes) -> tuple[int, int]:
        model = fb.Model.GetRootAsModel(data, 0)
        graph = model.Subgraphs(0)
        floats = total = 0
        for i in range(graph.TensorsLength()):
            t = graph.Tensors(i)
            if model.Buffers(t.Buffer()).DataLength() == 0:
                continue  # an activation, not a stored weight
            n = int(np.prod(t.ShapeAsNumpy())) if t.ShapeLength() else 1
            total += n
            floats += n if t.Type() == fb.TensorType.FLOAT32 else 0
        return floats, total

    head_floats, total = float_weight_elements(builder.build(RECIPES["float-head"]))
    light_floats, _ = float_weight_elements(builder.build(RECIPES["float-light"]))
    errors = builder.layer_errors()
    assert light_floats > head_floats  # some layers really are float
    assert light_floats - head_floats <= 0.02 * sum(e.weights for e in errors) * 1.05  # (bias/shape rounding)
    assert any(e.weights for e in errors) and all(e.weights == 0 for e in errors if e.op == "ADD")


def test_the_debugger_names_real_layers_of_the_model(builder):
    from edgeclf.export.quantize import operator_names

    errors = builder.layer_errors()
    plain = builder.build(RECIPES["full-int8"])
    names, ops = tensor_names(plain), operator_names(plain)
    assert len(errors) >= 50  # MobileNetV2: ~17 blocks of 3 convolutions, adds, pooling, head
    assert [e.rmse_over_scale for e in errors] == sorted((e.rmse_over_scale for e in errors), reverse=True)
    for e in errors:
        assert e.tensor in names, e.tensor  # a tensor of the shipped model, not a debug-model artefact
        assert e.op in set(ops) and e.rmse_over_scale >= 0 and e.scale > 0
    assert {"CONV_2D", "DEPTHWISE_CONV_2D"} <= {e.op for e in errors}
    keras_layers = {layer.name for layer in builder.converter.model.layers}
    keras_layers |= {layer.name for layer in builder.converter.model.get_layer(BASE_LAYER).layers}
    unknown = {e.layer for e in errors} - keras_layers
    assert not unknown, unknown  # each is a layer of the Keras model the user trained
    assert any(e.layer.startswith("block_") for e in errors)  # the MobileNetV2 blocks
    assert builder.converter.model.layers[-1].name in {e.layer for e in errors}  # and the classifier


def test_int8_recipe_forces_one_recipe_and_the_file_says_which(tiny_run, tmp_path):
    out = tmp_path / "forced"
    result = CliRunner().invoke(cli, ["export", str(tiny_run), "--int8", "--int8-recipe", "float-head",
                                      "--max-drop", "100", "--min-agreement", "0", "--calibration-samples", "8",
                                      "--out", str(out)])
    assert result.exit_code == 0, result.output
    report = json.loads((out / "report.json").read_text())
    row = report["models"][0]
    assert row["recipe"] == "float-head" and [a["recipe"] for a in row["attempts"]] == ["float-head"]
    assert row["output"]["dtype"] == "float32"
    with zipfile.ZipFile(out / "model_int8.tflite") as zf:
        assert json.loads(zf.read(MODEL_CONTRACT_FILE))["int8_recipe"] == "float-head"
    md = (out / "report.md").read_text()
    assert "int8 recipes tried" in md and "Where int8 loses precision" in md
    assert f"`{report['quantization_debugger']['worst'][0]['layer']}`" in md


def test_a_gate_no_recipe_passes_tries_every_recipe_and_lists_them(tiny_run, tmp_path):
    out = tmp_path / "hopeless"
    result = CliRunner().invoke(cli, ["export", str(tiny_run), "--int8", "--min-agreement", "101",
                                      "--calibration-samples", "8", "--out", str(out)])
    assert result.exit_code == 1, result.output
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in result.output
    assert re.search(r"model_int8\.tflite \(int8, recipe [\w-]+\): top-1 agrees with float on [\d.]+ %", errors[0])
    report = json.loads((out / "report.json").read_text())
    attempts = report["models"][0]["attempts"]
    assert [a["recipe"] for a in attempts] == list(FALLBACK_ORDER)
    assert all(a["gate_failures"] and a["latency_p50_ms"] > 0 for a in attempts)
    assert report["status"] == "failed" and (out / "model_int8.tflite").is_file()
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no attempt files left behind
    md = (out / "report.md").read_text()
    assert all(f"| {name}" in md for name in FALLBACK_ORDER)


@pytest.mark.parametrize("args, needle", [
    (["--float32", "--int8-recipe", "float-head"], "--int8-recipe only applies to --int8"),
    (["--int8", "--int8-recipe", "float-head", "--io", "int8"], "keeps float ops"),
    (["--int8", "--min-agreement", "nan"], "--min-agreement must be a number"),
])
def test_recipe_options_are_checked_before_any_work(tiny_run, tmp_path, args, needle):
    out = tmp_path / "never"
    result = CliRunner().invoke(cli, ["export", str(tiny_run), *args, "--out", str(out)])
    assert result.exit_code == 2, result.output
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and needle in errors[0] and "Traceback" not in result.output
    assert not out.exists()


def test_io_int8_tries_only_integer_recipes():
    from edgeclf.errors import UsageError
    from edgeclf.export.recipes import attempt_order

    assert [r.name for r in attempt_order(None, "int8")] == ["full-int8"]
    with pytest.raises(UsageError, match="--io int8"):
        attempt_order("float-head", "int8")


@pytest.mark.e2e
@pytest.mark.slow
def test_the_fallback_fires_when_plain_int8_fails_on_the_real_run(real_run, tmp_path):
    """Per-tensor weights wreck plain int8 (97.8 % -> 69.2 % on this split); the chain must move on to the next
    recipes, record each attempt with real numbers, and ship the best one."""
    report = run_export(real_run, tmp_path / "degraded", ("int8",), per_channel=False)
    row = report["models"][0]
    attempts = {a["recipe"]: a for a in row["attempts"]}
    assert list(attempts)[0] == "full-int8" and len(attempts) >= 2  # it fired
    assert attempts["full-int8"]["gate_failures"] and attempts["full-int8"]["drop_points"] > 5.0
    later = [a for name, a in attempts.items() if name != "full-int8"]
    if report["status"] == "passed":  # rescued: the shipped recipe is the first passing one, and passes
        assert row["recipe"] == list(attempts)[-1] and not row["gate_failures"]
    else:  # nothing passed: every recipe was tried, the best one is kept and marked failed
        assert list(attempts) == list(FALLBACK_ORDER) and row["status"] == "failed"
    assert max(a["agreement"] for a in later) > attempts["full-int8"]["agreement"]  # later recipes do better
    assert np.isclose(row["agreement"], max(a["agreement"] for a in attempts.values()) if report["status"] ==
                      "failed" else attempts[row["recipe"]]["agreement"])


@pytest.mark.slow
def test_every_int8_variant_runs_in_old_and_foreign_consumers_with_the_claimed_agreement(
        tiny_pretrained_run, tflite214_python, mediapipe_python, tmp_path):
    """Each recipe's file and int16x8, as exported, in tflite-runtime 2.14 (default and builtin kernels) and
    MediaPipe Tasks: same top-1 as edgeclf's runtime, so the agreement with float the report claims holds there."""
    from benchmarks.int8_recipes import consumers, float_top1, models_of, test_images
    from edgeclf.manifest import load_splits

    out = tmp_path / "every"
    report = run_export(tiny_pretrained_run, out, ("float32", "int8", "int16x8"), keep_attempts=True,
                        min_agreement=101.0, calibration_samples=16)  # an unreachable gate: every recipe is tried
    models = models_of(report, out)
    assert set(models) == {"float32", "int16x8", *FALLBACK_ORDER}
    labels = list(report["reference"]["per_class"])
    paths = [e.path for e in load_splits(tiny_pretrained_run).files("test")]
    images = test_images(tiny_pretrained_run, (96, 96))
    reference = float_top1(models["float32"], labels, paths, images)
    arrays = tmp_path / "images.npy"
    np.save(arrays, images)
    for name, model in models.items():
        if name == "float32":
            continue
        seen = consumers(model["path"], images, arrays, reference)
        assert any(k.startswith("mediapipe") for k in seen) and len(seen) == 3, seen
        for consumer, numbers in seen.items():
            assert numbers["agreement_with_edgeclf"] == 1.0, (name, consumer, numbers)
            assert numbers["agreement_with_float"] == pytest.approx(model["agreement"], abs=1e-4), (name, consumer)


def test_fidelity_study_names_each_changed_answer_with_its_float_margin():
    """benchmarks.int8_fidelity: a changed top-1 is listed with the float model's top-1 minus top-2 margin, agreement
    counts only changed answers, and the shift is the largest per-class move (not the top-1's)."""
    from benchmarks.int8_fidelity import compare, margins

    reference = np.array([[0.51, 0.49, 0.0], [0.9, 0.05, 0.05], [0.2, 0.3, 0.5], [0.6, 0.1, 0.3]])
    quantized = np.array([[0.49, 0.51, 0.0], [0.9, 0.05, 0.05], [0.2, 0.3, 0.5], [0.6, 0.3, 0.1]])
    assert margins(reference) == pytest.approx([0.02, 0.85, 0.2, 0.3])
    found = compare(quantized, reference, ["a.jpg", "b.jpg", "c.jpg", "d.jpg"])
    assert found["changed"] == 1 and found["agreement"] == 0.75
    assert found["changes"] == [{"path": "a.jpg", "float_margin": 0.02}] and found["max_changed_margin"] == 0.02
    assert found["p95_shift"] == pytest.approx(np.percentile([0.02, 0.0, 0.0, 0.2], 95), abs=1e-4)
