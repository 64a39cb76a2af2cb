"""Doing something with the answer: `edgeclf camera --mqtt` against a real Mosquitto broker, `--webhook` against a
real HTTP server, and the change detection both share (runtime/notify.py)."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import NamedTuple

import pytest

from edgeclf.errors import MissingDependencyError, UsageError
from edgeclf.runtime.notify import AnswerChanges, MqttSink, parse_mqtt_url
from tests.fixtures.images import synthetic_image
from tests.test_runtime_models import LABELS, model_copy, tiny_models  # noqa: F401

RUNS = [0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 0, 0, 0, 0, 0]  # the scene: a class held for 5 frames at a time


def frame(label: str, n: int) -> dict:
    return {"label": label, "score": 0.9, "top_k": [{"label": label, "score": 0.9}], "frame": n, "model": "m"}


def test_a_new_answer_counts_once_it_holds_and_is_sent_once():
    changes = AnswerChanges(hold=3)
    labels = ["cat", "cat", "dog", "cat", "cat", "cat", "cat", "dog", "dog", "dog", "dog", "unknown"]
    events = [e for n, label in enumerate(labels, 1) if (e := changes.update(frame(label, n)))]
    assert [(e["label"], e["previous"], e["frame"]) for e in events] == [("cat", None, 6), ("dog", "cat", 10)]
    assert events[0]["top_k"] == [{"label": "cat", "score": 0.9}] and events[0]["time"].endswith("+00:00")
    every = AnswerChanges(hold=1)
    assert [e["label"] for n, label in enumerate(labels) if (e := every.update(frame(label, n)))] == \
        ["cat", "dog", "cat", "dog", "unknown"]
    with pytest.raises(UsageError, match="--hold"):
        AnswerChanges(hold=0)


def test_mqtt_urls(monkeypatch):
    monkeypatch.setenv("EDGECLF_MQTT_PASSWORD", "from-env")
    plain = parse_mqtt_url("mqtt://broker.local/edgeclf/door")
    assert (plain.host, plain.port, plain.topic, plain.tls, plain.username) == ("broker.local", 1883, "edgeclf/door",
                                                                                False, None)
    assert parse_mqtt_url("mqtts://pi@broker:9999").password == "from-env"  # not in the URL, so not in `ps`
    assert parse_mqtt_url("mqtts://pi@broker").port == 8883
    given = parse_mqtt_url("mqtt://pi:s%40cret@10.0.0.2:1884/a/b/")
    assert (given.username, given.password, given.port, given.topic) == ("pi", "s@cret", 1884, "a/b")
    assert "s@cret" not in given.shown and given.shown == "mqtt://pi@10.0.0.2:1884/a/b"
    assert parse_mqtt_url("broker.local").topic == f"edgeclf/{socket.gethostname()}"
    for bad, why in [("http://x/y", "not an MQTT URL"), ("mqtt://x/a/#", "wildcard"), ("mqtt://x:99999", "port")]:
        with pytest.raises(UsageError, match=why):
            parse_mqtt_url(bad)


def test_mqtt_without_paho_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "paho.mqtt.client", None)
    with pytest.raises(MissingDependencyError, match=r'edgeclf\[mqtt\]'):
        MqttSink("mqtt://127.0.0.1:1/x")


# --- a real broker and a real HTTP server ------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Broker(NamedTuple):
    port: int
    process: subprocess.Popen


@pytest.fixture
def broker(tmp_path):
    """A Mosquitto broker on a free loopback port."""
    exe = shutil.which("mosquitto") or ("/usr/sbin/mosquitto" if os.path.exists("/usr/sbin/mosquitto") else None)
    if exe is None:
        message = "mosquitto is not installed (apt-get install -y mosquitto; scripts/setup-dev.sh does it)"
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(message)
        pytest.skip(message)
    port = free_port()
    conf = tmp_path / "mosquitto.conf"
    conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n")
    proc = subprocess.Popen([exe, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 10
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            time.sleep(0.05)
    else:
        proc.kill()
        pytest.fail(f"mosquitto did not start: {proc.stderr.read()}")
    yield Broker(port, proc)
    proc.terminate()
    proc.wait(timeout=10)


class Subscriber:
    """A paho client that records every message under ``topic/#`` (retained ones included)."""

    def __init__(self, port: int, topic: str):
        import paho.mqtt.client as mqtt

        self.messages, self.ready = [], threading.Event()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
        self.client.on_connect = lambda c, u, f, rc, p: c.subscribe(f"{topic}/#", qos=1)
        self.client.on_subscribe = lambda *args: self.ready.set()
        self.client.on_message = lambda c, u, m: self.messages.append((m.topic, m.payload.decode(), m.retain))
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        assert self.ready.wait(10)

    def wait_for(self, predicate, timeout=10):
        deadline = time.time() + timeout
        while time.time() < deadline and not predicate(self.messages):
            time.sleep(0.05)
        return self.messages

    def close(self):
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def scene(tiny_models, tmp_path):
    """The tiny model and a folder replaying ``RUNS``: each class held for 5 frames."""
    model = model_copy(tiny_models, "int8", tmp_path / "model")
    frames = tmp_path / "frames"
    frames.mkdir()
    for i, cls in enumerate(RUNS):
        synthetic_image(cls, 700 + i, (48, 40)).save(frames / f"{i:03d}.png")
    return model, frames


