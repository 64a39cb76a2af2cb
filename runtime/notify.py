"""Doing something with the answer: each change of the camera's answer to MQTT, a URL, or a shell command.

A Pi that classifies wants to tell Home Assistant or Node-RED, switch a relay or ping a server when what it sees
changes, not thirty times a second. :class:`AnswerChanges` turns per-frame results into events: an answer counts once
it holds for ``hold`` frames in a row (one flickering frame fires nothing), and each new answer is sent once.
Delivery runs on its own thread (paho-mqtt's loop, or one :class:`ChangeWorker` per webhook or command), so a slow
broker, server or command never slows the loop; a failure is one warning line on stderr (at most one a minute) and
never stops the camera.

MQTT topics under the URL's path (default ``edgeclf/<hostname>``), both retained so a subscriber that comes later
still learns the current state:

* ``<topic>/state``: the event as JSON (label, score, top_k, previous, frame, time, model);
* ``<topic>/status``: ``online`` while the camera runs, ``offline`` when it stops (also the broker's last will, so a
  pulled plug reads ``offline`` too): Home Assistant's availability topic.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from datetime import datetime, timezone
from urllib.parse import unquote, urlsplit

from edgeclf.errors import EdgeclfError, MissingDependencyError, UsageError

MQTT_INSTALL = 'pip install "edgeclf[mqtt]"'
DEFAULT_HOLD = 3  # frames a new answer must last before it is reported (--hold)
CONNECT_TIMEOUT_S = 10.0
SEND_TIMEOUT_S = 5.0
WARN_EVERY_S = 60.0


class AnswerChanges:
    """Per-frame results in, an event out when a new answer has held for ``hold`` frames in a row."""

    def __init__(self, hold: int = DEFAULT_HOLD):
        if hold < 1:
            raise UsageError(f"--hold must be at least 1, got {hold}")
        self.hold = hold
        self.current: str | None = None
        self._candidate: str | None = None
        self._count = 0

    def update(self, result: dict) -> dict | None:
        label = result["label"]
        self._count = self._count + 1 if label == self._candidate else 1
        self._candidate = label
        if self._count < self.hold or label == self.current:
            return None
        previous, self.current = self.current, label
        return {"label": label, "score": result["score"], "top_k": result["top_k"], "previous": previous,
                "frame": result["frame"], "time": datetime.now(timezone.utc).isoformat(timespec="milliseconds"),
                "model": result["model"]}


class ThrottledWarning:
    """One stderr line per kind of failure at most every ``WARN_EVERY_S``: a broker down for an hour is not 100,000
    lines."""

    def __init__(self, what: str):
        self.what, self._last = what, -WARN_EVERY_S

    def __call__(self, reason: str, at_exit: bool = False) -> None:
        """``at_exit``: the last word, said whatever the throttle."""
        now = time.monotonic()
        if at_exit or now - self._last >= WARN_EVERY_S:
            self._last = now
            going_on = "" if at_exit else " (the camera keeps running)"
            print(f"warning: {self.what}: {reason}{going_on}", file=sys.stderr, flush=True)


@dataclass(frozen=True)
class MqttTarget:
    host: str
    port: int
    topic: str
    tls: bool = False
    username: str | None = None
    password: str | None = None

    @property
    def shown(self) -> str:
        """The URL without its password, for messages."""
        user = f"{self.username}@" if self.username else ""
        return f"{'mqtts' if self.tls else 'mqtt'}://{user}{self.host}:{self.port}/{self.topic}"


def parse_mqtt_url(url: str) -> MqttTarget:
    """``mqtt://[user[:password]@]host[:port][/topic]`` (``mqtts://`` for TLS, port 8883). Without a password in the
    URL, ``EDGECLF_MQTT_PASSWORD`` is used, so it need not show in ``ps``."""
    parts = urlsplit(url if "://" in url else f"mqtt://{url}", allow_fragments=False)  # "#" is a wildcard here
    hint = "use mqtt://HOST[:PORT][/TOPIC], e.g. mqtt://homeassistant.local/edgeclf/door"
    if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname:
        raise UsageError(f"--mqtt {url}: not an MQTT URL", hint)
    try:
        port = parts.port or (8883 if parts.scheme == "mqtts" else 1883)
    except ValueError:
        raise UsageError(f"--mqtt {url}: the port is not a number from 1 to 65535", hint) from None
    topic = unquote(parts.path).strip("/") or f"edgeclf/{socket.gethostname()}"
    if "+" in topic or "#" in topic:
        raise UsageError(f"--mqtt {url}: the topic {topic!r} has an MQTT wildcard (+ or #)",
                         "publish to a plain topic such as edgeclf/door")
    password = unquote(parts.password) if parts.password else os.environ.get("EDGECLF_MQTT_PASSWORD")
    username = unquote(parts.username) if parts.username else None
    return MqttTarget(parts.hostname, port, topic, parts.scheme == "mqtts", username, password if username else None)


def home_assistant_sensor(topic: str, prefix: str) -> tuple[str, dict]:
    """Home Assistant's MQTT discovery message for a sensor whose state is the answer, with the event's fields as
    attributes and ``<topic>/status`` as availability: the camera shows up in Home Assistant by itself."""
    object_id = "".join(c if c.isalnum() else "_" for c in topic).strip("_")
    config = {"name": f"edgeclf {topic}", "unique_id": f"edgeclf_{object_id}", "object_id": f"edgeclf_{object_id}",
              "state_topic": f"{topic}/state", "value_template": "{{ value_json.label }}",
              "json_attributes_topic": f"{topic}/state", "availability_topic": f"{topic}/status",
              "payload_available": "online", "payload_not_available": "offline", "icon": "mdi:camera",
              "device": {"identifiers": [f"edgeclf_{object_id}"], "name": f"edgeclf {topic}",
                         "manufacturer": "edgeclf", "model": "image classifier"}}
    return f"{prefix}/sensor/edgeclf_{object_id}/config", config


def delivered(info, deadline: float) -> bool:
    """Whether paho got the broker's acknowledgement for ``info`` by ``deadline`` (``time.monotonic()``)."""
    try:
        info.wait_for_publish(timeout=max(0.0, deadline - time.monotonic()))
        return info.is_published()
    except (RuntimeError, ValueError):  # never sent: not connected, or the queue was full
        return False


