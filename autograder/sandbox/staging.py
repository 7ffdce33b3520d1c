"""Building the folder tree that workers import from (the *staging* folder).

Layout made by :func:`make_staging`::

    <dest>/                 mode 0755, owned by the grader
        part1/ ...          copies of the given part folders (regular files and folders only)
        part2/ ...
        _ag_worker/
            worker_main.py  the worker program
            protocol.py     the wire format (same file the grader uses)
            drivers/        worker-side instructor helpers: drivers_common.py, drivers_part1.py, ...

Everything is readable but not writable by the sandbox user. Symbolic links and special
files in the sources are skipped, never followed: a submission's link to
``/autograder/source/solutions`` must not be copied with the grader's rights.
In root mode ``dest`` and every folder above it must be traversable by the sandbox
user (``o+x``); use a fresh folder under ``/tmp`` with mode 0755.
"""
from __future__ import annotations

import os
import re
import shutil
import stat
from pathlib import Path
from typing import Iterable, Mapping

HERE = Path(__file__).resolve().parent
RUNTIME_DIR = "_ag_worker"
RUNTIME_FILES = ("worker_main.py", "protocol.py")
DRIVERS_DIR = HERE / "drivers"
_PART_NAME = re.compile(r"^[A-Za-z0-9][\w.-]*$")
_SKIP = {"__pycache__", ".pytest_cache", ".hypothesis", "lightning_logs", ".git"}


def _copy_tree(src: Path, dst: Path) -> list[str]:
    """Copy regular files and folders below ``src``; returns the skipped entries."""
    skipped = []
    dst.mkdir(mode=0o755)
    os.chmod(dst, 0o755)
    with os.scandir(src) as entries:
        for entry in sorted(entries, key=lambda e: e.name):
            if entry.name in _SKIP or entry.name.endswith(".pyc"):
                continue
            target = dst / entry.name
            if entry.is_symlink():
                skipped.append(f"{entry.path} (symbolic link)")
            elif entry.is_dir(follow_symlinks=False):
                skipped += _copy_tree(Path(entry.path), target)
            elif entry.is_file(follow_symlinks=False):
                shutil.copyfile(entry.path, target, follow_symlinks=False)
                os.chmod(target, 0o644)
            else:
                skipped.append(f"{entry.path} (not a regular file)")
    return skipped


def _check_traversable(path: Path) -> None:
    for folder in [path, *path.parents]:
        mode = folder.stat().st_mode
        if not mode & stat.S_IXOTH:
            raise PermissionError(f"{folder} is not traversable by other users (mode {stat.filemode(mode)}), "
                                  f"so the sandbox user cannot reach {path}; stage under a 0755 folder in /tmp")


def make_staging(part_sources: Mapping[str, Path], dest: Path, drivers: Iterable[Path] = ()) -> Path:
    """Copy the part folders and the worker runtime into ``dest``; returns ``dest``.

    ``part_sources`` maps a part name (``"part1"``) to the folder to copy. Worker-side
    driver modules are every ``drivers_*.py`` in ``autograder/sandbox/drivers`` plus the
    files in ``drivers`` (later files win on a name clash).
    """
    dest = Path(dest).resolve()
    dest.mkdir(parents=True, exist_ok=True)
    os.chmod(dest, 0o755)
    for name, src in part_sources.items():
        if not _PART_NAME.match(name) or name == RUNTIME_DIR:
            raise ValueError(f"bad part name {name!r}")
        target = dest / name
        if target.exists():
            shutil.rmtree(target)
        _copy_tree(Path(src), target)
    runtime = dest / RUNTIME_DIR
    if runtime.exists():
        shutil.rmtree(runtime)
    runtime.mkdir(mode=0o755)
    os.chmod(runtime, 0o755)
    for fname in RUNTIME_FILES:
        shutil.copyfile(HERE / fname, runtime / fname)
        os.chmod(runtime / fname, 0o644)
    (runtime / "drivers").mkdir(mode=0o755)
    os.chmod(runtime / "drivers", 0o755)
    for path in [*sorted(DRIVERS_DIR.glob("drivers_*.py")), *map(Path, drivers)]:
        shutil.copyfile(path, runtime / "drivers" / path.name)
        os.chmod(runtime / "drivers" / path.name, 0o644)
    if os.geteuid() == 0:
        _check_traversable(dest)
    return dest
