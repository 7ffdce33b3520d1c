"""The untrusted side: a worker process that imports and runs student code.

Started by the grader (through ``launcher.py``) as::

    python -s -B <staging>/_ag_worker/worker_main.py --part-dir <staging>/part1 ...

with requests arriving on fd 3 and replies leaving on fd 4 (frames of ``protocol.py``).
Its stdout and stderr are pipes that the grader drains and truncates, so nothing a
student prints can be mistaken for a reply. Everything this process sends is treated
as untrusted *data* by the grader: student code shares this process and can forge
replies, patch this module or the drivers; it still cannot make the grader run code.

This file is copied into the staging folder next to ``protocol.py`` and imports it by
file path under a private name (``_ag_protocol``) so that a student module called
``protocol.py`` neither shadows it nor is shadowed by it. Worker-side helper modules
("drivers", instructor code that runs next to the student's) live in
``_ag_worker/drivers`` and are called with targets like ``@drivers_part1.train_vae``.

Requests (dicts): ``op`` is one of ``call`` (target, args, kwargs, seed), ``method``
(handle, name, args, kwargs, seed), ``getattr`` (handle, name), ``release`` (handle),
``import`` (module), ``ping``, ``exit``. Every request carries ``seq``; the reply echoes
it with either ``ok: true, value`` or ``ok: false, error: {type, message, traceback,
memory, protocol}`` or ``exit: {code, traceback}`` (``sys.exit`` in student code, after
which the process exits), plus ``peak_rss_kb`` (the call's own peak) and ``wall_s``.
"""
from __future__ import annotations

import argparse
import importlib
import importlib.util
import os
import random
import re
import sys
import time
import traceback
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
REQUEST_FD, REPLY_FD = 3, 4
TARGET = re.compile(r"^@?[A-Za-z_]\w*(\.[A-Za-z_]\w*)+$")
MODULE = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*$")
TRACEBACK_LINES = 20
MESSAGE_CHARS = 4000


def _load_protocol() -> Any:
    spec = importlib.util.spec_from_file_location("_ag_protocol", os.path.join(HERE, "protocol.py"))
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["_ag_protocol"] = module
    spec.loader.exec_module(module)
    return module


class StaleHandle(LookupError):
    """A request named a handle that this worker does not hold."""


class ObjectTable:
    """Objects the grader refers to by handle; the same object always gets the same id."""

    def __init__(self, protocol: Any, first_id: int) -> None:
        self.protocol = protocol
        self.next_id = first_id
        self.objects: dict[int, Any] = {}
        self.ids: dict[int, int] = {}  # id(obj) -> handle id, valid while the object is held

    def add(self, obj: Any) -> Any:
        hid = self.ids.get(id(obj))
        if hid is None or self.objects.get(hid) is not obj:
            hid = self.next_id
            self.next_id += 1
            self.objects[hid] = obj
            self.ids[id(obj)] = hid
        cls = type(obj)
        module = getattr(cls, "__module__", "") or ""
        qualname = getattr(cls, "__qualname__", cls.__name__)
        name = qualname if module in ("builtins", "__main__") else f"{module}.{qualname}"
        return self.protocol.Handle(hid, str(name)[:200])

    def get(self, hid: int) -> Any:
        if hid not in self.objects:
            raise StaleHandle(f"worker object #{hid} does not exist (released, or made by an earlier worker)")
        return self.objects[hid]

    def release(self, hid: int) -> None:
        obj = self.objects.pop(hid, None)
        if obj is not None and self.ids.get(id(obj)) == hid:
            del self.ids[id(obj)]


