"""A fake student module for the sandbox tests: well-behaved and hostile functions."""
import os
import random
import signal
import socket
import sys
import time


def echo(*args, **kwargs):
    return {"args": list(args), "kwargs": kwargs}


def identity(x):
    return x


def KLD(mean, log_std):
    import torch

    return 0.5 * torch.sum(torch.exp(2 * log_std) + mean ** 2 - 1 - 2 * log_std, dim=-1)


def not_done(mean, log_std):
    raise NotImplementedError("KLD (Q1.8) is not implemented yet: fill in the formula")


def chatty(n):
    print("hello from the student")
    print("to stderr", file=sys.stderr)
    return n + 1


def draws():
    out = [random.random()]
    if "numpy" in sys.modules:
        out.append(float(sys.modules["numpy"].random.rand()))
    if "torch" in sys.modules:
        out.append(float(sys.modules["torch"].rand(())))
    return out


def env(name):
    return os.environ.get(name)


def whoami():
    return {"uid": os.getuid(), "euid": os.geteuid(), "gid": os.getgid(), "groups": os.getgroups(),
            "cwd": os.getcwd(), "home": os.environ.get("HOME")}


class Counter:
    def __init__(self, start=0):
        self.value = start
        self.items = {"a": 1}

    def add(self, k=1):
        self.value += k
        return self.value

    def me(self):
        return self


def make_model():
    import torch

    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.Tanh())


def lambda_and_dict():
    return [lambda x: x, {1: "int key"}, object()]


def cycle():
    a = []
    a.append(a)
    return a


def liar():
    import torch

    class Liar(torch.Tensor):
        def __eq__(self, other):
            return True

        __hash__ = torch.Tensor.__hash__

    return torch.zeros(3).as_subclass(Liar)


def param_and_grad():
    import torch

    p = torch.nn.Parameter(torch.ones(2))
    return {"param": p, "with_grad": p * 3}


def hang():
    while True:
        pass


def sleep_forever():
    time.sleep(10_000)


def ignore_sigterm_and_hang():
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    time.sleep(10_000)


def exit_now():
    os._exit(0)


def sys_exit():
    sys.exit(4)


def kill_self():
    os.kill(os.getpid(), signal.SIGSEGV)


def memory_bomb():
    blocks = []
    while True:
        blocks.append(b"x" * (16 << 20))  # written, so really resident


def huge_tensor():
    import torch

    return torch.ones(10_000_000_000).sum()


def spike(mb):
    block = b"x" * (mb << 20)
    del block
    return "survived"


def flood(mb):
    chunk = "x" * (1 << 20)
    for _ in range(mb):
        sys.stdout.write(chunk)
    sys.stdout.write("THE END\n")
    return "done"