class MqttSink:
    """--mqtt URL: answer changes to ``<topic>/state``, availability to ``<topic>/status`` (see the module doc).
    Connects before the loop starts, so a wrong host, port or password is one line and exit 1, not a silent camera."""

    def __init__(self, url: str, hold: int = DEFAULT_HOLD, discovery: str | None = None):
        self.target = parse_mqtt_url(url)
        self.changes = AnswerChanges(hold)
        self.warn = ThrottledWarning(f"--mqtt {self.target.shown}")
        self._closing = False
        self.client = self._connect(self.target)
        if discovery:
            topic, config = home_assistant_sensor(self.target.topic, discovery)
            self.client.publish(topic, json.dumps(config), qos=1, retain=True)
        self._last = self._publish("status", "online")

    def _connect(self, target: MqttTarget):
        try:
            import paho.mqtt.client as mqtt
        except ImportError:
            raise MissingDependencyError("--mqtt (paho-mqtt)", MQTT_INSTALL) from None
        connected, outcome = threading.Event(), {}

        def on_connect(client, userdata, flags, reason_code, properties):
            outcome["reason"] = reason_code
            connected.set()

        client_id = f"edgeclf-{socket.gethostname()}-{os.getpid()}"
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id)
        client.on_connect = on_connect
        client.on_disconnect = self._on_disconnect
        if target.username:
            client.username_pw_set(target.username, target.password)
        if target.tls:
            client.tls_set()
        client.will_set(f"{target.topic}/status", "offline", qos=1, retain=True)
        client.reconnect_delay_set(min_delay=1, max_delay=30)
        fix = "check the host and port, and that the broker (e.g. mosquitto) runs"
        try:
            client.connect(target.host, target.port, keepalive=30)
        except (OSError, ValueError) as exc:
            raise EdgeclfError(f"--mqtt {target.shown}: cannot connect to the broker ({exc})", fix) from None
        client.loop_start()
        if not connected.wait(CONNECT_TIMEOUT_S) or outcome["reason"].is_failure:
            client.loop_stop()
            reason = outcome.get("reason", f"no answer in {CONNECT_TIMEOUT_S:.0f} s")
            raise EdgeclfError(f"--mqtt {target.shown}: the broker refused the connection ({reason})",
                               "check the user name and password (EDGECLF_MQTT_PASSWORD)" if "reason" in outcome
                               else fix)
        return client

    def _on_disconnect(self, client, userdata, flags, reason_code, properties):
        if not self._closing:
            self.warn(f"lost the broker ({reason_code}); reconnecting, changes meanwhile wait in memory")

    def _publish(self, leaf: str, payload: str):
        """Publish retained at QoS 1. Offline, paho queues the message and sends it on reconnect."""
        info = self.client.publish(f"{self.target.topic}/{leaf}", payload, qos=1, retain=True)
        if info.rc not in (0, 4):  # MQTT_ERR_SUCCESS, MQTT_ERR_NO_CONN (queued)
            self.warn(f"publish failed (paho error {info.rc})")
        return info

    def on_frame(self, frame, result):
        event = self.changes.update(result)
        if event is not None:
            self._last = self._publish("state", json.dumps(event, separators=(",", ":")))

    def close(self):
        """``offline``, then wait (a few seconds at most) until the broker has every message, then disconnect."""
        self._closing = True
        last = self._publish("status", "offline")
        deadline = time.monotonic() + SEND_TIMEOUT_S
        if not all(delivered(info, deadline) for info in (self._last, last)):
            self.warn("the broker is unreachable: the last change and 'offline' were not delivered", at_exit=True)
        self.client.disconnect()
        self.client.loop_stop()


