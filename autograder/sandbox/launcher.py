"""Trusted first stage of a worker process: isolate, drop privileges, then exec the worker.

The grader starts ``python -s -B launcher.py '<json>'`` with ``subprocess.Popen`` (new
session, clean environment, only the two protocol pipes passed). This small,
single-threaded, stdlib-only program then, in order:

1. moves the protocol pipes to fds 3 (requests) and 4 (replies);
2. network: ``unshare(CLONE_NEWNET)`` as root; as a normal user
   ``unshare(CLONE_NEWUSER | CLONE_NEWNET)`` with the user mapped to itself. The new
   namespace has only a loopback device, and it is down, so nothing (not even
   127.0.0.1) is reachable;
2b. filesystem (root only, when ``fs`` is given): ``unshare(CLONE_NEWNS)``, a fresh tmpfs as
   the new root holding only read-only binds of the system (``/usr``, ``/etc``; ``/dev``,
   ``/proc``, ``/sys``), the Python installation and the staging folder, the worker's
   scratch folder read-write and an empty ``/tmp``; then ``chroot`` into it. Home folders,
   the checkout, ``/autograder``, other runs' files and every other path do not exist for
   the worker;
3. sets resource limits (core dumps off, processes, open files, file size, data segment)
   and ``oom_score_adj`` 1000 (the kernel's OOM killer picks a worker, not the grader);
4. as root: drops to the sandbox user (no supplementary groups, real = effective = saved
   ids), which also clears every capability;
5. sets ``PR_SET_NO_NEW_PRIVS`` (no set-uid binary can give privileges back) and umask 077;
6. ``execve``-s the worker, so the worker keeps this process's pid.

Why a separate program instead of ``Popen(preexec_fn=...)``: ``preexec_fn`` runs after
Popen has switched user (so ``unshare`` would no longer be allowed) and is unsafe in a
multi-threaded grader (torch and the output threads). ``unshare``/``setpriv`` binaries
would do too, but their options differ between util-linux versions (Ubuntu 22.04 vs
Debian 12); ctypes on libc behaves the same everywhere.

``--probe '<json>'`` performs steps 2-5 and prints what worked as JSON instead of
exec-ing (used by :class:`SandboxPolicy` to describe itself truthfully).
On a setup failure that the config marks as required, it exits with status 121 and a
one-line reason on stderr.
"""
from __future__ import annotations

import ctypes
import fcntl
import json
import os
import resource
import sys
from typing import Any

CLONE_NEWUSER = 0x10000000
CLONE_NEWNET = 0x40000000
CLONE_NEWNS = 0x00020000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = 1, 2, 4, 32, 4096, 16384, 1 << 18
# What every worker sees of the system: shared libraries, configuration, devices, kernel views.
SYSTEM_DIRS = (("/usr", True), ("/etc", True), ("/dev", False), ("/proc", False), ("/sys", True))
PR_SET_NO_NEW_PRIVS = 38
SETUP_FAILED = 121

_libc = ctypes.CDLL(None, use_errno=True)


def _fail(message: str) -> None:
    sys.stderr.write(f"[sandbox launcher] {message}\n")
    sys.stderr.flush()
    os._exit(SETUP_FAILED)


def _unshare(flags: int) -> None:
    if _libc.unshare(ctypes.c_int(flags)) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


def _write(path: str, text: str) -> None:
    fd = os.open(path, os.O_WRONLY)
    try:
        os.write(fd, text.encode())
    finally:
        os.close(fd)


def isolate_network(mode: str) -> str:
    """Enter a fresh network namespace; returns how ('netns', 'userns+netns') or raises OSError.

    ``root``: a network namespace (needs CAP_SYS_ADMIN). ``user``: a user namespace in
    which the current user maps to itself, plus a network namespace owned by it.
    """
    if mode == "root":
        _unshare(CLONE_NEWNET)
        return "netns"
    uid, gid = os.getuid(), os.getgid()
    _unshare(CLONE_NEWUSER | CLONE_NEWNET)
    # Map the user to itself so files, ``getpass`` and ``pwd`` keep working.
    try:
        _write("/proc/self/setgroups", "deny")
    except FileNotFoundError:
        pass
    _write("/proc/self/uid_map", f"{uid} {uid} 1\n")
    _write("/proc/self/gid_map", f"{gid} {gid} 1\n")
    return "userns+netns"


def _mount(source: str | None, target: str, fstype: str | None, flags: int, data: str | None = None) -> None:
    enc = (lambda s: s.encode() if s is not None else None)
    if _libc.mount(enc(source), enc(target), enc(fstype), ctypes.c_ulong(flags), enc(data)) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"mount {source} on {target}: {os.strerror(err)}")


def _bind(path: str, root: str, read_only: bool, recursive: bool = False) -> None:
    """Make ``path`` appear at the same place under ``root`` (read-only when asked; with the
    mounts below it when ``recursive``: /dev/pts, /proc's and /sys's own)."""
    target = root + path
    if os.path.isdir(path):
        os.makedirs(target, exist_ok=True)
    else:
        os.makedirs(os.path.dirname(target), exist_ok=True)
        open(target, "a").close()
    _mount(path, target, None, MS_BIND | (MS_REC if recursive else 0))
    if read_only:
        _mount(None, target, None, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID)


