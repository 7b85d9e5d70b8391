"""Stopping and collecting the processes grading started.

The supervisor is a child subreaper: whatever the notebook detaches (a double fork, a new session) is adopted by
the supervisor, not by init, so it stays in the supervisor's process tree, where it is measured and killed.
"""
from __future__ import annotations

import ctypes
import os
import signal
import time

from .limits import descendants

_PR_SET_CHILD_SUBREAPER = 36


def become_subreaper(on: bool = True) -> None:
    try:
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_CHILD_SUBREAPER, int(on), 0, 0, 0)
    except (OSError, AttributeError):  # not Linux
        pass


def is_zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] in ("Z", "X")
    except (OSError, IndexError):
        return True


def kill_tree(root: int, keep: set[int] = frozenset(), wait_s: float = 2.0) -> set[int]:
    """Kill the processes below `root` except `keep` (each stopped first, so that none starts more while the others
    are killed); returns those killed. Used where the notebook has no user of its own."""
    deadline, me, killed = time.monotonic() + wait_s, os.getpid(), set()
    while time.monotonic() < deadline:
        alive = [pid for pid in descendants(root) if pid not in keep and pid != me and not is_zombie(pid)]
        if not alive:
            break
        for sig in (signal.SIGSTOP, signal.SIGKILL):
            for pid in alive:
                try:
                    os.kill(pid, sig)
                except (ProcessLookupError, PermissionError):
                    pass
        killed.update(alive)
        time.sleep(0.01)
    return killed


def reap(keep: set[int] = frozenset()) -> None:
    """Collect the exit status of this process's ended children, except `keep` (whose owners wait for them)."""
    for pid in descendants(os.getpid()):
        if pid not in keep and is_zombie(pid):
            try:
                os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                pass
