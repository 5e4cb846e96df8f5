"""Child programs Hone owns (a generation server, a launched trainer) and the rule that none outlives its stage.

Each child leads its own process group, so stopping it stops every process it started (vLLM's engine workers,
accelerate's ranks). SIGTERM to Hone becomes an exception while a child runs, so the code that stops the group
runs; and the kernel sends the child SIGTERM if Hone is killed outright (PR_SET_PDEATHSIG).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
import time
from typing import Any, Iterator

STOP_GRACE_S = 30.0


def _die_with_parent() -> None:
    """Runs in the child before exec."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass


def start(args: list[str], **popen: Any) -> subprocess.Popen:
    """Popen in a new session (its own process group) that dies with Hone."""
    return subprocess.Popen(args, start_new_session=True, preexec_fn=_die_with_parent, **popen)


def stop(proc: subprocess.Popen, grace: float = STOP_GRACE_S) -> None:
    """SIGTERM to the whole group, SIGKILL to whatever is left after `grace` seconds (or at once after the leader
    has exited: workers it left behind)."""
    pgid = proc.pid
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=grace)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGKILL)
    proc.wait()
    deadline = time.monotonic() + 10
    while alive(pgid) and time.monotonic() < deadline:  # orphans are reaped by init a moment later
        time.sleep(0.05)


def alive(pgid: int) -> bool:
    """Whether any process of the group still exists."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def _raise_on_sigterm(signum, frame):
    raise SystemExit(128 + signum)


@contextlib.contextmanager
def sigterm_unwinds() -> Iterator[None]:
    """While inside, SIGTERM raises SystemExit (so `finally` blocks stop the children); only the main thread
    can set handlers, elsewhere this does nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _raise_on_sigterm)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
