"""Workers forked from a process that has already imported torch: a start-up costs a fork, not an import.

Every worker used to be a fresh interpreter that imported numpy and torch (~1.4 s of CPU here,
~3 s at Gradescope's 0.5 CPU), once per part and again after every crash, timeout or memory
overrun. The grader now calls :func:`start` first thing, after importing numpy and torch and
*before* it loads a configuration, a check or the reference: the process forked there (the
*fork server*) holds the interpreter, those libraries and the grader's command line, nothing
else. For each worker the grader sends it the launcher's JSON document (``launcher.py``) and
the three pipe ends; the server forks, the child forks the worker and exits, so the worker is
re-parented to the grader (a child subreaper, ``procs.become_subreaper``): the grader waits for
it, reads its exit status and kills its tree exactly as for a worker it started itself. The
worker then runs the launcher's isolation steps (``launcher.setup``: namespaces, private root,
limits, sandbox user) and ``worker_main.py`` from the staging folder, as the exec'd path does.

What differs from a fresh interpreter, and how it is made the same:

- environment: the server wipes its own (``clearenv`` and the initial block that
  ``/proc/PID/environ`` shows); each worker sets the launcher's environment, and writes its
  token into that block, so a process it forks is still recognised as its own;
- ``sys.path``, ``sys.argv``, the standard streams (UTF-8 on the output pipe), the temporary
  folder, the random generators (reseeded), ``autograder`` dropped from ``sys.modules``;
- ``gc.freeze()`` before forking: a worker's collections do not touch (and copy) the pages it
  shares with the server.

The exec'd path (``launcher.py``) stays: workers with other preloads, a server that cannot
start or died, and ``AG_FORK_WORKERS=0`` or ``[worker] fork_workers = false`` use it.
"""
from __future__ import annotations

import ctypes
import gc
import json
import os
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from typing import Any

from . import launcher, procs

PRELOAD = ("numpy", "torch")
REPLY_TIMEOUT_S = 30.0
PR_SET_PDEATHSIG = 1
PR_SET_DUMPABLE = 4
TOKEN_VAR = "AG_SANDBOX_TOKEN"
ARG_FIELD, ENV_FIELD = 48, 50  # /proc/self/stat: where the command line and initial environment start
_MIN_REGION = 64  # bytes of the initial environment block: room for the token

_lock = threading.Lock()
_server: "_Server | None" = None