def camera(model, frames, *extra, timeout=120):
    return subprocess.run([sys.executable, "-m", "edgeclf", "camera", str(model), "--source", str(frames),
                           "--headless", *extra], capture_output=True, text=True, timeout=timeout)


def expected_changes(stdout: str, hold: int) -> list[tuple[str, int]]:
    """(label, frame) of each answer change, read off the frames the same run printed."""
    frames = [json.loads(line) for line in stdout.splitlines() if '"label"' in line and '"summary"' not in line]
    changes = AnswerChanges(hold)
    return [(e["label"], e["frame"]) for f in frames if (e := changes.update(f))]


def test_mqtt_publishes_each_answer_change_retained_and_goes_offline(broker, scene):
    model, frames = scene
    watcher = Subscriber(broker.port, "test/door")
    proc = camera(model, frames, "--mqtt", f"mqtt://127.0.0.1:{broker.port}/test/door", "--hold", "2")
    assert proc.returncode == 0, proc.stderr
    want = expected_changes(proc.stdout, hold=2)
    assert len(want) >= 3  # the scene changes class three times and the tiny model sees it
    messages = watcher.wait_for(lambda m: ("test/door/status", "offline", False) in m)
    watcher.close()
    states = [json.loads(payload) for topic, payload, _ in messages if topic == "test/door/state"]
    assert [(s["label"], s["frame"]) for s in states] == want
    assert [s["previous"] for s in states] == [None] + [label for label, _ in want[:-1]]
    assert all(s["label"] in LABELS + ["unknown"] and s["model"] == model.name for s in states)
    status = [payload for topic, payload, _ in messages if topic == "test/door/status"]
    assert status[0] == "online" and status[-1] == "offline"

    late = Subscriber(broker.port, "test/door")  # someone who subscribes after the camera stopped
    retained = late.wait_for(lambda m: len(m) >= 2)
    late.close()
    assert {t: p for t, p, r in retained if r}["test/door/status"] == "offline"
    assert json.loads({t: p for t, p, r in retained if r}["test/door/state"])["label"] == want[-1][0]


def test_mqtt_broker_down_is_one_line_before_any_frame(scene):
    model, frames = scene
    port = free_port()  # nothing listens here
    start = time.perf_counter()
    proc = camera(model, frames, "--mqtt", f"mqtt://127.0.0.1:{port}/x")
    assert proc.returncode == 1 and proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "cannot connect to the broker" in lines[0] and str(port) in lines[0], proc.stderr
    assert time.perf_counter() - start < 60


class Hook(BaseHTTPRequestHandler):
    received: list = []
    status = 200

    def do_POST(self):  # noqa: N802
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.received.append((self.headers["Content-Type"], json.loads(body)))
        self.send_response(self.status)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def hook_server():
    Hook.received, Hook.status = [], 200
    server = ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.shutdown()


def test_webhook_posts_each_answer_change_as_json(hook_server, scene):
    model, frames = scene
    url = f"http://127.0.0.1:{hook_server.server_port}/edgeclf"
    proc = camera(model, frames, "--webhook", url, "--hold", "2")
    assert proc.returncode == 0, proc.stderr
    want = expected_changes(proc.stdout, hold=2)
    assert len(want) >= 3
    assert [(e["label"], e["frame"]) for _, e in Hook.received] == want  # all sent before the process exits
    assert {ctype for ctype, _ in Hook.received} == {"application/json"}


def test_a_failing_webhook_warns_once_and_the_camera_keeps_running(hook_server, scene):
    model, frames = scene
    Hook.status = 500
    proc = camera(model, frames, "--webhook", f"http://127.0.0.1:{hook_server.server_port}/x", "--hold", "1")
    assert proc.returncode == 0, proc.stderr
    assert len(Hook.received) >= 3  # every change was still tried
    warnings = [line for line in proc.stderr.splitlines() if line.startswith("warning: --webhook")]
    assert len(warnings) == 1 and "500" in warnings[0] and "keeps running" in warnings[0]
    assert json.loads(proc.stdout.strip().splitlines()[-1])["summary"]["frames"] == len(RUNS)