def double_fork():
    """Leave a grandchild in its own session that ignores SIGTERM; return its pid."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.setsid()
            if os.fork() == 0:
                signal.signal(signal.SIGTERM, signal.SIG_IGN)
                os.write(w, str(os.getpid()).encode())
                os.close(w)
                time.sleep(10_000)
        finally:
            os._exit(0)
    os.close(w)
    os.waitpid(pid, 0)
    grandchild = int(os.read(r, 100))
    os.close(r)
    return grandchild


def fork_many(n):
    """Fork up to n sleeping children; returns how many forks succeeded."""
    made = []
    try:
        for _ in range(n):
            pid = os.fork()
            if pid == 0:
                time.sleep(10_000)
                os._exit(0)
            made.append(pid)
    except OSError:
        pass
    for pid in made:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    return len(made)


def forge(kind):
    """Write a fake reply on the protocol pipe, as a hostile submission could."""
    protocol = sys.modules["_ag_protocol"]
    if kind == "garbage":
        os.write(4, b"import os; os.system('echo pwned')\n" * 4)
        time.sleep(10_000)
    seq = None
    frame = sys._getframe(1)
    while frame is not None:  # find the request being served, like an attacker would
        msg = frame.f_locals.get("msg")
        if isinstance(msg, dict) and "seq" in msg:
            seq = msg["seq"]
            break
        frame = frame.f_back
    if kind == "wrong_seq":
        seq = -5
    protocol.write_frame(4, protocol.encode({"seq": seq, "ok": True, "value": "forged",
                                             "peak_rss_kb": 1}))
    return "real"


def connect(port):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(2)
    try:
        return s.connect_ex(("127.0.0.1", port))
    finally:
        s.close()


def read_file(path):
    with open(path) as f:
        return f.read()


def write_file(path, text):
    with open(path, "w") as f:
        f.write(text)
    return True


_ticks = [0]


def start_ticker():
    import threading

    def tick():
        while True:
            _ticks[0] += 1
            time.sleep(0.001)

    threading.Thread(target=tick, daemon=True).start()
    return True


def ticks():
    return _ticks[0]


def grow_later(mb, delay):
    """Leave a child in its own session that allocates ``mb`` MB after ``delay`` seconds."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.setsid()
            os.write(w, b"1")  # out of the worker's group before the call returns (and it is frozen)
            time.sleep(delay)
            blocks = [b"x" * (16 << 20) for _ in range(mb // 16)]
            time.sleep(10_000)
            del blocks
        finally:
            os._exit(0)
    os.close(w)
    os.read(r, 1)
    os.close(r)
    return pid


def huge_bytes():
    return len(bytearray(100 << 30))  # 100 GB: refused at once by RLIMIT_DATA


def find_files(name, needle, roots=("/",), skip=("/proc", "/sys", "/dev", "/usr")):
    """A filesystem-walking thief: every readable file called ``name`` under ``roots`` that contains ``needle``."""
    import os

    found = []
    for root in roots:
        for top, dirs, files in os.walk(root, onerror=lambda e: None):
            dirs[:] = [d for d in dirs if os.path.join(top, d) not in skip]
            if name in files:
                path = os.path.join(top, name)
                try:
                    with open(path, errors="replace") as f:
                        if needle in f.read():
                            found.append(path)
                except OSError:
                    pass
    return found


def listdir(path):
    import os

    return sorted(os.listdir(path))


def interpreter_facts():
    """What this worker process looks like from inside (tests/test_forkserver.py compares a
    forked worker with an exec'd one)."""
    import random
    import tempfile

    def block(path):
        with open(path, "rb") as f:
            return [item.decode(errors="replace") for item in f.read().split(b"\0") if item]

    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # what the orphan check sees of a process the worker forks
        os.write(w, "\n".join(block("/proc/self/environ")).encode())
        os._exit(0)
    os.close(w)
    os.waitpid(pid, 0)
    child_environ = os.read(r, 1 << 20).decode().split("\n")
    os.close(r)
    import numpy

    return {
        "environ_block": block("/proc/self/environ"), "child_environ_block": child_environ,
        "environ": dict(os.environ), "cmdline": block("/proc/self/cmdline"),
        "sys_path": list(sys.path), "sys_argv": list(sys.argv),
        "autograder_modules": sorted(m for m in sys.modules if m.split(".")[0] == "autograder"),
        "stdout": [sys.stdout.encoding, sys.stdout.errors, sys.__stdout__ is sys.stdout],
        "stderr": [sys.stderr.encoding, sys.stderr.errors],
        "dont_write_bytecode": sys.dont_write_bytecode, "tempdir": tempfile.gettempdir(), "cwd": os.getcwd(),
        "random": random.random(), "numpy_random": float(numpy.random.rand()),
        "ppid": os.getppid(), "uid": os.getuid(), "sid_is_pid": os.getsid(0) == os.getpid(),
        "threads": len(os.listdir("/proc/self/task")), "fds": sorted(int(fd) for fd in os.listdir("/proc/self/fd")),
    }