class Child:
    """A worker the grader adopted (its parent exited; the grader is its subreaper): the part of
    ``subprocess.Popen`` that :class:`~autograder.sandbox.client.Worker` uses."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.returncode: int | None = None

    def poll(self) -> int | None:
        if self.returncode is None:
            try:
                pid, status = os.waitpid(self.pid, os.WNOHANG)
            except ChildProcessError:  # reaped elsewhere: its status is lost
                self.returncode = -signal.SIGKILL
            else:
                if pid == self.pid:
                    self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        deadline = None if timeout is None else time.monotonic() + timeout
        delay = 0.0005
        while self.poll() is None:
            if deadline is not None and time.monotonic() >= deadline:
                raise subprocess.TimeoutExpired(f"worker {self.pid}", timeout or 0.0)
            time.sleep(delay)
            delay = min(delay * 2, 0.02)
        return self.returncode  # type: ignore[return-value]


class _Server:
    def __init__(self, pid: int, sock: socket.socket) -> None:
        self.pid = pid
        self.sock = sock


def enabled() -> bool:
    return os.environ.get("AG_FORK_WORKERS", "1") != "0"


def start() -> bool:
    """Fork the server now (idempotent). Call before anything secret is loaded. False when it
    cannot serve here (disabled, no subreaper, an environment block too small for the token)."""
    global _server
    with _lock:
        if _server is not None:
            return True
        if not enabled() or not procs.become_subreaper() or _region(ENV_FIELD)[1] < _MIN_REGION:
            return False
        import importlib

        for name in PRELOAD:
            importlib.import_module(name)
        parent, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (AttributeError, ValueError, OSError):
                pass
        gc.freeze()  # neither side's collections copy the pages they share
        pid = os.fork()
        if pid == 0:
            code = 0
            try:
                parent.close()
                _serve(child)
            except BaseException:  # noqa: BLE001 - the grader sees the closed socket
                code = 1
            finally:
                os._exit(code)
        child.close()
        parent.set_inheritable(False)
        _server = _Server(pid, parent)
        return True


def stop() -> None:
    """Close the server (the exec'd path is used from now on)."""
    global _server
    with _lock:
        server, _server = _server, None
    if server is not None:
        server.sock.close()
        try:
            os.kill(server.pid, signal.SIGKILL)
            os.waitpid(server.pid, 0)
        except (ProcessLookupError, ChildProcessError):
            pass


def describe() -> list[str]:
    """A line for the results' sandbox description when workers are forked."""
    if _server is None:
        return []
    return [f"workers start as forks of a server that imported {' and '.join(PRELOAD)} before this grade loaded "
            "anything (configuration, checks, reference); its environment is wiped"]


def serves(preload: tuple[str, ...]) -> bool:
    """Whether a worker with these preloads can be forked: they include what the grader imported
    before the fork (a worker without torch is cheaper exec'd)."""
    return _server is not None and set(PRELOAD) <= set(preload)


def spawn(cfg: dict[str, Any], fds: list[int], preload: tuple[str, ...] = PRELOAD) -> Child | None:
    """Fork a worker for launcher document ``cfg`` with pipe ends ``fds`` (requests, replies,
    output). The server imports the ``preload`` modules it lacks first, once (``[worker] preload``:
    torchvision, which every part's handout imports, is imported there and not in the grading
    process). None when the server is gone (then it is closed and the caller execs the launcher)."""
    global _server
    with _lock:
        server = _server
        if server is None:
            return None
        try:
            socket.send_fds(server.sock, [json.dumps({"launch": cfg, "preload": list(preload)}).encode()], fds)
            ready, _, _ = select.select([server.sock], [], [], REPLY_TIMEOUT_S)
            reply = json.loads(server.sock.recv(1 << 16) or b"{}") if ready else {}
        except (OSError, ValueError):
            reply = {}
        pid = reply.get("pid")
        if type(pid) is not int:  # no more forks from it: the exec'd launcher from now on
            _server = None
            server.sock.close()
            try:
                os.kill(server.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            return None
        procs.register_sandbox(child=pid)
        return Child(pid)


# ----------------------------------------------------------------------------- the server side


def _region(first: int) -> tuple[int, int]:
    """Address and size of a block whose start and end are fields ``first`` and ``first + 1`` of
    ``/proc/self/stat`` (proc(5): 48 the command line, 50 the initial environment)."""
    try:
        with open("/proc/self/stat", "rb") as f:
            data = f.read()
        fields = data[data.rindex(b")") + 2:].split()
        start, end = int(fields[first - 3]), int(fields[first + 1 - 3])
    except (OSError, ValueError, IndexError):
        return 0, 0
    return start, max(0, end - start)


def _wipe_environment() -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.clearenv()
    os.environ.clear()  # Python's copy (clearenv already emptied libc's)
    start, size = _region(ENV_FIELD)
    if size:
        ctypes.memset(start, 0, size)


def _serve(sock: socket.socket) -> None:
    """The server's loop: one request (launcher document + three fds), one fork, one reply."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)  # dies with the grader
    if os.getppid() == 1:
        return
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGCHLD):
        signal.signal(sig, signal.SIG_DFL)
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)
    _close_fds(keep={0, 1, 2, sock.fileno()})
    _wipe_environment()
    while True:
        try:
            msg, fds, _, _ = socket.recv_fds(sock, 1 << 20, 8)
        except OSError:
            return
        if not msg:
            return  # the grader closed its end
        try:
            request = json.loads(msg)
            _import_once(request.get("preload", []))
            reply = {"pid": _fork_worker(request["launch"], fds)} if len(fds) == 3 else {"error": "expected 3 fds"}
        except Exception as exc:  # noqa: BLE001 - reported to the grader, which falls back
            reply = {"error": f"{type(exc).__name__}: {exc}"}
        finally:
            for fd in fds:
                os.close(fd)
        sock.send(json.dumps(reply).encode())


def _import_once(names: list[str]) -> None:
    """Import trusted libraries in the server (a failure is left to the worker's own preload,
    which reports it as an exec'd worker would)."""
    import importlib

    for name in names:
        if isinstance(name, str) and name not in sys.modules:
            try:
                importlib.import_module(name)
            except Exception:  # noqa: BLE001
                pass
    gc.freeze()


def _fork_worker(cfg: dict[str, Any], fds: list[int]) -> int:
    """Fork twice so that the worker is re-parented to the grader; returns the worker's pid."""
    r, w = os.pipe()
    middle = os.fork()
    if middle == 0:
        try:
            os.close(r)
            pid = os.fork()
            if pid == 0:
                os.close(w)
                _become_worker(cfg, fds)  # never returns
            os.write(w, str(pid).encode())
        finally:
            os._exit(0)
    os.close(w)
    os.waitpid(middle, 0)  # once it has exited, the worker's parent is the grader
    data = os.read(r, 32)
    os.close(r)
    return int(data)


def _close_fds(keep: set[int]) -> None:
    for fd in [int(name) for name in os.listdir("/proc/self/fd")]:
        if fd not in keep:
            try:
                os.close(fd)
            except OSError:
                pass


def _write_region(start: int, size: int, items: list[str]) -> None:
    """Put NUL-terminated ``items`` at the start of a process memory block, zeros after."""
    if size < 2:
        return
    data = b"".join(s.encode() + b"\0" for s in items)[: size - 1]
    ctypes.memset(start, 0, size)
    ctypes.memmove(start, data, len(data))


def _become_worker(cfg: dict[str, Any], fds: list[int]) -> None:
    """In the worker: the launcher's steps, then ``worker_main.py`` as if exec'd. Never returns."""
    code = 1
    try:
        os.setsid()
        # Pipes to fixed numbers (via high numbers first, in case they sit on 0-4): stdin from
        # /dev/null, stdout and stderr to the output pipe, requests on 3, replies on 4.
        req, rep, out = fds
        launcher.place_fds({0: os.open(os.devnull, os.O_RDONLY), 1: out, 2: out, 3: req, 4: rep})
        _close_fds(keep={0, 1, 2, 3, 4})
        env = {str(k): str(v) for k, v in cfg["env"].items()}
        token = env.get(TOKEN_VAR, "")
        argv = [str(a) for a in cfg["argv"]]
        # What /proc/PID/environ and /proc/PID/cmdline show (ps, the orphan check's token), as
        # much as fits in the blocks the grader was started with: the token always does (start()
        # checks); the command line may be cut (moving a block needs CAP_SYS_RESOURCE, which
        # containers such as Docker's do not give).
        _write_region(*_region(ENV_FIELD), [f"{TOKEN_VAR}={token}"] + [f"{k}={v}" for k, v in env.items()
                                                                        if k != TOKEN_VAR])
        _write_region(*_region(ARG_FIELD), argv)
        os.environ.update(env)
        launcher.setup(cfg)
        # Changing user made the process non-dumpable: /proc/self would be root's, so neither
        # the worker (peak-memory reset, /proc/self/environ) nor its own user could read it.
        # An exec'd worker is dumpable again after its exec; this is the same state.
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_DUMPABLE, 1, 0, 0, 0)
        os.chdir(cfg["cwd"])
        script = next(a for a in argv if a.endswith(".py"))
        args = argv[argv.index(script) + 1:]
        _fresh_interpreter_state(script, args)
        import runpy

        runpy.run_path(script, run_name="__main__")
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    except BaseException:  # noqa: BLE001 - reported on the output pipe, like an interpreter would
        import traceback

        try:
            traceback.print_exc()
            sys.stderr.flush()
        except BaseException:  # noqa: BLE001
            pass
    finally:
        os._exit(code & 0xFF)


def _fresh_interpreter_state(script: str, args: list[str]) -> None:
    """What ``python -s -B script args`` would have: its path, argv, streams, tempdir, seeds."""
    import io
    import random
    import site
    import tempfile

    user_site = getattr(site, "USER_SITE", None)
    here = os.path.dirname(os.path.abspath(script))
    sys.path[:] = [here] + [p for p in sys.path[1:] if p and p != user_site]
    sys.argv[:] = [script, *args]
    sys.dont_write_bytecode = True
    for name in [m for m in sys.modules if m == "autograder" or m.startswith("autograder.")]:
        del sys.modules[name]
    stdin = io.TextIOWrapper(io.BufferedReader(io.FileIO(0, "r", closefd=False)), encoding="utf-8")
    stdout = io.TextIOWrapper(io.BufferedWriter(io.FileIO(1, "w", closefd=False)), encoding="utf-8")
    stderr = io.TextIOWrapper(io.BufferedWriter(io.FileIO(2, "w", closefd=False)), encoding="utf-8",
                              errors="backslashreplace", line_buffering=True)
    sys.stdin = sys.__stdin__ = stdin
    sys.stdout = sys.__stdout__ = stdout
    sys.stderr = sys.__stderr__ = stderr
    tempfile.tempdir = None
    random.seed()
    np = sys.modules.get("numpy")
    if np is not None:
        np.random.seed()
    signal.signal(signal.SIGINT, signal.default_int_handler)
