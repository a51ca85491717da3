"""Who writes the store now: a lock file beside it, so a second writer waits its turn or says who is in the way.

DuckDB itself refuses a second writing process at once (`Could not set lock`), which ended batches Failed. Every
thb-signals writer (scoring, ingest, FIU screening, the batch's bookkeeping) takes `<store>.lock` first: an flock
held for the whole write, with the holder's pid, host, command and start time written inside. A writer that
finds it taken waits up to a bound (THB_STORE_LOCK_WAIT seconds, default 300; the scoring setting
`store.lock_wait_seconds` over it), then stops with one line naming the holder. Re-entrant within one thread
(the batch holds it around steps that take it again).
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import sys
import threading
import time
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

DEFAULT_WAIT = 300.0
_HELD: dict[str, list] = {}  # lock path -> [fd, owning thread id, depth]
_GUARD = threading.Lock()
_THREAD_LOCKS: dict[str, threading.Lock] = {}


class StoreBusy(RuntimeError):
    """Another process held the store for longer than this one would wait."""


def lock_path(db_path: str | Path) -> Path:
    return Path(f"{db_path}.lock")


def default_wait() -> float:
    try:
        return max(0.0, float(os.environ.get("THB_STORE_LOCK_WAIT", DEFAULT_WAIT)))
    except ValueError:
        raise ValueError(f"THB_STORE_LOCK_WAIT={os.environ['THB_STORE_LOCK_WAIT'][:20]!r} is not a number of seconds") from None


def holder(db_path: str | Path) -> dict | None:
    """What the lock file says about its holder (None when empty or unreadable)."""
    try:
        return json.loads(lock_path(db_path).read_text(encoding="utf-8") or "null")
    except (OSError, ValueError):
        return None


def busy_message(db_path: str | Path, waited: float) -> str:
    h = holder(db_path) or {}
    who = (
        f"{h.get('command', '?')} (pid {h.get('pid', '?')} on {h.get('host', '?')}, since {h.get('started_at', '?')})"
        if h
        else "another thb-signals process"
    )
    return (
        f"store {db_path} is being written by {who}; waited {waited:.0f} s. Run this again when it has finished, "
        "or wait longer (THB_STORE_LOCK_WAIT seconds, or store.lock_wait_seconds in the config)"
    )


def _command() -> str:
    args = [Path(sys.argv[0]).name] + sys.argv[1:] if sys.argv and sys.argv[0] else ["python"]
    return " ".join(args)[:200]


@contextmanager
def exclusive(db_path: str | Path, what: str | None = None, wait: float | None = None):
    """Hold the store's write lock for the block; waits up to `wait` seconds (default_wait()), else StoreBusy."""
    path = lock_path(db_path)
    key = str(path.resolve())
    me = threading.get_ident()
    with _GUARD:
        held = _HELD.get(key)
        if held and held[1] == me:
            held[2] += 1
            reentered = True
        else:
            reentered = False
            tlock = _THREAD_LOCKS.setdefault(key, threading.Lock())
    if reentered:
        try:
            yield
        finally:
            with _GUARD:
                _HELD[key][2] -= 1
        return
    wait = default_wait() if wait is None else max(0.0, float(wait))
    started = time.monotonic()
    if not (tlock.acquire(timeout=wait) if wait > 0 else tlock.acquire(blocking=False)):
        raise StoreBusy(busy_message(db_path, time.monotonic() - started))
    fd = None
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() - started >= wait:
                    raise StoreBusy(busy_message(db_path, time.monotonic() - started)) from None
                time.sleep(0.1)
        info = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "command": (what + ": " if what else "") + _command(),
            "started_at": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        }
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(info).encode(), 0)
        with _GUARD:
            _HELD[key] = [fd, me, 1]
        try:
            yield
        finally:
            with _GUARD:
                _HELD.pop(key, None)
            os.ftruncate(fd, 0)  # nobody holds it now; a stale file says nothing wrong
    finally:
        if fd is not None:
            os.close(fd)  # closing releases the flock
        tlock.release()
