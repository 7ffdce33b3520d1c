"""The trusted side: start workers, send them requests, enforce limits from the outside.

:class:`Worker` owns one worker process for one part folder, started lazily and
restarted after a crash, timeout or kill. Every wait for a reply is a ``select`` loop
in the calling thread that, every tick (~25 ms):

- drains the worker's stdout+stderr pipe into a head+tail buffer (a flood costs neither
  memory nor time: the middle is counted and dropped);
- writes what is left of the request (a hung worker cannot block the grader);
- reads the reply frame incrementally (size validated before any allocation);
- checks the wall-clock deadline and the RSS of the worker's whole process tree
  (``/proc``), and SIGKILLs the tree when either is exceeded;
- notices the worker's death (``os._exit``, signals, the kernel's OOM killer).

Because the same loop drains the output and reads the reply, and the worker flushes its
streams before replying, a call's output is complete when the call returns:
:meth:`Worker.output` gives everything since it was last read (e.g. one check's calls),
:meth:`Worker.last_call_output` and every exception's ``output`` the latest call's.
Between calls the worker's process group is stopped (SIGSTOP), so nothing runs or
prints in the background; a monitor thread still watches idle workers' memory.
"""
from __future__ import annotations

import errno
import os
import secrets
import select
import shutil
import signal
import subprocess
import sys
import threading
import time
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

from . import forkserver, procs
from .policy import SandboxPolicy, SandboxSetupError
from .protocol import DEFAULT_MAX_BYTES, FrameReader, Handle, ProtocolError, decode, encode
from .staging import RUNTIME_DIR

TICK_S = 0.025
# Every tick re-reads the known worker processes only; all of /proc (new children, orphans)
# is scanned this often. A full scan reads ~65 processes: at every tick it cost ~10% of one
# core during worker calls (measured with py-spy on a one-core grade).
FULL_SCAN_S = 0.2
SETUP_FAILED = 121
_WORKERS: "weakref.WeakSet[Worker]" = weakref.WeakSet()


# --------------------------------------------------------------------------- exceptions


class WorkerFailure(Exception):
    """Base of everything that can go wrong inside a worker (all caused by student code).

    ``target`` names what was running (``"utils.KLD"``); ``output`` is what the worker
    printed during that call (already truncated).
    """

    def __init__(self, message: str, *, target: str | None = None, output: str = "") -> None:
        super().__init__(message)
        self.target = target
        self.output = output


class StudentError(WorkerFailure):
    """Student code raised an exception; the worker survived it."""

    def __init__(self, function: str, type_name: str, message: str, traceback: str, **kw: Any) -> None:
        self.function = function
        self.type_name = type_name
        self.message = message
        self.traceback = traceback
        super().__init__(self._summary(), **kw)

    def _summary(self) -> str:
        lines = self.message.strip().splitlines()
        first = lines[0] if lines else ""
        if len(first) > 300:
            first = first[:300] + "..."
        elif len(lines) > 1:
            first += " ..."
        return f"{self.function} raised {self.type_name}" + (f": {first}" if first else "")

    def __str__(self) -> str:
        return self._summary()


class WorkerTimeout(WorkerFailure):
    """A call ran past its time limit; the worker was killed."""


class WorkerMemoryExceeded(WorkerFailure):
    """A call used more memory than allowed (measured from outside, or refused by the kernel)."""


class WorkerDied(WorkerFailure):
    """The worker exited during a call (``os._exit``, ``sys.exit``, a signal, a crash).

    ``exit_code`` is the exit status (or None when killed by a signal), ``signal`` the
    signal number, ``traceback`` where ``sys.exit`` was called (when known).
    """

    def __init__(self, message: str, *, exit_code: int | None = None, signal: int | None = None,
                 traceback: str = "", **kw: Any) -> None:
        super().__init__(message, **kw)
        self.exit_code = exit_code
        self.signal = signal
        self.traceback = traceback


class WorkerOutputError(WorkerFailure, ProtocolError):
    """The worker sent something the protocol refuses (or a result that cannot be sent)."""


