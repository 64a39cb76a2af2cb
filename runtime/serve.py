"""`--serve`: a tiny web page with the live annotated feed, for a Pi with no screen. Standard library only.

    /             the page (camera.html): the MJPEG feed, top-k bars, threshold, FPS, per-stage latency and a
                  rolling latency chart, polled from /label
    /stream.mjpg  multipart/x-mixed-replace JPEG stream of the display frames (at most --stream-fps)
    /frame.jpg    the latest frame as a JPEG
    /label        JSON: label, score, top_k, threshold, frame number, fps, latency per stage (capture,
                  preprocess, inference from the loop; encode from the encoder thread), display and input size

The JPEGs are encoded by the feed's own thread, only while someone is watching and at a capped rate, so the
classification loop never encodes and costs nothing extra while no browser is connected.
"""

from __future__ import annotations

import io
import json
import threading
import time
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources

import numpy as np
from PIL import Image

from edgeclf.errors import UsageError

BOUNDARY = "edgeclfframe"
DEFAULT_HOST = "127.0.0.1"
DEFAULT_STREAM_FPS = 15.0


def parse_bind(value: str) -> tuple[str, int]:
    """"HOST:PORT", ":PORT" or "PORT" → (host, port); the host defaults to localhost (never all interfaces
    unless asked, e.g. 0.0.0.0:8080)."""
    text = str(value).strip()
    host, _, port = text.rpartition(":")
    host = host.strip("[]") or DEFAULT_HOST
    try:
        number = int(port)
        if not 0 <= number <= 65535:
            raise ValueError
    except ValueError:
        raise UsageError(f"--serve {value}: expected HOST:PORT, e.g. 127.0.0.1:8080 or 0.0.0.0:8080") from None
    return host, number


class LiveFeed:
    """The latest frame and its classification, shared by the loop (writer), one encoder thread and the HTTP
    handlers (readers).

    ``publish`` only swaps a reference under a lock, so the classification loop never waits for JPEG encoding. The
    encoder thread encodes the newest frame while someone waits for one, at most ``max_fps`` times a second (a
    phone needs no more, and every encode takes CPU from the interpreter's threads); frames published in between
    are simply not sent. Pillow releases the GIL while it encodes.
    """

    def __init__(self, max_fps: float = DEFAULT_STREAM_FPS, quality: int = 80):
        self._interval = 1.0 / max_fps
        self._quality = quality
        self._cond = threading.Condition()
        self._seq = 0
        self._frame = None
        self._info: dict = {}
        self._jpeg: tuple[int, bytes] = (0, b"")
        self._encode_ms: float | None = None
        self._stream_fps = 0.0
        self._waiting = 0
        self.closed = False
        self._thread = threading.Thread(target=self._encode_forever, name="edgeclf-encode", daemon=True)
        self._thread.start()

    def publish(self, frame, info: dict) -> None:
        with self._cond:
            self._seq += 1
            self._frame, self._info = frame, dict(info, frame=info.get("frame", self._seq))
            self._cond.notify_all()

    def close(self) -> None:
        with self._cond:
            self.closed = True
            self._info = dict(self._info, finished=True)
            self._cond.notify_all()
        self._thread.join(timeout=5)

    def info(self) -> dict:
        """The newest frame's result, with the encoder's latency and the rate the page is being sent."""
        with self._cond:
            info = dict(self._info)
            if "latency_ms" in info:
                info["latency_ms"] = dict(info["latency_ms"], encode=self._encode_ms)
            info["stream_fps"] = round(self._stream_fps, 2)
            return info

    def wait_jpeg(self, after: int, timeout: float = 5.0) -> tuple[int, bytes] | None:
        """(sequence, JPEG) of a frame newer than ``after``, waiting for the encoder; None on timeout or close."""
        with self._cond:
            self._waiting += 1
            self._cond.notify_all()
            try:
                ready = self._cond.wait_for(lambda: self._jpeg[0] > after or self.closed, timeout)
                return self._jpeg if ready and self._jpeg[0] > after else None
            finally:
                self._waiting -= 1

    def _next_frame(self, done: int):
        """Block until someone waits and a frame newer than ``done`` exists; None once closed."""
        with self._cond:
            self._cond.wait_for(lambda: self.closed or (self._waiting and self._seq > done))
            return None if self.closed else (self._seq, self._frame)

    def _encode_forever(self) -> None:
        done, last = 0, 0.0
        while True:
            if self._next_frame(done) is None:
                return
            pause = last + self._interval - time.perf_counter()
            if pause > 0:
                time.sleep(pause)  # the rate cap; the newest frame is taken after it
            got = self._next_frame(done)
            if got is None:
                return
            done, frame = got
            start = time.perf_counter()
            jpeg = encode_jpeg(frame, self._quality)
            with self._cond:
                self._encode_ms = round((time.perf_counter() - start) * 1000.0, 3)
                if last:
                    rate = 1.0 / max(start - last, 1e-6)
                    self._stream_fps = rate if not self._stream_fps else self._stream_fps + 0.2 * (rate - self._stream_fps)
                self._jpeg = (done, jpeg)
                self._cond.notify_all()
            last = start


