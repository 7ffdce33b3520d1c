"""Finding, measuring and killing worker processes from the outside, through ``/proc``.

A worker's *tree* is every process that descends from it (by parent pid) plus every
sandbox process that escaped that ancestry (double fork, ``setsid``): such orphans are
re-parented to the grader, because :func:`become_subreaper` makes the grader a child
subreaper, and they are recognised as sandbox processes by their uid (root mode) or by
the per-worker token in their environment (``AG_SANDBOX_TOKEN``).

Killing is always ``SIGKILL`` (a student can ignore or handle ``SIGTERM``), sent to the
process group and to every process of the tree, repeated until a scan finds nothing
alive (a process that forks while being killed is caught by the next pass).
"""
from __future__ import annotations

import ctypes
import os
import signal
import threading
import time
from dataclasses import dataclass
from typing import Callable, Iterable

PR_SET_CHILD_SUBREAPER = 36
PAGE_KB = os.sysconf("SC_PAGE_SIZE") // 1024
TOKEN_VAR = "AG_SANDBOX_TOKEN"

_lock = threading.Lock()
_subreaper: bool | None = None
_sandbox_uids: set[int] = set()  # uids that only ever run sandboxed code (root mode)
_tokens: set[str] = set()  # tokens of every worker started by this process
_known_children: set[int] = set()  # pids that subprocess.Popen owns (never reaped here)


@dataclass(frozen=True)
class Proc:
    pid: int
    ppid: int
    pgid: int
    state: str
    uid: int
    rss_kb: int


def become_subreaper() -> bool:
    """Make this process adopt orphaned descendants (prctl PR_SET_CHILD_SUBREAPER)."""
    global _subreaper
    with _lock:
        if _subreaper is None:
            try:
                libc = ctypes.CDLL(None, use_errno=True)
                _subreaper = libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
            except (OSError, AttributeError):
                _subreaper = False
        return _subreaper


def register_sandbox(uid: int | None = None, token: str | None = None, child: int | None = None) -> None:
    with _lock:
        if uid is not None:
            _sandbox_uids.add(uid)
        if token is not None:
            _tokens.add(token)
        if child is not None:
            _known_children.add(child)


def forget_child(pid: int) -> None:
    with _lock:
        _known_children.discard(pid)


def read_proc(pid: int) -> Proc | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
        uid = os.stat(f"/proc/{pid}").st_uid
    except OSError:
        return None
    # The command name (field 2) may contain spaces and parentheses: split after the last ')'.
    rest = data[data.rfind(b")") + 2:].split()
    try:
        return Proc(pid, int(rest[1]), int(rest[2]), rest[0].decode(), uid, int(rest[21]) * PAGE_KB)
    except (IndexError, ValueError):
        return None


def scan() -> dict[int, Proc]:
    """Every visible process."""
    procs = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            p = read_proc(int(name))
            if p is not None:
                procs[p.pid] = p
    return procs


def _children(procs: dict[int, Proc]) -> dict[int, list[int]]:
    kids: dict[int, list[int]] = {}
    for p in procs.values():
        kids.setdefault(p.ppid, []).append(p.pid)
    return kids


def descendants(roots: Iterable[int], procs: dict[int, Proc]) -> set[int]:
    """``roots`` (those alive) and everything below them."""
    kids = _children(procs)
    out: set[int] = set()
    todo = [r for r in roots if r in procs]
    while todo:
        pid = todo.pop()
        if pid not in out:
            out.add(pid)
            todo.extend(kids.get(pid, ()))
    return out


def count_threads(uid: int) -> int:
    """Threads (what RLIMIT_NPROC counts) of all processes whose real uid is ``uid``."""
    total = 0
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/status") as f:
                real_uid, threads = None, 0
                for line in f:
                    if line.startswith("Uid:"):
                        real_uid = int(line.split()[1])
                    elif line.startswith("Threads:"):
                        threads = int(line.split()[1])
                        break
        except (OSError, ValueError, IndexError):
            continue
        if real_uid == uid:
            total += threads
    return total


def environ_token(pid: int) -> str | None:
    try:
        with open(f"/proc/{pid}/environ", "rb") as f:
            for item in f.read().split(b"\0"):
                if item.startswith(TOKEN_VAR.encode() + b"="):
                    return item.split(b"=", 1)[1].decode(errors="replace")
    except OSError:
        pass
    return None


