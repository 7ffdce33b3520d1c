"""Isolation policy: who a worker runs as, with what network, environment and limits.

Two modes, chosen by :meth:`SandboxPolicy.detect`:

``root`` (Gradescope; CI here). Workers run as an unprivileged system user (default
``agsandbox``, created by ``setup.sh`` through :func:`ensure_sandbox_user`) with no
supplementary groups and no capabilities, in a fresh network namespace (only a
loopback device, left down: even 127.0.0.1 is unreachable). Paths handed to
:func:`protect_paths` (reference solution, checks, config, results folder) lose their
group/other permissions so that user cannot read them. ``RLIMIT_NPROC`` bounds the
sandbox user's processes (fork bombs).

``user`` (a student's laptop). No user switch is possible, so workers can read
whatever the student can; the design is the same otherwise. The network is cut with
an unprivileged user+network namespace where the kernel allows it; where it does not,
workers keep the network and :meth:`SandboxPolicy.describe` says so.

In both modes the environment is rebuilt from scratch (PATH, HOME/TMPDIR in a fresh
scratch folder, locale, thread counts, ``PYTHONHASHSEED=0``), core dumps are off, file
sizes and open files are bounded, and ``PR_SET_NO_NEW_PRIVS`` is set. Whether a
namespace really was created is probed once (``launcher.py --probe``) and checked again
from outside for every worker (``/proc/<pid>/ns/net``).
"""
from __future__ import annotations

import json
import os
import pwd
import shutil
import stat
import subprocess
import tempfile
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

DEFAULT_USER = "agsandbox"
LAUNCHER = Path(__file__).resolve().parent / "launcher.py"
_PASS_ENV = ("CUDA_VISIBLE_DEVICES", "LD_LIBRARY_PATH", "NVIDIA_VISIBLE_DEVICES")
_protected: dict[Path, int] = {}  # protected path -> its mode before protect_paths
_probe_cache: dict[tuple[Any, ...], dict[str, Any]] = {}


class SandboxSetupError(RuntimeError):
    """The sandbox could not be set up (a grader or machine problem, never the student's)."""


def ensure_sandbox_user(name: str = DEFAULT_USER) -> tuple[int, int]:
    """Create the unprivileged sandbox user if it is missing; returns (uid, gid). Needs root."""
    try:
        pw = pwd.getpwnam(name)
        return pw.pw_uid, pw.pw_gid
    except KeyError:
        pass
    if os.geteuid() != 0:
        raise PermissionError(f"the sandbox user {name!r} does not exist and only root can create it")
    useradd = shutil.which("useradd") or "/usr/sbin/useradd"
    shell = "/usr/sbin/nologin" if os.path.exists("/usr/sbin/nologin") else "/bin/false"
    proc = subprocess.run([useradd, "--system", "--no-create-home", "--user-group", "--shell", shell, name],
                          capture_output=True, text=True)
    if proc.returncode != 0 and "already exists" not in proc.stderr:
        raise SandboxSetupError(f"useradd {name} failed: {proc.stderr.strip()}")
    pw = pwd.getpwnam(name)
    if pw.pw_uid == 0 or pw.pw_gid == 0:
        raise SandboxSetupError(f"the sandbox user {name!r} must not have uid or gid 0")
    return pw.pw_uid, pw.pw_gid


def _reachable(path: Path, uid: int, gid: int, need: int) -> bool:
    """Whether ``uid``/``gid`` (no supplementary groups) has permission bits ``need`` (an
    ``S_I?OTH`` mask) on ``path``, judged from the mode bits (root cannot use os.access for others)."""
    st = path.stat()
    if st.st_uid == uid:
        return bool(st.st_mode & (need << 6))
    if st.st_gid == gid:
        return bool(st.st_mode & (need << 3))
    return bool(st.st_mode & need)


