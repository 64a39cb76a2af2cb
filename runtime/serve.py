"""`--serve`: a tiny web page with the live annotated feed, for a Pi with no screen. Standard library only.

    /             the page (camera.html): MJPEG feed + label polled from /label
    /stream.mjpg  multipart/x-mixed-replace JPEG stream (one part per new frame)
    /frame.jpg    the latest annotated frame
    /label        JSON: label, score, top_k, frame number, fps, per-stage latency

Frames are annotated and JPEG-encoded lazily, once per frame and only when someone is watching, so serving costs the
classification loop nothing while no browser is connected.
"""

from __future__ import annotations

import io
import json
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources

from edgeclf.errors import UsageError

BOUNDARY = "edgeclfframe"
DEFAULT_HOST = "127.0.0.1"


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
    """The latest frame and its classification, shared between the loop (writer) and HTTP handlers (readers)."""

    def __init__(self, render, quality: int = 80):
        self._render = render  # (frame, info) -> PIL image
        self._quality = quality
        self._cond = threading.Condition()
        self._seq = 0
        self._frame = None
        self._info: dict = {}
        self._jpeg: tuple[int, bytes] = (0, b"")
        self._encode_lock = threading.Lock()
        self.closed = False

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

    def info(self) -> dict:
        with self._cond:
            return dict(self._info)

    def wait_jpeg(self, after: int, timeout: float = 5.0) -> tuple[int, bytes] | None:
        """The JPEG of the first frame newer than ``after`` (waiting for it); None on timeout or when closed."""
        with self._cond:
            if not self._cond.wait_for(lambda: self._seq > after or self.closed, timeout):
                return None
            if self._seq <= after:
                return None
            seq, frame, info = self._seq, self._frame, self._info
        with self._encode_lock:
            if self._jpeg[0] != seq:
                buf = io.BytesIO()
                self._render(frame, info).save(buf, format="JPEG", quality=self._quality)
                self._jpeg = (seq, buf.getvalue())
            return self._jpeg


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