def encode_jpeg(frame, quality: int) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(frame)).save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def _page() -> bytes:
    return resources.files("edgeclf.runtime").joinpath("camera.html").read_bytes()


class _Handler(BaseHTTPRequestHandler):
    server_version = "edgeclf"
    feed: LiveFeed  # set on the subclass made by start_server

    def log_message(self, fmt, *args):  # quiet: the camera loop owns the console
        pass

    def do_GET(self):  # noqa: N802 (http.server's naming)
        path = self.path.split("?", 1)[0]
        try:
            if path in ("/", "/index.html"):
                self._send(HTTPStatus.OK, "text/html; charset=utf-8", _page())
            elif path == "/label":
                body = json.dumps(self.feed.info(), default=float).encode()
                self._send(HTTPStatus.OK, "application/json", body)
            elif path == "/frame.jpg":
                got = self.feed.wait_jpeg(0)
                if got is None:
                    self._send(HTTPStatus.SERVICE_UNAVAILABLE, "text/plain", b"no frame yet\n")
                else:
                    self._send(HTTPStatus.OK, "image/jpeg", got[1])
            elif path == "/stream.mjpg":
                self._stream()
            else:
                self._send(HTTPStatus.NOT_FOUND, "text/plain", b"not found\n")
        except (BrokenPipeError, ConnectionResetError):
            pass  # the browser went away

    def _send(self, status, content_type: str, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def _stream(self) -> None:
        self.send_response(HTTPStatus.OK)
        self.send_header("Content-Type", f"multipart/x-mixed-replace; boundary={BOUNDARY}")
        self.send_header("Cache-Control", "no-store")
        self.send_header("Connection", "close")
        self.end_headers()
        seq = 0
        while not self.feed.closed:
            got = self.feed.wait_jpeg(seq, timeout=1.0)
            if got is None:
                continue
            seq, jpeg = got
            self.wfile.write(f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {len(jpeg)}\r\n\r\n"
                             .encode("ascii"))
            self.wfile.write(jpeg)
            self.wfile.write(b"\r\n")
            self.wfile.flush()


class FeedServer:
    """ThreadingHTTPServer running in a daemon thread; ``url`` is where to point a browser."""

    def __init__(self, bind: str, feed: LiveFeed):
        host, port = parse_bind(bind)
        handler = type("FeedHandler", (_Handler,), {"feed": feed})
        try:
            self._server = ThreadingHTTPServer((host, port), handler)
        except OSError as exc:
            raise UsageError(f"--serve {bind}: cannot listen there ({exc.strerror or exc})",
                             "pick another port, or a host address this machine has") from None
        self._server.daemon_threads = True
        self.feed = feed
        self.host, self.port = self._server.server_address[:2]
        self.all_interfaces = host in ("0.0.0.0", "::")
        local = "127.0.0.1" if host == "0.0.0.0" else "[::1]" if host == "::" else host
        self.url = f"http://{local}:{self.port}/"
        self._thread = threading.Thread(target=self._server.serve_forever, name="edgeclf-serve", daemon=True)

    def start(self) -> "FeedServer":
        self._thread.start()
        return self

    def stop(self) -> None:
        self.feed.close()
        self._server.shutdown()
        self._server.server_close()
