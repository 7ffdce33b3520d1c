"""A warm grading process for the test suite: ``python -m autograder grade`` without the start-up.

Each grade the tests run used to start a Python interpreter that imports torch, numpy, pytest
and hypothesis (~1.7 s of CPU before the first check, on every one of ~300 grades: issue 16).
This server imports those third-party libraries once, then forks one child per grade. The
child is a fresh ``python -m autograder grade ...`` in everything the grader can observe: its
own pid, the requested working folder, environment, argv and ``sys.path``; stdin from
/dev/null, stdout and stderr to files; the ``autograder`` package imported anew (never in the
server, so no configuration, registry or module-level state is shared between grades).

The server is one process per test process (pytest-xdist worker), started on first use, and
it is single-threaded apart from what ``import numpy`` starts (OpenBLAS' pool, which is
fork-aware). A grade as another user (the attack suite's user leg, through ``setpriv``) still
starts a real interpreter; ``AG_TESTS_COLD=1`` makes every grade do so.

Protocol (one JSON line each way per grade): request ``{"argv", "cwd", "env", "out", "err"}``;
replies ``{"pid": child}`` at once and ``{"rc": status}`` when the child ends.
"""
from __future__ import annotations

import atexit
import json
import os
import select
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
# What the grading process imports from outside the project (what makes its start slow), and
# torchvision, which its fork server imports for the workers (autograder/sandbox/forkserver.py:
# ~1 s of CPU per grade otherwise; the grader itself never uses it).
WARM_IMPORTS = ("torch", "numpy", "torchvision", "hypothesis", "pytest", "_pytest.python", "_pytest.main",
                "_pytest.fixtures", "pygments.lexers", "xdist.plugin", "jsonschema")


def _child(request: dict[str, Any]) -> None:
    """In the forked child: become ``python -m autograder <argv>`` and exit with its status."""
    code = 1
    try:
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)
        os.close(devnull)
        for fd, path in ((1, request["out"]), (2, request["err"])):
            handle = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            os.dup2(handle, fd)
            os.close(handle)
        signal.signal(signal.SIGPIPE, signal.SIG_IGN)  # as the interpreter sets it at start-up
        signal.signal(signal.SIGINT, signal.default_int_handler)
        atexit._clear()
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"])
        tempfile.tempdir = None  # re-read TMPDIR
        sys.path[0] = request["cwd"]  # what ``python -m`` puts first
        sys.argv = ["-m", *request["argv"]]
        import runpy

        try:
            runpy.run_module("autograder", run_name="__main__", alter_sys=True)
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
            if not isinstance(exc.code, (int, type(None))):
                print(exc.code, file=sys.stderr)
        atexit._run_exitfuncs()
    except BaseException:
        import traceback

        traceback.print_exc()
        code = 1
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code)


def serve() -> None:
    for name in WARM_IMPORTS:
        try:
            __import__(name)
        except ImportError:
            pass
    assert not any(m == "autograder" or m.startswith("autograder.") for m in sys.modules), "autograder imported warm"
    requests, replies = sys.stdin.buffer, sys.stdout.buffer
    for line in requests:
        request = json.loads(line)
        pid = os.fork()
        if pid == 0:
            _child(request)
        replies.write((json.dumps({"pid": pid}) + "\n").encode())
        replies.flush()
        _, status = os.waitpid(pid, 0)
        replies.write((json.dumps({"rc": os.waitstatus_to_exitcode(status)}) + "\n").encode())
        replies.flush()


class WarmGrader:
    """The test process's handle on its server (started on first use, stopped at exit)."""

    def __init__(self) -> None:
        self.proc: subprocess.Popen | None = None
        atexit.register(self.stop)

    def _start(self) -> subprocess.Popen:
        if self.proc is None or self.proc.poll() is not None:
            self.proc = subprocess.Popen([sys.executable, "-m", "tests.warm_grader"], cwd=ROOT, stdin=subprocess.PIPE,
                                         stdout=subprocess.PIPE, env=os.environ.copy())
        return self.proc

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.stdin.close()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()

    def _reply(self, proc: subprocess.Popen, deadline: float) -> dict[str, Any] | None:
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([proc.stdout], [], [], left)[0]:
            return None
        line = proc.stdout.readline()
        if not line:
            raise RuntimeError(f"the warm grader died (exit status {proc.wait()})")
        return json.loads(line)

    def run(self, argv: list[str], cwd: Path, env: dict[str, str], timeout: float) -> subprocess.CompletedProcess:
        """Like ``subprocess.run([python, "-m", "autograder", *argv], capture_output=True, text=True)``."""
        proc = self._start()
        with tempfile.TemporaryDirectory(prefix="ag-warm-") as tmp:
            out, err = Path(tmp) / "out", Path(tmp) / "err"
            request = {"argv": argv, "cwd": str(cwd), "env": env, "out": str(out), "err": str(err)}
            proc.stdin.write((json.dumps(request) + "\n").encode())
            proc.stdin.flush()
            deadline = time.monotonic() + timeout
            child = self._reply(proc, time.monotonic() + 60)["pid"]  # sent right after the fork, whatever the limit
            done = self._reply(proc, deadline)
            if done is None:
                os.kill(child, signal.SIGKILL)
                self._reply(proc, time.monotonic() + 30)
                raise subprocess.TimeoutExpired(argv, timeout)
            return subprocess.CompletedProcess(argv, done["rc"], out.read_text(errors="replace"),
                                               err.read_text(errors="replace"))


_WARM = WarmGrader()


def run_grader(argv: list[str], cwd: Path = ROOT, env: dict[str, str] | None = None,
               timeout: float = 900) -> subprocess.CompletedProcess:
    """``python -m autograder <argv>`` in ``cwd`` with ``env`` (default: this process's), warm
    unless ``AG_TESTS_COLD`` is set."""
    env = dict(os.environ if env is None else env)
    if os.environ.get("AG_TESTS_COLD"):
        return subprocess.run([sys.executable, "-m", "autograder", *argv], cwd=cwd, capture_output=True, text=True,
                              timeout=timeout, env=env)
    return _WARM.run(argv, cwd, env, timeout)


if __name__ == "__main__":
    serve()