def interpreter_blockers(uid: int, gid: int) -> list[Path]:
    """Folders that stop ``uid`` from running this Python (missing execute permission)."""
    import sysconfig

    targets = {Path(sys.executable).resolve(), Path(sys.prefix).resolve(), Path(sys.base_prefix).resolve()}
    for key in ("stdlib", "platstdlib", "purelib", "platlib"):
        try:
            targets.add(Path(sysconfig.get_paths()[key]).resolve())
        except KeyError:
            pass
    blockers = []
    for target in targets:
        folders = [p for p in reversed(target.parents)] + ([target] if target.is_dir() else [])
        for folder in folders:
            if not _reachable(folder, uid, gid, stat.S_IXOTH) and folder not in blockers:
                blockers.append(folder)
    return sorted(blockers)


def ensure_interpreter_access(user: str = DEFAULT_USER, fix: bool = True) -> list[Path]:
    """Make sure the sandbox user can run this Python; returns the folders that block it.

    With ``fix`` (root only), each blocking folder gets ``o+x`` (traverse, not list): e.g.
    ``/root`` when Python lives in ``/root/.pyenv``. Called by setup.sh after creating
    the user; the Worker refuses to start in root mode while something blocks.
    """
    uid, gid = ensure_sandbox_user(user)
    blockers = interpreter_blockers(uid, gid)
    if fix and blockers and os.geteuid() == 0:
        for folder in blockers:
            os.chmod(folder, stat.S_IMODE(folder.stat().st_mode) | stat.S_IXOTH)
        blockers = interpreter_blockers(uid, gid)
    return blockers


def _interpreter_paths() -> list[Path]:
    paths = {Path(sys.prefix).resolve(), Path(sys.base_prefix).resolve(), Path(sys.executable).resolve().parent}
    return sorted(paths)


# Concurrent root runs on one checkout (an instructor regrading in parallel, the project's
# tests) share the protection: a registry records each path's original mode and which
# grading processes hold it; the last holder to finish restores the mode. Without it a
# run finishing early would make the reference readable under a run still grading.
_REGISTRY = Path(os.environ.get("AG_PROTECT_REGISTRY", "/tmp/autograder-protected.json"))


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _with_registry(update: Callable[[dict[str, Any]], None]) -> None:
    """Apply ``update`` to the registry under an exclusive lock (root only; 0600 files)."""
    import fcntl

    fd = os.open(str(_REGISTRY) + ".lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            data = json.loads(_REGISTRY.read_text())
            assert isinstance(data, dict)
        except (OSError, ValueError, AssertionError):
            data = {}
        for entry in data.values():  # holders that died without restoring (SIGKILL) no longer count
            entry["holders"] = [h for h in entry.get("holders", []) if _pid_alive(int(h))]
        update(data)
        tmp = _REGISTRY.with_name(_REGISTRY.name + f".{os.getpid()}")
        fd2 = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd2, "w") as f:
            json.dump(data, f)
        os.replace(tmp, _REGISTRY)
    finally:
        os.close(fd)


def protect_paths(paths: Iterable[str | os.PathLike[str]]) -> list[Path]:
    """Make ``paths`` unreadable for the sandbox user (root mode): drop group/other permissions.

    Only the named files or folders change (a folder without ``o+x`` hides everything
    inside it). Missing paths are skipped. Refuses paths that contain the Python
    interpreter the workers need. Returns the paths that were protected.
    """
    todo: list[tuple[Path, int]] = []
    interpreter = _interpreter_paths()
    for raw in paths:
        path = Path(raw).resolve()
        if path == Path("/"):
            raise ValueError("refusing to protect '/'")
        for needed in interpreter:
            if needed == path or path in needed.parents:
                raise ValueError(f"cannot protect {path}: workers need the Python installation in {needed}; "
                                 "protect the secret folders inside it instead")
        try:
            st = path.lstat()
        except FileNotFoundError:
            continue
        if stat.S_ISLNK(st.st_mode):
            continue
        todo.append((path, stat.S_IMODE(st.st_mode)))

    def update(data: dict[str, Any]) -> None:
        for path, mode in todo:
            # First holder: its mode now is the original, unless a run that died (SIGKILL) left
            # its record behind, whose mode is the true original.
            entry = data.setdefault(str(path), {"mode": mode, "holders": []})
            if os.getpid() not in entry["holders"]:
                entry["holders"].append(os.getpid())
            _protected.setdefault(path, int(entry["mode"]))
            os.chmod(path, mode & ~0o077)

    if todo:
        if os.geteuid() == 0:
            _with_registry(update)
        else:  # not root: nothing to share with (tests of the policy as a normal user)
            update({})
    return [path for path, _ in todo]