class ChangeWorker:
    """Answer changes delivered in order by one worker thread through ``send(event)``. Whatever is slow or down
    costs warnings, not frames: at most ``backlog`` events wait, the oldest dropped. ``close`` delivers what is
    queued (each delivery bounded by ``timeout_s``), then stops the worker."""

    timeout_s = SEND_TIMEOUT_S

    def __init__(self, what: str, hold: int, backlog: int = 100):
        self.changes = AnswerChanges(hold)
        self.warn = ThrottledWarning(what)
        self.events: queue.Queue = queue.Queue(maxsize=backlog)
        self.worker = threading.Thread(target=self._deliver_forever, name="edgeclf-notify", daemon=True)
        self.worker.start()

    def send(self, event: dict) -> None:
        raise NotImplementedError

    def on_frame(self, frame, result):
        event = self.changes.update(result)
        if event is not None:
            self._enqueue(event)

    def _enqueue(self, item) -> None:
        while True:
            try:
                self.events.put_nowait(item)
                return
            except queue.Full:
                with contextlib.suppress(queue.Empty):
                    self.events.get_nowait()
                    self.warn("not keeping up with the changes; the oldest unsent one was dropped")

    def _deliver_forever(self):
        while (event := self.events.get()) is not None:
            self.send(event)

    def close(self):
        self._enqueue(None)
        self.worker.join(timeout=self.timeout_s * (self.events.qsize() + 2))


class WebhookSink(ChangeWorker):
    """--webhook URL: each answer change POSTed as JSON (the MQTT state payload)."""

    def __init__(self, url: str, hold: int = DEFAULT_HOLD, backlog: int = 100):
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise UsageError(f"--webhook {url}: not an http(s) URL", "use e.g. http://192.168.1.10:1880/edgeclf")
        self.url = url
        super().__init__(f"--webhook {url}", hold, backlog)

    def send(self, event: dict) -> None:
        request = urllib.request.Request(self.url, data=json.dumps(event).encode(), method="POST",
                                         headers={"Content-Type": "application/json", "User-Agent": "edgeclf-camera"})
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                response.read()
        except urllib.error.HTTPError as exc:
            self.warn(f"the server answered {exc.code} {exc.reason}")
        except (urllib.error.URLError, OSError) as exc:
            self.warn(f"cannot reach it ({getattr(exc, 'reason', exc)})")


class CommandSink(ChangeWorker):
    """--on-change CMD: run a shell command on each answer change (a relay, a sound, a log line). The event is on
    its stdin as JSON and in EDGECLF_LABEL, EDGECLF_PREVIOUS, EDGECLF_SCORE; commands run one at a time, in order."""

    timeout_s = 30.0

    def __init__(self, command: str, hold: int = DEFAULT_HOLD, backlog: int = 100):
        if not command.strip():
            raise UsageError("--on-change needs a command", "e.g. --on-change 'echo $EDGECLF_LABEL >> seen.log'")
        self.command = command
        super().__init__("--on-change", hold, backlog)

    def send(self, event: dict) -> None:
        env = dict(os.environ, EDGECLF_LABEL=event["label"], EDGECLF_PREVIOUS=event["previous"] or "",
                   EDGECLF_SCORE=f"{event['score']:.6f}")
        try:
            done = subprocess.run(self.command, shell=True, input=json.dumps(event), text=True, env=env,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=self.timeout_s)
        except subprocess.TimeoutExpired:
            self.warn(f"the command ran over {self.timeout_s:.0f} s and was stopped")
            return
        if done.returncode != 0:
            said = (done.stderr.strip().splitlines() or [""])[-1][:200]
            self.warn(f"the command exited {done.returncode}" + (f": {said}" if said else ""))