def test_webhook_url_must_be_http(scene):
    model, frames = scene
    proc = camera(model, frames, "--webhook", "ftp://x/y")
    assert proc.returncode == 2 and "--webhook ftp://x/y: not an http(s) URL" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_a_killed_camera_reads_offline_through_the_last_will(broker, scene):
    model, frames = scene
    watcher = Subscriber(broker.port, "test/plug")
    proc = subprocess.Popen([sys.executable, "-m", "edgeclf", "camera", str(model), "--source", str(frames),
                             "--loop", "--fps-limit", "20", "--quiet",
                             "--mqtt", f"mqtt://127.0.0.1:{broker.port}/test/plug"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        assert watcher.wait_for(lambda m: ("test/plug/status", "online", False) in m, timeout=60)
        proc.kill()  # no clean close: only the broker's last will can say it
        proc.wait(timeout=10)
        messages = watcher.wait_for(lambda m: [p for t, p, _ in m if t == "test/plug/status"][-1] == "offline")
    finally:
        proc.kill()
        watcher.close()
    assert [p for t, p, _ in messages if t == "test/plug/status"] == ["online", "offline"]


def test_a_broker_that_goes_away_is_a_warning_and_the_camera_keeps_running(broker, scene):
    model, frames = scene
    proc = subprocess.Popen([sys.executable, "-m", "edgeclf", "camera", str(model), "--source", str(frames),
                             "--loop", "--fps-limit", "20", "--hold", "1", "--headless",
                             "--mqtt", f"mqtt://127.0.0.1:{broker.port}/test/gone"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        for _ in range(10):  # running, connected
            proc.stdout.readline()
        broker.process.kill()
        lines = [proc.stdout.readline() for _ in range(40)]  # still classifying, 2 s later
        assert all('"label"' in line for line in lines)
        proc.terminate()
        out, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    warnings = [line for line in err.splitlines() if line.startswith("warning: --mqtt")]
    assert len(warnings) == 2 and "lost the broker" in warnings[0], err  # once, however long it is gone
    assert "the last change and 'offline' were not delivered" in warnings[1]  # said at exit, throttle or not
    assert json.loads(out.strip().splitlines()[-1])["summary"]["stopped"] == "interrupted"


def test_home_assistant_discovery_describes_the_state_the_camera_publishes(broker, scene):
    model, frames = scene
    watcher = Subscriber(broker.port, "ha")
    proc = camera(model, frames, "--max-frames", "6", "--hold", "1", "--mqtt",
                  f"mqtt://127.0.0.1:{broker.port}/test/ha", "--ha-discovery", "ha")
    assert proc.returncode == 0, proc.stderr
    configs = watcher.wait_for(lambda m: any(t.endswith("/config") for t, _, _ in m))
    watcher.close()
    (topic, payload, _), = [m for m in configs if m[0].endswith("/config")]
    config = json.loads(payload)
    assert topic == f"ha/sensor/{config['unique_id']}/config" and config["unique_id"] == "edgeclf_test_ha"
    assert config["state_topic"] == "test/ha/state" and config["availability_topic"] == "test/ha/status"
    assert config["value_template"] == "{{ value_json.label }}"  # the field the state JSON carries
    alone = camera(model, frames, "--ha-discovery")
    assert alone.returncode == 2 and "--ha-discovery" in alone.stderr and "--mqtt" in alone.stderr


def test_on_change_runs_a_command_per_change_with_the_event(scene, tmp_path):
    model, frames = scene
    log = tmp_path / "seen.log"
    cmd = f'printf "%s %s %s\\n" "$EDGECLF_PREVIOUS" "$EDGECLF_LABEL" "$(cat)" >> {log}'
    proc = camera(model, frames, "--on-change", cmd, "--hold", "2")
    assert proc.returncode == 0, proc.stderr
    want = expected_changes(proc.stdout, hold=2)
    lines = log.read_text().splitlines()
    assert len(want) >= 3 and len(lines) == len(want)  # every change, each once, all done before exit
    for line, (label, n), previous in zip(lines, want, [None] + [lbl for lbl, _ in want[:-1]]):
        env_previous, env_label, stdin = line.split(" ", 2)
        event = json.loads(stdin)
        assert (env_label, event["label"], event["frame"]) == (label, label, n)
        assert event["previous"] == previous and env_previous == (previous or "")


def test_a_failing_command_is_one_warning_with_its_last_words(scene):
    model, frames = scene
    proc = camera(model, frames, "--on-change", "echo 'relay busy' >&2; exit 3", "--hold", "1")
    assert proc.returncode == 0, proc.stderr
    warnings = [line for line in proc.stderr.splitlines() if line.startswith("warning: --on-change")]
    assert warnings == ["warning: --on-change: the command exited 3: relay busy (the camera keeps running)"]