class HandleError(WorkerFailure):
    """A handle that the current worker does not hold (released, or from a worker that died)."""


# --------------------------------------------------------------------------- limits and output


@dataclass(frozen=True)
class Limits:
    """Per-worker limits. ``memory_mb`` bounds the RSS of the worker's whole process tree
    (torch alone needs ~150 MB, its CUDA build ~500 MB). ``threads=0`` means min(4, cores).
    ``max_processes`` is RLIMIT_NPROC of the sandbox user (root mode only; it counts threads).
    ``data_slack_mb``: RLIMIT_DATA is set to ``memory_mb + data_slack_mb`` (None: not set) as
    a backstop against allocations faster than the RSS polling; the slack covers address
    space that torch reserves without touching it.
    """

    call_timeout_s: float = 60.0
    memory_mb: int = 2048
    threads: int = 1
    output_bytes: int = 64 * 1024
    max_processes: int = 64
    startup_timeout_s: float = 60.0
    file_size_mb: int = 1024
    open_files: int = 1024
    data_slack_mb: int | None = 1024
    max_message_mb: int = DEFAULT_MAX_BYTES >> 20

    @property
    def torch_threads(self) -> int:
        return self.threads if self.threads > 0 else min(4, os.cpu_count() or 1)

    def rlimits(self) -> dict[str, int]:
        out = {"core": 0, "nofile": self.open_files, "fsize": self.file_size_mb << 20,
               "nproc": self.max_processes}
        if self.data_slack_mb is not None:
            out["data"] = (self.memory_mb + self.data_slack_mb) << 20
        return out