class Worker:
    def __init__(self, args: argparse.Namespace, protocol: Any) -> None:
        self.args = args
        self.protocol = protocol
        self.table = ObjectTable(protocol, args.handle_base)
        self.part_dir = os.path.abspath(args.part_dir)
        self.drivers_dir = os.path.abspath(args.drivers_dir) if args.drivers_dir else ""
        self.strip_prefix = os.path.dirname(self.part_dir) + os.sep

    # ----------------------------------------------------------------- targets

    def load_driver(self, name: str) -> Any:
        module = sys.modules.get(name)
        if module is not None and os.path.dirname(os.path.abspath(getattr(module, "__file__", "") or "")) == self.drivers_dir:
            return module
        path = os.path.join(self.drivers_dir, name + ".py")
        if not self.drivers_dir or not os.path.isfile(path):
            raise ImportError(f"no worker-side driver module named {name!r}")
        spec = importlib.util.spec_from_file_location(name, path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        try:
            spec.loader.exec_module(module)
        except BaseException:
            sys.modules.pop(name, None)
            raise
        return module

    def resolve_target(self, target: Any) -> Any:
        if type(target) is not str or not TARGET.match(target):
            raise ValueError(f"bad call target {target!r} (expected 'module.name' or '@driver.name')")
        first, *rest = target.lstrip("@").split(".")
        obj = self.load_driver(first) if target.startswith("@") else importlib.import_module(first)
        for part in rest:
            obj = getattr(obj, part)
        return obj

    # ----------------------------------------------------------------- replies

    def send(self, message: dict[str, Any], to_handle: bool = False) -> None:
        for stream in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__):
            try:
                stream.flush()  # student output goes out before the reply
            except Exception:
                pass
        try:
            chunks = self.protocol.encode(message, to_handle=self.table.add if to_handle else None,
                                          max_bytes=self.args.max_bytes)
        except self.protocol.ProtocolError as exc:
            chunks = self.protocol.encode({
                "seq": message.get("seq"), "ok": False, "peak_rss_kb": message.get("peak_rss_kb"),
                "error": {"type": "ProtocolError", "message": f"the result could not be sent: {exc}",
                          "traceback": "", "memory": False, "protocol": True}})
        self.protocol.write_frame(REPLY_FD, chunks)

    def describe_error(self, exc: BaseException) -> dict[str, Any]:
        try:
            type_name = type(exc).__name__
        except Exception:
            type_name = "Exception"
        try:
            message = str(exc)
        except BaseException:
            message = "<the exception's message could not be computed>"
        if len(message) > MESSAGE_CHARS:
            message = message[:MESSAGE_CHARS] + f"... [{len(message) - MESSAGE_CHARS} more characters]"
        try:
            frames = [f for f in traceback.extract_tb(exc.__traceback__)
                      if not os.path.abspath(f.filename).startswith(HERE + os.sep)]
            lines = "".join(traceback.format_list(frames)).splitlines()
            lines += "".join(traceback.format_exception_only(type(exc), exc)).splitlines()
            text = "\n".join(lines[-TRACEBACK_LINES:]).replace(self.strip_prefix, "")
        except BaseException:
            text = ""
        low = message.lower()
        memory = isinstance(exc, MemoryError) or (isinstance(exc, RuntimeError) and (
            "can't allocate memory" in low or "defaultcpuallocator" in low or "out of memory" in low))
        return {"type": type_name, "message": message, "traceback": text, "memory": memory, "protocol": False}

    # ----------------------------------------------------------------- requests

    def seed(self, seed: Any) -> None:
        if seed is None:
            return
        seed = int(seed)
        random.seed(seed)
        np = sys.modules.get("numpy")
        if np is not None:
            np.random.seed(seed % (2 ** 32))
        torch = sys.modules.get("torch")
        if torch is not None:
            torch.manual_seed(seed)

    def run(self, msg: dict[str, Any]) -> Any:
        op = msg.get("op")
        args = msg.get("args") or ()
        kwargs = msg.get("kwargs") or {}
        if op == "call":
            fn = self.resolve_target(msg.get("target"))
            self.seed(msg.get("seed"))  # after the import: module-level code does not shift the stream
            return fn(*args, **kwargs)
        if op == "method":
            fn = getattr(self.table.get(msg["handle"]), msg["name"])
            self.seed(msg.get("seed"))
            return fn(*args, **kwargs)
        if op == "getattr":
            return getattr(self.table.get(msg["handle"]), msg["name"])
        if op == "release":
            self.table.release(msg["handle"])
            return None
        if op == "release_all":
            count = len(self.table.objects)
            self.table.objects.clear()
            self.table.ids.clear()
            release_free_memory()
            return count
        if op == "import":
            name = msg.get("module")
            if type(name) is not str or not MODULE.match(name):
                raise ValueError(f"bad module name {name!r}")
            importlib.import_module(name)
            return None
        if op == "ping":
            return {"pid": os.getpid(), "objects": len(self.table.objects)}
        if op == "exit":
            os._exit(0)
        raise ValueError(f"unknown request op {op!r}")

    def serve(self) -> None:
        protocol = self.protocol
        while True:
            try:
                header, payload = protocol.read_frame(REQUEST_FD, self.args.max_bytes)
            except EOFError:
                os._exit(0)  # the grader went away
            seq = None
            reset_peak()
            started = time.monotonic()
            missing: list[int] = []

            def resolve(handle: Any) -> Any:
                if handle.id in self.table.objects:
                    return self.table.objects[handle.id]
                missing.append(handle.id)  # reported once seq is known
                return None

            try:
                msg = protocol.decode(header, payload, resolve=resolve, grad=True)
                del header, payload
                if type(msg) is not dict:
                    raise protocol.ProtocolError("a request must be a dict")
                seq = msg.get("seq")
                if missing:
                    raise StaleHandle(f"worker object #{missing[0]} does not exist (released, or made by an "
                                      "earlier worker)")
                value = self.run(msg)
            except SystemExit as exc:
                code = exc.code
                status = code if type(code) is int else (0 if code is None else 1)
                self.send({"seq": seq, "exit": {"code": repr(code), "status": status,
                                                "traceback": self.describe_error(exc)["traceback"]},
                           "peak_rss_kb": peak_rss_kb()})
                os._exit(status & 0xFF)
            except BaseException as exc:  # student code raised: report it, keep serving
                error = self.describe_error(exc)
                if isinstance(exc, StaleHandle):
                    error["type"] = "HandleError"
                elif isinstance(exc, protocol.ProtocolError) and seq is None:
                    error["protocol"] = True
                del exc
                self.send({"seq": seq, "ok": False, "error": error, "peak_rss_kb": peak_rss_kb(),
                           "wall_s": time.monotonic() - started})
                continue
            reply = {"seq": seq, "ok": True, "value": value, "peak_rss_kb": peak_rss_kb(),
                     "wall_s": time.monotonic() - started}
            del value
            self.send(reply, to_handle=True)
            if reply["wall_s"] > TRIM_AFTER_S:
                release_free_memory()


