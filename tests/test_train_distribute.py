"""The multi-GPU path (tf.distribute.MirroredStrategy) on any machine: two logical CPU devices stand in for two GPUs.

TensorFlow fixes its logical devices when it starts, so the run happens in a fresh interpreter."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.fixtures.images import make_dataset

REPO = Path(__file__).resolve().parents[1]

SCRIPT = textwrap.dedent("""
    import json, sys
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    from edgeclf.train.run import TrainOptions, train
    opts = TrainOptions(data=sys.argv[1], out=sys.argv[2], weights="none", alpha=0.35, image_size=64, epochs=3,
                        lr=5e-3, fine_tune_epochs=1, fine_tune_lr=1e-4, batch_size=4, patience=0, seed=0)
    print(json.dumps(train(opts, quiet=True)))
""")


@pytest.mark.slow
@pytest.mark.parametrize("engine", ["keras", "litert"])
def test_mirrored_strategy_trains_on_two_logical_devices(tmp_path, engine):
    """Phase 1's features come from Keras (few images) or LiteRT (many images; forced here) under the strategy."""
    data = make_dataset(tmp_path / "data", per_class=12)
    env = {**os.environ, "EDGECLF_DEVICES": "/cpu:0,/cpu:1", "TF_CPP_MIN_LOG_LEVEL": "2", "EDGECLF_FEATURES": engine}
    proc = subprocess.run([sys.executable, "-c", SCRIPT, str(data), str(tmp_path / "run")], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    manifest = json.loads((tmp_path / "run" / "edgeclf.json").read_text())
    hp = manifest["hyperparameters"]
    assert hp["distribution"] == {"strategy": "MirroredStrategy", "replicas": 2,
                                  "devices": ["/job:localhost/replica:0/task:0/device:CPU:0",
                                              "/job:localhost/replica:0/task:0/device:CPU:1"]}
    assert hp["global_batch_size"] == 8  # 4 per replica
    assert hp["phase1"]["feature_cache"]["engine"] == engine
    history = json.loads((tmp_path / "run" / "history.json").read_text())["history"]
    assert [(h["phase"], h["epoch"]) for h in history] == [(1, 1), (1, 2), (1, 3), (2, 1)]
    assert all(0 < h["val_loss"] < 10 for h in history)
    assert summary["test"]["count"] > 0 and 0 <= summary["test"]["accuracy"] <= 1