class OutputBuffer:
    """Keeps the first and last ``limit/2`` bytes written; counts the rest."""

    def __init__(self, limit: int) -> None:
        self.head_limit = max(0, limit // 2)
        self.tail_limit = max(0, limit - self.head_limit)
        self.reset()

    def reset(self) -> None:
        self.head = bytearray()
        self.tail = bytearray()
        self.dropped = 0

    def write(self, data: bytes) -> None:
        room = self.head_limit - len(self.head)
        if room > 0:
            self.head += data[:room]
            data = data[room:]
        if not data:
            return
        self.tail += data
        excess = len(self.tail) - self.tail_limit
        if excess > self.tail_limit or (excess > 0 and len(data) >= self.tail_limit):
            self.dropped += excess
            del self.tail[:excess]

    def text(self) -> str:
        excess = max(0, len(self.tail) - self.tail_limit)
        tail = self.tail[excess:]
        dropped = self.dropped + excess
        head = self.head.decode("utf-8", errors="replace")
        if not dropped:
            return head + tail.decode("utf-8", errors="replace")
        return (head + f"\n[... {dropped:,} bytes of output dropped ...]\n"
                + tail.decode("utf-8", errors="replace"))


# --------------------------------------------------------------------------- the worker


def _short(target: str) -> str:
    return target.lstrip("@").split(".")[-1]


class Worker:
    """One untrusted worker process serving one part folder (see the module docstring).

    ``part_dir`` is the part's folder inside ``staging_root`` (made by ``make_staging``).
    Extra keyword options: ``preload`` (modules imported at start-up, before any student
    file can shadow them; default numpy and torch), ``cwd`` (default: the worker's
    private scratch folder), ``name`` (for scratch folders and messages),
    ``freeze_between_calls`` (SIGSTOP the worker's process group while no call runs;
    default on).

    Between calls a monitor thread keeps watching the memory of idle workers' trees
    (processes that left the process group are not frozen); an idle worker over its limit
    is killed, and the next call starts a fresh one.
    """

    def __init__(self, part_dir: Path, staging_root: Path, limits: Limits | None = None,
                 policy: SandboxPolicy | None = None, *, preload: Iterable[str] = ("numpy", "torch"),
                 cwd: Path | None = None, name: str | None = None, freeze_between_calls: bool = True) -> None:
        self.part_dir = Path(part_dir).resolve()
        self.staging_root = Path(staging_root).resolve()
        self.limits = limits or Limits()
        self.policy = policy or SandboxPolicy.detect()
        self.preload = tuple(preload)
        self.cwd = Path(cwd) if cwd else None
        self.name = name or self.part_dir.name
        self.freeze_between_calls = freeze_between_calls
        self.idle_kill_reason = ""
        self.last_stats: dict[str, Any] = {}
        self.starts = 0
        self._lock = threading.RLock()
        self._output = OutputBuffer(self.limits.output_bytes)  # the current call's
        self._pending_output = OutputBuffer(self.limits.output_bytes)  # not yet read by output()
        self._proc: subprocess.Popen[bytes] | forkserver.Child | None = None
        self._known_tree: set[int] = set()  # the worker's processes at the last full /proc scan
        self._fds: dict[str, int] = {}
        self._token = ""
        self._scratch: Path | None = None
        self._seq = 0
        self._handles: set[int] = set()
        self._max_bytes = self.limits.max_message_mb << 20
        _WORKERS.add(self)

    # ------------------------------------------------------------------ public API

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def alive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def call(self, target: str, *args: Any, seed: int | None = 0, timeout: float | None = None,
             **kwargs: Any) -> Any:
        """Call ``module.function`` / construct ``module.Class`` / run ``@driver.function``.

        Non-plain results (models, optimizers...) come back as :class:`Handle`.
        """
        return self.call_with(target, args, kwargs, seed=seed, timeout=timeout)

    def call_with(self, target: str, args: Iterable[Any] = (), kwargs: dict[str, Any] | None = None, *,
                  seed: int | None = 0, timeout: float | None = None) -> Any:
        """:meth:`call` with explicit ``args``/``kwargs`` (for keyword names like ``seed``)."""
        msg = {"op": "call", "target": target, "args": list(args), "kwargs": dict(kwargs or {}), "seed": seed}
        return self._request(msg, timeout, target, _short(target))

    def method(self, handle: Handle, name: str, *args: Any, seed: int | None = 0,
               timeout: float | None = None, **kwargs: Any) -> Any:
        """Call ``obj.name(*args, **kwargs)`` on the worker object behind ``handle``."""
        self._check_handle(handle)
        what = f"{handle.type_name.split('.')[-1]}.{name}"
        msg = {"op": "method", "handle": handle.id, "name": name, "args": list(args), "kwargs": kwargs, "seed": seed}
        return self._request(msg, timeout, what, what)

    def getattr(self, handle: Handle, name: str, timeout: float | None = None) -> Any:
        """``obj.name`` of the worker object behind ``handle`` (tensors as data, objects as handles)."""
        self._check_handle(handle)
        what = f"{handle.type_name.split('.')[-1]}.{name}"
        return self._request({"op": "getattr", "handle": handle.id, "name": name}, timeout, what, what)

    def release(self, handle: Handle) -> None:
        """Let the worker forget an object (no-op for handles of a dead worker)."""
        with self._lock:
            if handle.id in self._handles and self.alive:
                self._request({"op": "release", "handle": handle.id}, None, "release", "release")
                self._handles.discard(handle.id)

    def release_all(self, timeout: float = 5.0) -> None:
        """Let the worker forget every object handed out so far (the runner calls this between
        checks: a check's models and trainings would otherwise live as long as the worker).
        Does not start a worker; a worker that fails here is killed and the next call gets a fresh one."""
        with self._lock:
            if not self.alive or not self._handles:
                return
            self._request({"op": "release_all"}, timeout, "release_all", "releasing the previous check's objects")
            self._handles.clear()

    def import_module(self, module: str, timeout: float | None = None) -> None:
        """Import a student module only (raises StudentError for an import-time exception)."""
        self._request({"op": "import", "module": module}, timeout, module, f"import of {module}")

    def ping(self, timeout: float | None = None) -> dict[str, Any]:
        return self._request({"op": "ping"}, timeout, "ping", "ping")

    def output(self) -> str:
        """Student stdout+stderr since the previous ``output()`` (over any number of calls),
        cut to ``limits.output_bytes`` (head and tail, with a note of what was dropped)."""
        text = self._pending_output.text()
        self._pending_output.reset()
        return text

    def last_call_output(self) -> str:
        """Student stdout+stderr of the latest call only (also in every exception's ``output``)."""
        return self._output.text()

    def start(self) -> None:
        """Start the worker now (otherwise the first call does)."""
        with self._lock:
            if not self.alive:
                self._start()

    def close(self) -> None:
        """Kill the worker and everything it started; a later call starts a fresh one."""
        with self._lock:
            self._kill()

    def __enter__(self) -> "Worker":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # ------------------------------------------------------------------ requests

    def _check_handle(self, handle: Any) -> None:
        if not isinstance(handle, Handle):
            raise TypeError(f"expected a Handle, got {type(handle).__name__}")
        if handle.id not in self._handles:
            extra = f" [{self.idle_kill_reason}]" if self.idle_kill_reason else ""
            raise HandleError(f"{handle!r} is not held by the current worker (it was released, or its worker "
                              f"was stopped after a crash, timeout or memory overrun{extra}): create the object again")

    def _check_args(self, value: Any, depth: int = 0) -> None:
        if isinstance(value, Handle):
            self._check_handle(value)
        elif depth < 16 and isinstance(value, (list, tuple)):
            for v in value:
                self._check_args(v, depth + 1)
        elif depth < 16 and isinstance(value, dict):
            for v in value.values():
                self._check_args(v, depth + 1)

    def _request(self, msg: dict[str, Any], timeout: float | None, target: str, what: str) -> Any:
        with self._lock:
            self._check_args(msg.get("args"))
            self._check_args(msg.get("kwargs"))
            self._output.reset()
            if not self.alive:
                self._start()
            self._seq += 1
            msg["seq"] = self._seq
            chunks = encode(msg, max_bytes=self._max_bytes)  # ProtocolError: a bad argument (grader bug)
            limit = self.limits.call_timeout_s if timeout is None else timeout
            started = time.monotonic()
            self._signal_group(signal.SIGCONT)
            reply = self._exchange(chunks, limit, target, what)
            if "exit" not in reply:  # a worker in sys.exit must be left to finish exiting
                self._freeze()
            self.last_stats["roundtrip_s"] = time.monotonic() - started
            return self._result(reply, target, what)

    def _signal_group(self, sig: int) -> None:
        if self._proc is not None and self._proc.returncode is None:
            try:
                os.killpg(self._proc.pid, sig)
            except (ProcessLookupError, PermissionError):
                pass

    def _freeze(self) -> None:
        """SIGSTOP the worker's process group between calls: student threads and child
        processes can neither burn CPU, grow memory nor print while checks run."""
        if self.freeze_between_calls:
            self._signal_group(signal.SIGSTOP)

    def _result(self, reply: dict[str, Any], target: str, what: str) -> Any:
        out = self.last_call_output
        peak = reply.get("peak_rss_kb")
        self.last_stats.update(peak_rss_mb=peak / 1024 if type(peak) is int else None, wall_s=reply.get("wall_s"))
        if "exit" in reply and type(reply["exit"]) is dict:
            info = reply["exit"]
            status = info.get("status") if type(info.get("status")) is int else None
            self._wait_exit(2.0)
            self._kill()
            raise WorkerDied(f"{what} called sys.exit({info.get('code', '')}): student code must not exit the "
                             "process", exit_code=status, traceback=str(info.get("traceback", "")),
                             target=target, output=out())
        if reply.get("ok") is True and "value" in reply:
            if type(peak) is int and peak > self.limits.memory_mb * 1024:
                raise WorkerMemoryExceeded(
                    f"{what} used {peak // 1024} MB of memory at its peak; the limit is {self.limits.memory_mb} MB",
                    target=target, output=out())
            return reply["value"]
        error = reply.get("error")
        if reply.get("ok") is not False or type(error) is not dict:
            self._kill()
            raise WorkerOutputError(f"the worker sent a malformed reply to {what}", target=target, output=out())
        type_name = str(error.get("type", "Exception"))[:200]
        message = str(error.get("message", ""))
        if error.get("memory") is True:
            self._kill()  # an allocation failed: the process may be in a bad state
            raise WorkerMemoryExceeded(
                f"{what} could not allocate memory ({type_name}: {message.splitlines()[0][:200] if message else ''}); "
                f"the limit is {self.limits.memory_mb} MB", target=target, output=out())
        if error.get("protocol") is True:
            raise WorkerOutputError(f"{what}: {message[:500]}", target=target, output=out())
        if type_name == "HandleError":
            raise HandleError(f"{what}: {message[:500]}", target=target, output=out())
        raise StudentError(what, type_name, message, str(error.get("traceback", "")), target=target, output=out())

    # ------------------------------------------------------------------ process management

    def _start(self) -> None:
        self._kill()
        procs.become_subreaper()
        self.starts += 1
        self._token = secrets.token_hex(12)
        self._seq = 0
        runtime = self.staging_root / RUNTIME_DIR
        if not (runtime / "worker_main.py").is_file():
            raise SandboxSetupError(f"{runtime} has no worker runtime: build the folder with make_staging()")
        self._scratch = self.policy.make_scratch(self.staging_root / "_scratch" / f"{self.name}-{self.starts}")
        argv = [sys.executable, "-s", "-B", str(runtime / "worker_main.py"),
                "--part-dir", str(self.part_dir), "--drivers-dir", str(runtime / "drivers"),
                "--threads", str(self.limits.torch_threads), "--handle-base", str(self.starts * 1_000_000 + 1),
                "--preload", ",".join(self.preload), "--max-bytes", str(self._max_bytes)]
        env = self.policy.worker_env(self._scratch, self.limits.torch_threads, self._token)
        fs_root = self.staging_root / "_fsroot"  # an empty folder each worker's private root is built on
        fs_root.mkdir(mode=0o755, exist_ok=True)
        cfg = self.policy.launch_config(rlimits=self.limits.rlimits(), fds=[], cwd=self.cwd or self._scratch,
                                        argv=argv, env=env, fs_root=fs_root,
                                        read_only=[self.staging_root] + ([self.cwd] if self.cwd else []),
                                        read_write=[self._scratch])
        ids = self.policy.ids()
        procs.register_sandbox(uid=ids[0] if ids else None, token=self._token)
        self._proc = None
        # Forked from the grader's fork server when it serves these preloads (a fork instead of
        # importing torch), else a fresh interpreter through the launcher.
        if forkserver.serves(self.preload):
            (req_r, req_w), (rep_r, rep_w), (out_r, out_w) = os.pipe(), os.pipe(), os.pipe()
            try:
                self._proc = forkserver.spawn(cfg, [req_r, rep_w, out_w], self.preload)
            finally:
                for fd in (req_r, rep_w, out_w) if self._proc else (req_r, rep_w, out_w, req_w, rep_r, out_r):
                    os.close(fd)  # after a failed request, a fork the server made anyway keeps nothing of ours
        if self._proc is None:
            (req_r, req_w), (rep_r, rep_w), (out_r, out_w) = os.pipe(), os.pipe(), os.pipe()
            cfg["fds"] = [req_r, rep_w]
            try:
                self._proc = subprocess.Popen(
                    self.policy.launcher_argv(cfg), env=env, cwd=str(self._scratch), stdin=subprocess.DEVNULL,
                    stdout=out_w, stderr=out_w, pass_fds=(req_r, rep_w), close_fds=True, start_new_session=True)
            finally:
                for fd in (req_r, rep_w, out_w):
                    os.close(fd)
        procs.register_sandbox(child=self._proc.pid)
        self._fds = {"req": req_w, "rep": rep_r, "out": out_r}
        for fd in self._fds.values():
            os.set_blocking(fd, False)
        self._reader = FrameReader(self._max_bytes)
        self._handles = set()
        started = time.monotonic()
        try:
            hello = self._exchange([], self.limits.startup_timeout_s, "startup", "worker start-up", startup=True)
        except WorkerFailure as exc:
            self._kill()
            raise SandboxSetupError(f"the worker for {self.name} did not start: {exc}\n{self.last_call_output()}") from None
        if hello.get("ok") is not True or type(hello.get("value")) is not dict:
            self._kill()
            raise SandboxSetupError(f"the worker for {self.name} sent a bad greeting")
        self.last_stats = {"startup_s": time.monotonic() - started, **hello["value"]}
        self._verify_isolation()
        self._freeze()
        _IdleMonitor.ensure_running()

    def _verify_isolation(self) -> None:
        """Check from outside that the worker really runs as the sandbox user without network."""
        pid = self.pid
        assert pid is not None
        ids = self.policy.ids()
        try:
            uid = os.stat(f"/proc/{pid}").st_uid
        except OSError:
            return
        if ids and uid != ids[0]:
            self._kill()
            raise SandboxSetupError(f"the worker runs as uid {uid}, not as the sandbox user (uid {ids[0]})")
        if self.policy.network_mode():
            try:
                same = os.readlink(f"/proc/{pid}/ns/net") == os.readlink("/proc/self/ns/net")
            except OSError:
                return
            if same:
                self._kill()
                raise SandboxSetupError("the worker shares the grader's network namespace")

    def _other_roots(self) -> list[int]:
        return [w.pid for w in list(_WORKERS) if w is not self and w.pid is not None]

    def _kill(self) -> None:
        """SIGKILL the worker's tree, collect its output, free its fds and scratch folder."""
        proc, self._proc = self._proc, None
        if proc is not None:
            # Once Popen has reaped the worker its pid may be reused: then only its
            # marked orphans (token, sandbox uid) are looked for.
            root = proc.pid if proc.returncode is None else None
            procs.kill_tree(root, self._token, self._other_roots)
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
            procs.forget_child(proc.pid)
        if "out" in self._fds:
            self._drain(until_eof=True)
        for fd in self._fds.values():
            try:
                os.close(fd)
            except OSError:
                pass
        self._fds = {}
        self._handles = set()
        if self._scratch is not None:
            shutil.rmtree(self._scratch, ignore_errors=True)
            self._scratch = None

    def _mark_dead(self) -> None:
        """Forget the process without killing it (kill_all_descendants already did)."""
        if self._lock.acquire(blocking=False):
            try:
                if self._proc is not None:
                    self._kill()
            finally:
                self._lock.release()

    def _wait_exit(self, timeout: float) -> int | None:
        if self._proc is None:
            return None
        try:
            return self._proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    # ------------------------------------------------------------------ the loop

    def _drain(self, until_eof: bool = False, budget: int = 4 << 20) -> None:
        """Move available worker output into the buffer (bounded per tick)."""
        fd = self._fds.get("out")
        if fd is None:
            return
        got = 0
        deadline = time.monotonic() + 0.5
        while (got < budget or until_eof) and time.monotonic() < deadline:
            try:
                chunk = os.read(fd, 1 << 16)
            except BlockingIOError:
                if until_eof and time.monotonic() < deadline:
                    select.select([fd], [], [], 0.05)
                    continue
                return
            except OSError:
                chunk = b""
            if not chunk:
                os.close(fd)
                del self._fds["out"]
                return
            self._output.write(chunk)
            self._pending_output.write(chunk)
            got += len(chunk)

    def _tree_kb(self, full: bool = True) -> int:
        """RSS of the worker's process tree; ``full=False`` re-reads the processes found by the last full scan."""
        assert self._proc is not None
        if full or not self._known_tree:
            table = procs.scan()
            tree = procs.worker_tree(self._proc.pid, self._token, table, self._other_roots())
            self._known_tree = tree
        else:
            tree = self._known_tree
            table = {pid: p for pid in tree if (p := procs.read_proc(pid)) is not None}
        rss = procs.tree_rss_kb(tree, table)
        if rss > self.limits.memory_mb * 1024 and len(tree) > 1:
            rss = procs.tree_pss_kb(tree)  # forked children share pages: count them once
        return rss

    def _died(self, target: str, what: str, startup: bool) -> WorkerDied:
        status = self._wait_exit(1.0)
        self._kill()
        out = self.last_call_output()
        if status is None:
            return WorkerDied(f"the worker stopped answering during {what}", target=target, output=out)
        if status < 0:
            sig = -status
            name = signal.Signals(sig).name if sig in signal.Signals._value2member_map_ else str(sig)
            hint = " (possibly the system's out-of-memory killer)" if sig == signal.SIGKILL else ""
            return WorkerDied(f"the worker was killed by {name}{hint} during {what}", signal=sig,
                              target=target, output=out)
        if status == SETUP_FAILED and startup:
            raise SandboxSetupError(f"the sandbox could not be set up: {out.strip()[-500:]}")
        return WorkerDied(f"the worker exited with status {status} during {what} "
                          "(os._exit() or sys.exit() in student code?)", exit_code=status, target=target, output=out)

    def _exchange(self, chunks: list[Any], timeout: float, target: str, what: str,
                  startup: bool = False) -> dict[str, Any]:
        """Send ``chunks`` and wait for the matching reply, enforcing time and memory limits."""
        assert self._proc is not None
        pending = [memoryview(c).cast("B") for c in chunks]
        deadline = time.monotonic() + timeout
        # The first poll waits one tick: quick calls skip the /proc scan (their own peak RSS,
        # reported in the reply, still bounds them).
        next_memory_check = time.monotonic() + TICK_S
        next_full_scan = time.monotonic()
        peak_kb = 0
        try:
            while True:
                now = time.monotonic()
                if now >= deadline:
                    self._kill()
                    raise WorkerTimeout(f"{what} did not finish within {timeout:.3g} s; the worker was stopped",
                                        target=target, output=self.last_call_output())
                rlist = [self._fds["rep"]] + ([self._fds["out"]] if "out" in self._fds else [])
                wlist = [self._fds["req"]] if pending else []
                try:
                    readable, writable, _ = select.select(rlist, wlist, [], min(TICK_S, deadline - now))
                except InterruptedError:
                    continue
                if self._fds.get("out") in readable:
                    self._drain()
                if writable:
                    pending = self._write(pending)
                    if pending is None:
                        raise self._died(target, what, startup)
                if self._fds["rep"] in readable:
                    try:
                        open_ = self._reader.pump(self._fds["rep"])
                    except ProtocolError as exc:
                        self._kill()
                        raise WorkerOutputError(f"the worker sent bytes that are not a valid reply to {what}: {exc}",
                                                target=target, output=self.last_call_output()) from None
                    frame = self._reader.take()
                    if frame is not None:
                        reply = self._decode(frame, target, what)
                        self._drain()
                        self.last_stats["tree_peak_mb"] = peak_kb / 1024
                        return reply
                    if not open_:
                        raise self._died(target, what, startup)
                if time.monotonic() >= next_memory_check:
                    now = time.monotonic()
                    next_memory_check, full = now + TICK_S, now >= next_full_scan
                    if full:
                        next_full_scan = now + FULL_SCAN_S
                    kb = self._tree_kb(full)
                    peak_kb = max(peak_kb, kb)
                    if kb > self.limits.memory_mb * 1024:
                        self._kill()
                        if startup:
                            raise SandboxSetupError(
                                f"starting a worker (importing {', '.join(self.preload) or 'nothing'}) needs "
                                f"{kb // 1024} MB, more than the worker memory limit of {self.limits.memory_mb} MB")
                        raise WorkerMemoryExceeded(
                            f"{what} used more than {self.limits.memory_mb} MB of memory ({kb // 1024} MB measured); "
                            "the worker was stopped", target=target, output=self.last_call_output())
                if self._proc.poll() is not None and self._fds["rep"] not in readable:
                    # Exited: take a reply it may have written just before (sys.exit reports), else it died.
                    try:
                        self._reader.pump(self._fds["rep"])
                    except ProtocolError:
                        pass
                    frame = self._reader.take()
                    if frame is not None:
                        self._drain(until_eof=True)
                        return self._decode(frame, target, what)
                    raise self._died(target, what, startup)
        except (WorkerFailure, SandboxSetupError):
            raise
        except BaseException:
            self._kill()  # interrupted (KeyboardInterrupt, a bug): the request/reply state is unknown
            raise

    def _write(self, pending: list[memoryview]) -> list[memoryview] | None:
        """Write what the pipe takes now; None when the worker has closed its end."""
        fd = self._fds["req"]
        while pending:
            try:
                n = os.write(fd, pending[0])
            except BlockingIOError:
                break
            except BrokenPipeError:
                return None
            except OSError as exc:
                if exc.errno == errno.EPIPE:
                    return None
                raise
            pending[0] = pending[0][n:]
            if not pending[0].nbytes:
                pending.pop(0)
        return pending

    def _decode(self, frame: tuple[bytes, memoryview], target: str, what: str) -> dict[str, Any]:
        header, payload = frame

        def register(handle: Handle) -> Handle:
            self._handles.add(handle.id)
            return handle

        try:
            reply = decode(header, payload, resolve=register)
        except ProtocolError as exc:
            self._kill()
            raise WorkerOutputError(f"the worker's reply to {what} was refused: {exc}", target=target,
                                    output=self.last_call_output()) from None
        if type(reply) is not dict or reply.get("seq") != self._seq:
            self._kill()
            raise WorkerOutputError(
                f"the worker sent a reply that does not answer {what} (student code wrote to the protocol pipe?)",
                target=target, output=self.last_call_output())
        return reply


class _IdleMonitor(threading.Thread):
    """Polls the memory of idle workers' trees (every 0.2 s) and kills those over their limit."""

    _instance: "_IdleMonitor | None" = None
    _guard = threading.Lock()
    INTERVAL_S = 0.2

    def __init__(self) -> None:
        super().__init__(name="sandbox-idle-monitor", daemon=True)

    @classmethod
    def ensure_running(cls) -> None:
        with cls._guard:
            if cls._instance is None or not cls._instance.is_alive():
                cls._instance = cls()
                cls._instance.start()

    def run(self) -> None:
        while True:
            time.sleep(self.INTERVAL_S)
            for worker in [w for w in list(_WORKERS) if w._proc is not None]:
                if not worker._lock.acquire(blocking=False):
                    continue  # in a call: that call's own loop watches it
                try:
                    if worker.alive:
                        kb = worker._tree_kb()
                        if kb > worker.limits.memory_mb * 1024:
                            worker.idle_kill_reason = (f"between calls, processes started by the student code used "
                                                       f"{kb // 1024} MB, more than {worker.limits.memory_mb} MB")
                            worker._kill()
                except Exception:
                    pass
                finally:
                    worker._lock.release()


def mark_all_workers_dead() -> None:
    for worker in list(_WORKERS):
        worker._mark_dead()


class WorkerPool:
    """One shared :class:`Worker` per part folder of a staging tree (``pool.get("part1")``)."""

    def __init__(self, staging_root: Path, limits: Limits | None = None, policy: SandboxPolicy | None = None,
                 **worker_options: Any) -> None:
        self.staging_root = Path(staging_root)
        self.limits = limits or Limits()
        self.policy = policy or SandboxPolicy.detect()
        self.worker_options = worker_options
        self._workers: dict[str, Worker] = {}
        self._lock = threading.Lock()

    def get(self, part: str) -> Worker:
        with self._lock:
            if part not in self._workers:
                part_dir = self.staging_root / part
                if not part_dir.is_dir():
                    raise KeyError(f"no part folder {part_dir}")
                self._workers[part] = Worker(part_dir, self.staging_root, self.limits, self.policy,
                                             **self.worker_options)
            return self._workers[part]

    __getitem__ = get

    def workers(self) -> dict[str, Worker]:
        return dict(self._workers)

    def close(self) -> None:
        with self._lock:
            for worker in self._workers.values():
                worker.close()
            self._workers.clear()

    def __enter__(self) -> "WorkerPool":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
