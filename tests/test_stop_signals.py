"""Ctrl-C and SIGTERM stop the live loop between frames, even when the signal lands inside native code that
swallows exceptions (as LiteRT's pybind11 layer can): runtime/signals.py."""

from __future__ import annotations

import os
import signal

import pytest

from edgeclf.runtime.live import LoopOptions, run_camera
from edgeclf.runtime.signals import stop_requests
from edgeclf.runtime.sinks import SinkOptions
from tests.fixtures.images import synthetic_image
from tests.test_runtime_models import model_copy, tiny_models  # noqa: F401


def test_a_signal_sets_the_event_instead_of_raising_and_handlers_come_back():
    before = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    with stop_requests() as stop:
        os.kill(os.getpid(), signal.SIGTERM)
        assert stop.wait(5)  # no KeyboardInterrupt here
        with pytest.raises(KeyboardInterrupt):  # a second Ctrl-C is the impatient way out
            os.kill(os.getpid(), signal.SIGINT)
    assert {sig: signal.getsignal(sig) for sig in before} == before


def test_an_ignored_sigint_stays_ignored():
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        with stop_requests() as stop:
            os.kill(os.getpid(), signal.SIGINT)
            assert not stop.wait(0.2)
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGINT, previous)


class SwallowingClassifier:
    """The real classifier, but SIGTERM arrives on frame 3 while inference runs inside a ``try/except
    KeyboardInterrupt: pass``, which is what native code that runs Python can do to an exception."""

    def __init__(self, clf):
        self.clf, self.calls = clf, 0

    def __getattr__(self, name):
        return getattr(self.clf, name)

    def probabilities_from_input(self, x):
        self.calls += 1
        try:
            if self.calls == 3:
                os.kill(os.getpid(), signal.SIGTERM)  # Python runs the handler right here
            return self.clf.probabilities_from_input(x)
        except KeyboardInterrupt:
            return self.clf.probabilities_from_input(x)


def test_sigterm_inside_swallowing_inference_still_stops_the_loop(tiny_models, tmp_path):
    from edgeclf.runtime import Classifier

    frames = tmp_path / "frames"
    frames.mkdir()
    for i in range(4):
        synthetic_image(i % 3, i, (32, 24)).save(frames / f"{i}.png")
    clf = SwallowingClassifier(Classifier(model_copy(tiny_models, "int8", tmp_path / "m")))
    result = run_camera(clf, str(frames), SinkOptions(quiet=True, headless=False),
                        LoopOptions(loop=True, max_frames=200))
    assert result.reason == "interrupted" and 3 <= result.stats.frames <= 4, (result.reason, result.stats.frames)
    assert result.summary["stopped"] == "interrupted"
