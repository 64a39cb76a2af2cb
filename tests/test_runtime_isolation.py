"""The runtime never needs TensorFlow: with `tensorflow` blocked in sys.modules (so any import of it fails), a fresh
interpreter imports edgeclf.runtime, the predict CLI module, and classifies an image."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

from tests.fixtures.images import synthetic_image
from tests.test_runtime_models import model_copy, tiny_models  # noqa: F401

BLOCKED_RUN = textwrap.dedent("""
    import json, sys
    sys.modules["tensorflow"] = None   # `import tensorflow` now raises ImportError
    sys.modules["keras"] = None
    import edgeclf.runtime
    from edgeclf.runtime import Classifier
    import edgeclf.cli.predict, edgeclf.cli.camera, edgeclf.runtime.sources, edgeclf.runtime.latency
    clf = Classifier(sys.argv[1])
    preds = clf.classify(sys.argv[2], top_k=1)
    loaded = sorted(m for m in sys.modules if m.split(".")[0] in ("tensorflow", "keras", "tf_keras")
                    and sys.modules[m] is not None)
    print(json.dumps({"backend": clf.backend, "label": preds[0].label, "loaded": loaded}))
""")


def run_blocked(*args, env=None):
    return subprocess.run([sys.executable, "-c", BLOCKED_RUN, *map(str, args)], capture_output=True, text=True,
                          env=env, timeout=120)


def test_import_and_predict_with_tensorflow_blocked(tiny_models, tmp_path):
    model = model_copy(tiny_models, "int8", tmp_path)
    synthetic_image(1, 42).save(tmp_path / "blue.png")
    proc = run_blocked(model, tmp_path / "blue.png")
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["loaded"] == []
    assert result["backend"].startswith(("ai_edge_litert", "tflite_runtime"))
    assert result["label"] == "blue"


def test_forcing_the_tensorflow_backend_when_it_is_blocked_names_the_package(tiny_models, tmp_path):
    import os

    model = model_copy(tiny_models, "int8", tmp_path)
    synthetic_image(1, 42).save(tmp_path / "blue.png")
    proc = run_blocked(model, tmp_path / "blue.png", env={**os.environ, "EDGECLF_INTERPRETER": "tensorflow"})
    assert proc.returncode != 0
    assert "pip install tensorflow" in proc.stderr