def isolate_filesystem(fs: dict) -> str:
    """Enter a mount namespace whose root shows only what a worker needs; returns 'private'.

    ``fs``: ``root`` (an empty folder to build the new root on), ``ro`` and ``rw`` (paths bound
    read-only / read-write at the same place; later entries may sit inside earlier ones).
    """
    root = os.path.realpath(fs["root"])
    _unshare(CLONE_NEWNS)
    _mount(None, "/", None, MS_REC | MS_PRIVATE)  # nothing done here leaks to the host
    _mount("tmpfs", root, "tmpfs", MS_NOSUID | MS_NODEV, "mode=755,size=16m")
    for name in sorted(os.listdir("/")):  # /bin -> usr/bin and friends
        path = "/" + name
        if os.path.islink(path) and os.readlink(path).startswith("usr/"):
            os.symlink(os.readlink(path), root + path)
    for path, read_only in SYSTEM_DIRS:
        if os.path.isdir(path):
            _bind(path, root, read_only, recursive=True)
    covered = [p for p, _ in SYSTEM_DIRS]
    for path in fs.get("ro", []):
        path = os.path.realpath(path)
        if os.path.exists(path) and not any(path == c or path.startswith(c + "/") for c in covered):
            _bind(path, root, True)
            covered.append(path)
    for path in fs.get("rw", []):
        _bind(os.path.realpath(path), root, False)
    os.makedirs(root + "/tmp", exist_ok=True)
    os.chmod(root + "/tmp", 0o1777)
    os.chroot(root)
    os.chdir("/")
    return "private"


def set_limits(limits: dict[str, int]) -> None:
    names = {"core": resource.RLIMIT_CORE, "nproc": resource.RLIMIT_NPROC, "nofile": resource.RLIMIT_NOFILE,
             "fsize": resource.RLIMIT_FSIZE, "data": resource.RLIMIT_DATA, "as": resource.RLIMIT_AS}
    for key, value in limits.items():
        which = names[key]
        _, hard = resource.getrlimit(which)
        value = int(value)
        if hard != resource.RLIM_INFINITY:
            value = min(value, hard)
        resource.setrlimit(which, (value, value))


def drop_privileges(uid: int, gid: int) -> None:
    os.setgroups([])
    os.setresgid(gid, gid, gid)
    os.setresuid(uid, uid, uid)
    if os.getuid() != uid or os.geteuid() != uid or os.getgroups() not in ([], [gid]):
        _fail("could not drop privileges")
    try:
        os.setuid(0)
    except PermissionError:
        return
    _fail("privileges could be regained after dropping them")


def setup(cfg: dict) -> dict:
    """Steps 2-5; returns a report of what was applied."""
    report = {"network": "shared", "uid": os.getuid(), "error": None, "fs": "shared", "fs_error": None}

    def apply(what: str, step: Any, key: str, error_key: str, required: str) -> None:
        """Run one isolation step; record how, or why not (fatal when the config requires it)."""
        try:
            report[key] = step()
        except OSError as exc:
            report[error_key] = f"{what} isolation failed: {exc}"
            if cfg.get(required):
                _fail(report[error_key])

    def network() -> None:
        apply("network", lambda: isolate_network(cfg["netns"]), "network", "error", "require_netns")

    # If the machine runs out of memory anyway, the kernel's OOM killer takes a worker,
    # never the grader (which then reports the death and writes its results).
    try:
        _write("/proc/self/oom_score_adj", "1000")
    except OSError:
        pass
    # A plain network namespace needs root, so it comes before the privilege drop; a user
    # namespace is made by the (already unprivileged) sandbox user for itself, after it.
    if cfg.get("netns") == "root":
        network()
    if cfg.get("fs"):  # root only: mounts need CAP_SYS_ADMIN, before the privilege drop
        apply("filesystem", lambda: isolate_filesystem(cfg["fs"]), "fs", "fs_error", "require_fs")
    set_limits(cfg.get("rlimits", {}))
    if cfg.get("uid") is not None:
        drop_privileges(int(cfg["uid"]), int(cfg["gid"]))
    if cfg.get("netns") == "user":
        network()
    if _libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        _fail("prctl(PR_SET_NO_NEW_PRIVS) failed")
    os.umask(0o077)
    report["uid"] = os.getuid()
    return report


def place_fds(placement: dict[int, int]) -> None:
    """Make each target descriptor a copy of its source (``{3: fd}``), inheritable. Sources go
    through numbers above 10 first, so one that sits on another's target is not overwritten."""
    high = {target: fcntl.fcntl(fd, fcntl.F_DUPFD, 10) for target, fd in placement.items()}
    for target, fd in high.items():
        os.dup2(fd, target, inheritable=True)
        os.close(fd)


def main(argv: list[str]) -> None:
    if len(argv) == 2 and argv[0] == "--probe":
        cfg = json.loads(argv[1])
        print(json.dumps(setup(cfg)))
        return
    cfg = json.loads(argv[0])
    place_fds({3: int(cfg["fds"][0]), 4: int(cfg["fds"][1])})  # the protocol pipes
    for fd in cfg["fds"]:
        if int(fd) not in (3, 4):
            os.close(int(fd))
    setup(cfg)
    os.chdir(cfg["cwd"])
    os.execve(cfg["argv"][0], cfg["argv"], cfg["env"])


if __name__ == "__main__":
    main(sys.argv[1:])
