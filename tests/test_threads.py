"""Every command runs the interpreter on every usable core unless --threads says otherwise.

LiteRT's own default for ``num_threads=None`` is one thread, so the count must be passed explicitly. These tests wrap
the real interpreter class (it still loads and runs the model) and record the ``num_threads`` it was created with.
"""

from __future__ import annotations

import json
import os

import pytest
from click.testing import CliRunner

from edgeclf.cli import cli
from edgeclf.runtime import interpreter as interpreter_module
from edgeclf.runtime.classifier import Classifier
from edgeclf.runtime.machine import usable_cores
from tests.fixtures.images import make_dataset
from tests.test_predict import model  # noqa: F401 (fixture: the tiny int8 model)
from tests.test_runtime_models import tiny_models  # noqa: F401


@pytest.fixture
def created(monkeypatch) -> list[int]:
    """The num_threads of every interpreter created from now on (the real class does the work)."""
    seen: list[int] = []
    real_import = interpreter_module._import_backend

    def recording_import(name):
        real = real_import(name)

        class Recording(real):
            def __init__(self, *args, num_threads=None, **kwargs):
                seen.append(num_threads)
                super().__init__(*args, num_threads=num_threads, **kwargs)

        return Recording

    monkeypatch.setattr(interpreter_module, "_import_backend", recording_import)
    return seen


@pytest.fixture
def photos(tmp_path):
    return make_dataset(tmp_path / "photos", classes=("red", "blue", "green"), per_class=1)


def test_usable_cores_follows_the_affinity_mask():
    if not hasattr(os, "sched_setaffinity"):
        pytest.skip("no CPU affinity on this OS")
    saved = os.sched_getaffinity(0)
    try:
        os.sched_setaffinity(0, {min(saved)})
        assert usable_cores() == 1
    finally:
        os.sched_setaffinity(0, saved)
    assert usable_cores() == len(saved)


def test_classifier_defaults_to_every_usable_core(model, created):
    clf = Classifier(model)
    assert created == [usable_cores()] and clf.num_threads == usable_cores()
    assert Classifier(model, num_threads=1).num_threads == 1 and created[-1] == 1


def test_predict_uses_every_core_unless_told(model, photos, created):
    assert CliRunner().invoke(cli, ["predict", str(model), str(photos), "--json"]).exit_code == 0
    assert CliRunner().invoke(cli, ["predict", str(model), str(photos), "--threads", "1"]).exit_code == 0
    assert created == [usable_cores(), 1]


def test_camera_uses_every_core_unless_told(model, photos, created):
    args = ["camera", str(model), "--source", str(photos), "--headless", "--max-frames", "2", "-q"]
    assert CliRunner().invoke(cli, args).exit_code == 0
    assert CliRunner().invoke(cli, args + ["--threads", "1"]).exit_code == 0
    assert created == [usable_cores(), 1]


def test_bench_measures_and_records_every_core_by_default(model, created):
    result = CliRunner().invoke(cli, ["bench", str(model), "--no-isolate", "--runs", "3", "--warmup", "1",
                                      "--json", "-q"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert [r["threads"] for r in data["results"]] == [usable_cores()]
    assert usable_cores() in created
