"""SIGTERM and SIGINT for long passes: a graceful stop instead of dying mid-batch."""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator

from followup_cli.service.delivery import StopRequest


@contextlib.contextmanager
def stop_on_signals() -> Iterator[StopRequest]:
    """While inside, SIGTERM and SIGINT ask the pass to stop (see StopRequest) instead of
    killing the process; the previous handlers come back afterwards. Outside the main
    thread (embedded use) signals cannot be caught: the request is then never set."""
    stop = StopRequest()
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return
    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield stop
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