def protected_paths() -> list[Path]:
    """Everything :func:`protect_paths` protected in this process."""
    return list(_protected)


def restore_protected_paths() -> None:
    """Give the protected paths their modes back once no other grading run holds them
    (local root runs: the checkout stays as it was). On Gradescope there is nothing to
    restore (each container grades one submission)."""
    mine = dict(_protected)
    _protected.clear()
    if not mine:
        return

    def update(data: dict[str, Any]) -> None:
        for path, mode in mine.items():
            entry = data.get(str(path))
            if entry:
                entry["holders"] = [h for h in entry["holders"] if h != os.getpid()]
                if entry["holders"]:
                    continue  # another run still grades: keep it protected
                mode = int(entry["mode"])
                del data[str(path)]
            try:
                os.chmod(path, mode)
            except OSError:
                pass

    if os.geteuid() == 0:
        _with_registry(update)
    else:
        update({})


def python_paths() -> list[str]:
    """The folders of the Python installation a worker runs (the venv and the interpreter it uses)."""
    paths = [sys.prefix, sys.exec_prefix, sys.base_prefix, sys.base_exec_prefix,
             os.path.dirname(os.path.dirname(os.path.realpath(sys.executable)))]
    return list(dict.fromkeys(os.path.realpath(p) for p in paths if p))