# A call this long (a training, a big batch) may leave tens of MB free inside malloc's heap.
TRIM_AFTER_S = 0.05
_malloc_trim: Any = None


def release_free_memory() -> None:
    """Give malloc's free pages back to the system (glibc keeps them otherwise; the container has 768 MB).

    The grading process calls it too, after each check (measured: ~50 MB over a full grade).
    """
    global _malloc_trim
    if _malloc_trim is None:
        try:
            import ctypes

            _malloc_trim = ctypes.CDLL("libc.so.6").malloc_trim
        except (OSError, AttributeError):
            _malloc_trim = False
    if _malloc_trim:
        _malloc_trim(0)


def reset_peak() -> None:
    """Reset the kernel's peak-RSS counter so each reply reports that call's own peak."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass


def peak_rss_kb() -> int | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


# ----------------------------------------------------------------- missing packages
class MissingPackage(ModuleNotFoundError):
    """Raised when student code uses a package that is not installed where it is graded."""


class _Missing:
    """Stands for ``name`` from a package that is not installed: any use raises MissingPackage."""

    def __init__(self, name: str, package: str, importer: str) -> None:
        self._ag_name, self._ag_package, self._ag_importer = name, package, importer

    def _ag_raise(self, *args: Any, **kwargs: Any) -> Any:
        raise MissingPackage(
            f"{self._ag_name} cannot be used: the package {self._ag_package!r} is not installed where your code is "
            f"graded ({self._ag_importer} imports it; the import was allowed so that the rest of the file can be "
            "graded, but the code that uses it cannot run here)", name=self._ag_package)

    def __getattr__(self, attr: str) -> Any:
        if attr.startswith("__") and attr.endswith("__"):
            raise AttributeError(attr)
        return _Missing(f"{self._ag_name}.{attr}", self._ag_package, self._ag_importer)

    __call__ = _ag_raise
    __iter__ = _ag_raise
    __getitem__ = _ag_raise
    __enter__ = _ag_raise

    def __mro_entries__(self, bases: tuple) -> tuple:
        self._ag_raise()
        return ()


class _PlaceholderModule(type(sys)):  # a module whose every attribute is a _Missing
    def __getattr__(self, attr: str) -> Any:
        if attr.startswith("__") and attr.endswith("__"):
            raise AttributeError(attr)
        return _Missing(f"{self.__name__}.{attr}", self.__name__.split(".")[0], self.__ag_importer__)


class _PlaceholderLoader:
    def __init__(self, importer: str) -> None:
        self.importer = importer

    def create_module(self, spec: Any) -> Any:
        module = _PlaceholderModule(spec.name)
        module.__ag_placeholder__ = True
        module.__ag_importer__ = self.importer
        module.__path__ = []  # a package: its submodules are placeholders too
        return module

    def exec_module(self, module: Any) -> None:
        pass


class MissingPackageFinder:
    """Last on ``sys.meta_path``: an import *written in a file of the part folder* of a package that
    no finder found becomes a placeholder module, so a course-environment import that the graded
    functions never use (scikit-learn, seaborn, the template's own ``mnist``) costs nothing, and
    the code that does use it fails with a clear message. Imports made by libraries (optional
    dependencies probed with ``try: import x``) fail as usual."""

    def __init__(self, part_dir: str) -> None:
        self.part_dir = os.path.abspath(part_dir) + os.sep

    def _importer(self) -> str | None:
        frame = sys._getframe(2)
        while frame is not None:
            path = frame.f_code.co_filename
            if not path.startswith("<") and "importlib" not in path and os.path.abspath(path) != os.path.abspath(__file__):
                absolute = os.path.abspath(path)
                return os.path.basename(absolute) if absolute.startswith(self.part_dir) else None
            frame = frame.f_back
        return None

    def find_spec(self, name: str, path: Any, target: Any = None) -> Any:
        parent = sys.modules.get(name.rpartition(".")[0]) if "." in name else None
        if "." in name and not getattr(parent, "__ag_placeholder__", False):
            return None  # a missing submodule of a real package: a real error
        importer = getattr(parent, "__ag_importer__", None) or self._importer()
        if importer is None:
            return None
        return importlib.util.spec_from_loader(name, _PlaceholderLoader(importer))


def main(argv: list[str]) -> None:
    if sys.path and os.path.abspath(sys.path[0] or os.curdir) == HERE:
        del sys.path[0]  # python puts the script's folder first; protocol.py must not be importable as such
    parser = argparse.ArgumentParser(prog="worker_main")
    parser.add_argument("--part-dir", required=True)
    parser.add_argument("--drivers-dir", default="")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--handle-base", type=int, default=1)
    parser.add_argument("--preload", default="numpy,torch")
    parser.add_argument("--max-bytes", type=int, default=512 << 20)
    args = parser.parse_args(argv)

    try:  # as on a terminal: prints and errors interleave in program order
        sys.stdout.reconfigure(line_buffering=True)
    except (AttributeError, ValueError):
        pass
    for fd in (REQUEST_FD, REPLY_FD):
        os.set_inheritable(fd, False)  # student subprocesses do not get the protocol pipes
    protocol = _load_protocol()
    # Trusted libraries are imported before the part folder is on sys.path, so a student
    # file called torch.py or numpy.py cannot replace them.
    for name in filter(None, args.preload.split(",")):
        try:
            importlib.import_module(name)
        except Exception:  # noqa: BLE001 - not installed here: the student's own import says so
            pass
    torch = sys.modules.get("torch")
    if torch is not None and args.threads > 0:
        torch.set_num_threads(args.threads)
        try:
            torch.set_num_interop_threads(args.threads)
        except RuntimeError:
            pass
    sys.path.insert(0, os.path.abspath(args.part_dir))
    sys.meta_path.append(MissingPackageFinder(args.part_dir))
    if args.drivers_dir:
        sys.path.append(os.path.abspath(args.drivers_dir))

    worker = Worker(args, protocol)
    worker.send({"seq": 0, "ok": True, "value": {
        "pid": os.getpid(), "python": sys.version.split()[0],
        "torch": getattr(torch, "__version__", None), "peak_rss_kb": peak_rss_kb()}})
    worker.serve()


if __name__ == "__main__":
    main(sys.argv[1:])