def is_sandbox(p: Proc) -> bool:
    if p.uid in _sandbox_uids:
        return True
    return environ_token(p.pid) in _tokens


def worker_tree(pid: int, token: str, procs: dict[int, Proc], other_roots: Iterable[int] = ()) -> set[int]:
    """The worker ``pid``, its descendants, and the sandbox orphans that belong to it.

    An orphan belongs to this worker if it runs as a sandbox uid (root mode) and is not
    below another live worker, or if it carries this worker's token (any mode).
    """
    tree = descendants([pid], procs)
    others = descendants(other_roots, procs)
    me = os.getpid()
    strays = []
    for p in procs.values():
        if p.pid in tree or p.pid in others or p.pid == me or p.pid in _known_children:
            continue
        # Orphans are re-parented to us (we are a subreaper), or to init if that failed.
        # Sandbox processes elsewhere belong to another grading run on this machine.
        if p.ppid not in (me, 1):
            continue
        if p.uid in _sandbox_uids or environ_token(p.pid) == token:
            strays.append(p.pid)
    return tree | descendants(strays, procs)


def tree_rss_kb(pids: Iterable[int], procs: dict[int, Proc]) -> int:
    return sum(procs[p].rss_kb for p in pids if p in procs)


def tree_pss_kb(pids: Iterable[int]) -> int:
    """Proportional set size: shared pages (forked children, libraries) counted once overall."""
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/smaps_rollup") as f:
                for line in f:
                    if line.startswith("Pss:"):
                        total += int(line.split()[1])
                        break
        except OSError:
            continue
    return total


def reap_strays() -> None:
    """Collect exit statuses of adopted orphans (never of children a Popen object owns)."""
    me = os.getpid()
    for p in list(scan().values()):
        if p.ppid == me and p.state == "Z" and p.pid not in _known_children:
            try:
                os.waitpid(p.pid, os.WNOHANG)
            except ChildProcessError:
                pass


def kill_pids(find: Callable[[], set[int]], pgids: Iterable[int] = (), timeout: float = 5.0) -> int:
    """SIGKILL the process groups and whatever ``find()`` returns, until ``find()`` is empty.

    Returns how many distinct processes were signalled.
    """
    for pgid in pgids:
        try:
            os.killpg(pgid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
    seen: set[int] = set()
    deadline = time.monotonic() + timeout
    while True:
        alive = find()
        if not alive:
            break
        for pid in alive:
            seen.add(pid)
            try:
                os.kill(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        reap_strays()
        if time.monotonic() > deadline:
            break
        time.sleep(0.005)
    reap_strays()
    return len(seen)


def _live(pids: set[int], procs: dict[int, Proc]) -> set[int]:
    return {p for p in pids if p in procs and procs[p].state not in ("Z", "X")}


def kill_tree(pid: int | None, token: str, other_roots: Callable[[], Iterable[int]] = tuple) -> int:
    """Kill a worker and everything that belongs to it (see :func:`worker_tree`).

    ``pid`` None: the worker itself is gone (reaped); only its marked orphans are killed.
    """
    def find() -> set[int]:
        procs = scan()
        return _live(worker_tree(pid if pid is not None else -1, token, procs, other_roots()), procs)
    return kill_pids(find, [pid] if pid is not None else [])


def kill_all_descendants() -> int:
    """Kill every descendant of this process and every sandbox process; reap them.

    Called by the runner at the end of a run (and by tests). Workers that were alive are
    marked dead first, so a later call starts fresh ones. Returns how many processes
    were signalled.
    """
    from . import client  # late import: client imports this module

    client.mark_all_workers_dead()
    me = os.getpid()

    def find() -> set[int]:
        procs = scan()
        mine = descendants([me], procs) - {me}
        orphans = [p.pid for p in procs.values() if p.uid in _sandbox_uids and p.ppid == 1]
        sandboxed = descendants(orphans, procs)  # never another run's workers: they are not orphans
        tokened = {p.pid for p in procs.values()
                   if p.pid != me and p.pid not in mine and p.uid == os.geteuid() and environ_token(p.pid) in _tokens}
        return _live(mine | sandboxed | tokened, procs)

    n = kill_pids(find)
    # Reap what is ours, including children a Popen object owned (their workers are dead).
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            break
        if pid == 0:
            break
    return n
