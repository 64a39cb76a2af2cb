"""Ctrl-C and SIGTERM as a request to stop between frames, never as an exception raised inside the interpreter.

Python's default turns a signal into a KeyboardInterrupt wherever the main thread happens to be. In the live loop
that is mostly inside LiteRT's native code, which runs Python of its own (pybind11 calls ``PyRun_String``). There
the exception can be swallowed, so the loop runs on, or it leaves CPython's "unhandled interrupt" flag set, so the
process kills itself with SIGINT (exit -2) after printing a clean summary. Both were seen: 2 of 80 short runs ignored
SIGTERM, and one test run exited -2. So the handlers here only set an event, which the loop checks between frames
and sleeps on. A second Ctrl-C raises KeyboardInterrupt as usual, for a loop stuck in a blocking camera read.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


@contextlib.contextmanager
def stop_requests() -> Iterator[threading.Event]:
    """Yield an event that Ctrl-C or SIGTERM sets while the block runs. Off the main thread (where Python cannot
    install handlers) the event is never set by a signal. A signal the parent ignores (``nohup``) stays ignored."""
    stop = threading.Event()

    def request(signum, frame):
        if stop.is_set() and signum == signal.SIGINT:
            raise KeyboardInterrupt
        stop.set()

    previous = {}
    try:
        for sig in STOP_SIGNALS:
            if signal.getsignal(sig) is not signal.SIG_IGN:
                previous[sig] = signal.signal(sig, request)
    except ValueError:  # not the main thread: leave signals alone
        pass
    try:
        yield stop
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