@dataclass
class SandboxPolicy:
    """How workers are isolated. Build with :meth:`detect`; the fields can be set directly in tests.

    ``mode``: ``"root"`` (switch to ``user``) or ``"user"`` (stay as the current user).
    ``network``: ``False`` cuts the network (default), ``True`` leaves it.
    ``require_network_isolation``: fail (SandboxSetupError) instead of falling back to a
    worker with network when no namespace can be made.
    """

    mode: str = "user"
    user: str = DEFAULT_USER
    network: bool = False
    require_network_isolation: bool = False
    # Root mode: give each worker a private filesystem view (only the system, Python, the
    # staging folder and its scratch folder; launcher.isolate_filesystem).
    private_filesystem: bool = True
    # Extra folders every worker sees read-write in its private view ($AG_SANDBOX_SHARE, paths
    # separated by ':'): e.g. a test harness's channel. Never the checkout or the reference.
    shared: tuple[str, ...] = ()
    _ids: tuple[int, int] | None = field(default=None, repr=False)

    @classmethod
    def detect(cls, config: Mapping[str, Any] | None = None) -> "SandboxPolicy":
        """The policy for this process: root mode as root, user mode otherwise.

        ``config`` is the ``[worker]`` table of grading.toml; keys read here: ``user``
        (sandbox user name, default ``agsandbox`` or ``$AG_SANDBOX_USER``), ``network``
        (bool, default false), ``require_network_isolation`` (bool, default false).
        """
        config = config or {}
        return cls(
            mode="root" if os.geteuid() == 0 else "user",
            user=str(config.get("user") or os.environ.get("AG_SANDBOX_USER") or DEFAULT_USER),
            network=bool(config.get("network", False)),
            require_network_isolation=bool(config.get("require_network_isolation", False)),
            private_filesystem=bool(config.get("private_filesystem", True)),
            shared=tuple(p for p in os.environ.get("AG_SANDBOX_SHARE", "").split(os.pathsep) if p),
        )

    @property
    def is_root(self) -> bool:
        return self.mode == "root"

    def ids(self) -> tuple[int, int] | None:
        """(uid, gid) of the sandbox user in root mode (created if missing), else None.

        Raises SandboxSetupError when that user cannot run this Python (see
        :func:`ensure_interpreter_access`).
        """
        if not self.is_root:
            return None
        if self._ids is None:
            ids = ensure_sandbox_user(self.user)
            blockers = interpreter_blockers(*ids)
            if blockers:
                raise SandboxSetupError(
                    f"the sandbox user {self.user} cannot run {sys.executable}: no execute permission on "
                    f"{', '.join(map(str, blockers))}. Fix: run ./setup.sh as root, or "
                    f"chmod o+x {' '.join(map(str, blockers))}")
            self._ids = ids
        return self._ids

    # ------------------------------------------------------------------ network

    def _base_config(self) -> dict[str, Any]:
        ids = self.ids()
        return {"uid": ids[0] if ids else None, "gid": ids[1] if ids else None, "rlimits": {"core": 0}}

    def network_mode(self) -> str | None:
        """The namespace recipe the launcher should use ('root' / 'user'), or None for no isolation."""
        return self.probe()["netns"]

    def probe(self) -> dict[str, Any]:
        """Try the isolation once in a throw-away launcher; cached. Keys: netns, network, error."""
        key = (self.mode, self.user, self.network, self.private_filesystem)
        if key in _probe_cache:
            return _probe_cache[key]
        result: dict[str, Any] = {"netns": None, "network": "shared", "error": None}
        if not self.network:
            errors = []
            for recipe in (["root", "user"] if self.is_root else ["user"]):
                report, error = self._launcher_probe(dict(self._base_config(), netns=recipe))
                if report is None:
                    errors.append(f"{recipe}: {error}")
                    continue
                if report.get("network") != "shared":
                    result = {"netns": recipe, "network": report["network"], "error": None}
                    break
                errors.append(f"{recipe}: {report.get('error') or 'unknown error'}")
            else:
                result["error"] = "; ".join(errors)
            if result["netns"] is None and self.require_network_isolation:
                raise SandboxSetupError(f"workers must run without network, but no network namespace can be "
                                        f"created here: {result['error']}")
        result.update(self._probe_filesystem())
        _probe_cache[key] = result
        return result

    def _probe_filesystem(self) -> dict[str, Any]:
        """{"fs": "private" | "shared", "fs_error": why not}: whether a private view can be built here."""
        if not self.is_root or not self.private_filesystem:
            why = "not root" if not self.is_root else "private_filesystem = false in the config"
            return {"fs": "shared", "fs_error": why}
        with tempfile.TemporaryDirectory(prefix="ag-fsprobe-") as tmp:
            report, error = self._launcher_probe(dict(self._base_config(), fs={"root": tmp, "ro": python_paths(), "rw": []}))
        if report is None:
            return {"fs": "shared", "fs_error": f"probe failed: {error}"}
        return {"fs": report.get("fs", "shared"), "fs_error": report.get("fs_error")}

    def _launcher_probe(self, cfg: dict[str, Any]) -> tuple[dict[str, Any] | None, str]:
        """Run ``launcher.py --probe`` with ``cfg``: (its report, '') or (None, why it gave none)."""
        try:
            proc = subprocess.run([sys.executable, "-s", "-B", str(LAUNCHER), "--probe", json.dumps(cfg)],
                                  capture_output=True, text=True, timeout=30, env=self._launcher_env())
        except (subprocess.SubprocessError, OSError) as exc:
            return None, str(exc)
        try:
            return json.loads(proc.stdout.strip().splitlines()[-1]), ""
        except (ValueError, IndexError):
            tail = (proc.stderr or "").strip().splitlines()
            return None, tail[-1] if tail else f"exit status {proc.returncode}"

    # ------------------------------------------------------------------ worker start

    @staticmethod
    def _launcher_env() -> dict[str, str]:
        return {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8", "PYTHONHASHSEED": "0"}

    def worker_env(self, scratch: Path, threads: int, token: str) -> dict[str, str]:
        """The complete environment of a worker (nothing is inherited from the grader)."""
        n = str(max(1, threads))
        s = str(scratch)
        env = {
            "PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": s, "TMPDIR": s, "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8",
            "PYTHONHASHSEED": "0", "PYTHONDONTWRITEBYTECODE": "1", "PYTHONNOUSERSITE": "1", "PYTHONIOENCODING": "utf-8",
            "OMP_NUM_THREADS": n, "MKL_NUM_THREADS": n, "OPENBLAS_NUM_THREADS": n, "NUMEXPR_NUM_THREADS": n,
            "MPLBACKEND": "Agg", "MPLCONFIGDIR": os.path.join(s, ".matplotlib"), "XDG_CACHE_HOME": os.path.join(s, ".cache"),
            "TORCH_HOME": os.path.join(s, ".torch"), "AG_SANDBOX_TOKEN": token,
        }
        for key in _PASS_ENV:
            if key in os.environ:
                env[key] = os.environ[key]
        return env

    def make_scratch(self, path: Path) -> Path:
        """A fresh, private, writable folder for one worker (its HOME, TMPDIR and cwd)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        os.chmod(path.parent, 0o711)  # traversable, not listable
        if path.exists():
            shutil.rmtree(path)
        path.mkdir(mode=0o700)
        ids = self.ids()
        if ids:
            os.chown(path, ids[0], ids[1])
        return path

    def launch_config(self, *, rlimits: dict[str, int], fds: list[int], cwd: Path,
                      argv: list[str], env: dict[str, str], fs_root: Path | None = None,
                      read_only: list[Path] = (), read_write: list[Path] = ()) -> dict[str, Any]:
        """The JSON document ``launcher.py`` receives. With ``fs_root`` (an empty folder) and a
        private filesystem possible here, the worker sees only the system, Python, ``read_only``
        and ``read_write`` (see ``launcher.isolate_filesystem``)."""
        cfg = self._base_config()
        cfg["rlimits"] = dict(cfg["rlimits"], **rlimits)
        if not self.is_root and "nproc" in cfg["rlimits"]:
            # RLIMIT_NPROC counts every thread of the user: allow what already runs, plus the budget.
            from .procs import count_threads

            cfg["rlimits"]["nproc"] += count_threads(os.getuid())
        cfg.update(netns=self.network_mode(), require_netns=self.network_mode() is not None,
                   fds=fds, cwd=str(cwd), argv=argv, env=env)
        if fs_root is not None and self.probe().get("fs") == "private":
            cfg.update(fs={"root": str(fs_root), "ro": python_paths() + [str(p) for p in read_only],
                           "rw": [str(p) for p in read_write] + list(self.shared)}, require_fs=True)
        return cfg

    def launcher_argv(self, cfg: dict[str, Any]) -> list[str]:
        return [sys.executable, "-s", "-B", str(LAUNCHER), json.dumps(cfg)]

    # ------------------------------------------------------------------ reporting

    def describe(self) -> list[str]:
        """Human-readable lines saying how student code is isolated here."""
        lines = []
        if self.is_root:
            uid, gid = self.ids() or (0, 0)
            lines.append(f"workers run as user {self.user} (uid {uid}, gid {gid}) without supplementary groups "
                         "or capabilities")
        else:
            lines.append(f"workers run as your own user (uid {os.geteuid()}): student code can read what you can "
                         "(full isolation needs root, as on Gradescope)")
        probe = self.probe()
        if self.network:
            lines.append("workers have network access (network = true in the config)")
        elif probe["netns"]:
            how = "a network namespace" if probe["netns"] == "root" else "a user + network namespace"
            lines.append(f"workers run without network ({how}; not even 127.0.0.1)")
        else:
            lines.append(f"WARNING: workers have network access: no network namespace is possible here "
                         f"({probe['error'] or 'not supported'})")
        if self.is_root:
            shown = ", ".join(str(p) for p in _protected) or "nothing yet"
            lines.append(f"unreadable for workers: {shown}")
        if probe.get("fs") == "private":
            lines.append("workers see only the system (/usr, /etc, /dev, /proc, /sys), Python, the staging folder "
                         "and their own scratch folder; /tmp is empty and private, home folders and the checkout "
                         "do not exist for them")
        else:
            lines.append(f"WARNING: workers can read every world-readable file on this machine (no private "
                         f"filesystem view: {probe.get('fs_error') or 'not supported'}); only the paths above are "
                         "hidden")
        lines.append("student code runs only in worker processes; they return plain data (no pickle); "
                     "each call has a time and memory limit")
        return lines
