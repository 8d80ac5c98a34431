"""Processes the tests start: a free loopback port, whether a pid runs, the tree below a pid, killing it."""
from __future__ import annotations

import os
import signal
import socket
import time
from pathlib import Path
from typing import Iterable


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def process_alive(pid: int) -> bool:
    """True while `pid` exists and is not a zombie (Linux /proc)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def descendants(pid: int) -> list[int]:
    """Every process below `pid` (Linux /proc), children before grandchildren."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        parents.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        for child in parents.get(todo.pop(0), []):
            found.append(child)
            todo.append(child)
    return found


def environ_of(pid: int) -> bytes:
    """The environment `pid` started with (empty if it is gone)."""
    try:
        return Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return b""


def carries(pid: int, marker: str) -> bool:
    """`pid` runs and its environment holds `marker` (a stack's private broker URL): surely one of ours."""
    return process_alive(pid) and marker.encode() in environ_of(pid)


def kill_tree(pid: int, extra: Iterable[int] = (), marker: str | None = None) -> list[int]:
    """SIGKILL `pid` and every process below it (collected first, so none is orphaned and missed).

    `extra`: pids seen below it earlier (a child may have been re-parented since); each is killed only
    if still alive and, with `marker`, only if its environment holds `marker`, so a reused pid of
    someone else's process is never hit.
    """
    earlier = [p for p in set(extra) if process_alive(p) and (marker is None or carries(p, marker))]
    pids = sorted(set(descendants(pid)) | set(earlier)) + [pid]
    for p in pids:
        try:
            os.kill(p, signal.SIGKILL)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + 10
    while any(process_alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.02)
    return pids
