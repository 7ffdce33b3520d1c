"""Finding the graded files in a submission, whatever its layout.

A submission may be a flat upload (``utils.py`` next to ``estimators.py``), a
GitHub repository, or a zip unpacked into folders. We look for every file whose
name is graded, decide which part it belongs to (the nearest ``partN`` folder,
else what it defines), and pick one copy per graded file. Only these files are
taken; the rest of the staging tree is the instructor's handout.

Nothing here executes or compiles student code in the grading process: the
syntax check runs ``ast.parse`` in a short-lived subprocess, so a source that
crashes the parser costs that file only.
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from .config import Config

MAX_FILE_BYTES = 1_000_000
SKIP_DIRS = {"__pycache__", "__MACOSX", ".git", ".venv", "venv", "node_modules", ".ipynb_checkpoints"}
# The grader's own folder is never part of a submission: the student edition lives inside the
# handout (``python -m autograder grade .``) with its own copy of the handout's files.
GRADER_DIR = Path(__file__).resolve().parent
MAX_FILES_SCANNED = 20_000
PART_DIR = re.compile(r"^part(\d+)$", re.IGNORECASE)

_SYNTAX_PROBE = (
    "import ast,sys\n"
    "src=sys.stdin.buffer.read()\n"
    "try:\n"
    "    ast.parse(src.decode('utf-8'))\n"
    "except UnicodeDecodeError as e:\n"
    "    print(f'is not UTF-8 text (byte {e.start})'); sys.exit(3)\n"
    "except SyntaxError as e:\n"
    "    print(f'has a syntax error at line {e.lineno}: {e.msg}'); sys.exit(3)\n"
    "except (ValueError, RecursionError, MemoryError) as e:\n"
    "    print(f'cannot be parsed: {type(e).__name__}: {e}'); sys.exit(3)\n"
)


@dataclass
class GradedFile:
    """The outcome of looking for one graded file (``part1/utils.py``)."""

    part: str
    name: str
    status: str  # found | missing | invalid
    path: Path | None = None
    candidates: list[Path] = field(default_factory=list)
    message: str = ""

    @property
    def key(self) -> str:
        return f"{self.part}/{self.name}"

    @property
    def usable(self) -> bool:
        return self.status == "found"


@dataclass
class Discovery:
    """All graded files of a submission, and notes for the report."""

    root: Path
    files: dict[str, GradedFile]
    notes: list[str] = field(default_factory=list)

    def usable(self, part: str) -> dict[str, Path]:
        return {f.name: f.path for f in self.files.values() if f.part == part and f.usable and f.path}

    def file_note(self, key: str) -> str:
        """A one-line note for a file that was not taken as submitted ('' if it was)."""
        f = self.files.get(key)
        return "" if f is None or f.status == "found" else f.message

    def summary_lines(self) -> list[str]:
        lines = []
        for f in sorted(self.files.values(), key=lambda g: g.key):
            where = f" ({f.path.relative_to(self.root)})" if f.path else ""
            lines.append(f"{f.key}: {f.status}{where}" + (f" - {f.message}" if f.message and f.status != "found" else ""))
            if f.status == "found" and f.message:
                lines.append(f"    note: {f.message}")
        return lines + self.notes


def _walk(root: Path, names: set[str]) -> tuple[list[Path], bool]:
    found: list[Path] = []
    seen = 0
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        dirnames[:] = sorted(d for d in dirnames if d not in SKIP_DIRS and not d.startswith(".")
                             and not (d == GRADER_DIR.name and (Path(dirpath) / d).resolve() == GRADER_DIR))
        for fn in sorted(filenames):
            seen += 1
            if seen > MAX_FILES_SCANNED:
                return found, True
            if fn in names:
                p = Path(dirpath) / fn
                if not p.is_symlink():
                    found.append(p)
    return found, False



def _defines(path: Path, names: tuple[str, ...]) -> bool:
    """Whether the file defines one of ``names`` (a top-level-looking ``def``/``class``)."""
    if not names:
        return False
    try:
        text = path.read_bytes()[:MAX_FILE_BYTES].decode("utf-8", "replace")
    except OSError:
        return False
    return any(re.search(rf"^\s*(def|class)\s+{re.escape(m)}\b", text, re.M) for m in names)


def _folder_part(path: Path, root: Path, cfg: Config) -> tuple[str, str | None]:
    """("ours", part) for the nearest ``partN`` folder that is a part of the config, ("other", None)
    for one that is not, ("none", None) when the file sits in no ``partN`` folder."""
    for parent in path.relative_to(root).parents:
        if parent.name.lower() in cfg.parts:
            return "ours", parent.name.lower()
        if PART_DIR.match(parent.name):
            return "other", None
    return "none", None


def _part_of(path: Path, root: Path, cfg: Config) -> str | None:
    """The part a candidate belongs to: its ``partN`` folder, unless what it defines says otherwise.

    Course editions put files in other folders (the UvA 2021 layout has the VAE's files in
    ``part2/``): a file in a part folder that does not grade its name goes to the one part
    that does, and a file whose contents define another part's marker names (and none of its
    folder's) goes to that part. A file in a ``partN`` folder that is not ours counts only
    when its contents say which part it is, or when one part alone grades its name and has no
    markers for it (an edition without part 2 grades the 2021 layout's ``part2/`` files).
    """
    graded = {p.name: p.graded_name(path.name) for p in cfg.parts.values()}  # part -> graded name here
    owners = [part for part, name in graded.items() if name]
    markers = {o: cfg.parts[o].markers.get(graded[o] or "", ()) for o in owners}
    by_content = [o for o in owners if _defines(path, markers[o])]
    unique = by_content[0] if len(by_content) == 1 else None
    kind, folder = _folder_part(path, root, cfg)
    if kind == "ours" and folder in owners:
        return folder if not by_content or folder in by_content else unique or folder
    if kind == "other":
        if unique is None and len(owners) == 1 and not markers[owners[0]]:
            return owners[0]
        return unique
    return owners[0] if len(owners) == 1 else unique


def _depth_inside_part(path: Path, root: Path, part: str = "", cfg: Config | None = None) -> tuple[int, int, int, str]:
    """Sort key of the copies of one graded file: in its own part's folder first, then in any
    ``partN`` folder, then shallower paths."""
    rel = path.relative_to(root)
    in_part_dir = any(PART_DIR.match(p.name) for p in rel.parents if p.name)
    own = cfg is not None and _folder_part(path, root, cfg) == ("ours", part)
    return (0 if own else 1, 0 if in_part_dir else 1, len(rel.parts), rel.as_posix())


def syntax_problem(path: Path, python: str = sys.executable) -> str:
    """'' if the file parses as Python; otherwise a one-line description of why not."""
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            return f"is too large ({size:,} bytes; the limit is {MAX_FILE_BYTES:,})"
        data = path.read_bytes()
    except OSError as exc:
        return f"cannot be read ({exc.strerror})"
    if b"\x00" in data:
        return "is a binary file, not Python source"
    try:
        proc = subprocess.run(
            [python, "-I", "-S", "-c", _SYNTAX_PROBE], input=data, capture_output=True, timeout=20
        )
    except subprocess.TimeoutExpired:
        return "could not be parsed within 20 s"
    if proc.returncode == 0:
        return ""
    text = proc.stdout.decode("utf-8", "replace").strip() or f"crashed the parser (exit {proc.returncode})"
    return text.splitlines()[0][:300]


def discover(submission: Path, cfg: Config) -> Discovery:
    """Locate, choose and validate each graded file of ``cfg`` inside ``submission``."""
    root = submission.resolve()
    names = {n for p in cfg.parts.values() for n in p.file_names_taken()}
    result = Discovery(root=root, files={})
    if not root.is_dir():
        result.notes.append(f"The submission folder {submission} does not exist or is not a folder.")
        candidates, truncated = [], False
    else:
        candidates, truncated = _walk(root, names)
    if truncated:
        result.notes.append(f"The submission has more than {MAX_FILES_SCANNED} files; only the first were searched.")
    by_key: dict[str, list[Path]] = {}
    for path in candidates:
        part = _part_of(path, root, cfg)
        graded = cfg.parts[part].graded_name(path.name) if part else None
        if graded:
            by_key.setdefault(f"{part}/{graded}", []).append(path)
    for part in cfg.parts.values():
        for name in part.graded_files:
            key = f"{part.name}/{name}"
            found = sorted(by_key.get(key, []), key=lambda p: _depth_inside_part(p, root, part.name, cfg))
            if not found:
                also = part.file_names.get(name, ())
                named = f"{key} ({' or '.join(also)})" if also else key
                result.files[key] = GradedFile(part.name, name, "missing",
                                               message=f"{named} was not found in your submission; its checks use the handout version")
                continue
            chosen = found[0]
            gf = GradedFile(part.name, name, "found", chosen, found)
            if len(found) > 1:
                others = ", ".join(str(p.relative_to(root)) for p in found[1:])
                gf.message = f"ambiguous: {len(found)} copies; graded {chosen.relative_to(root)}, ignored {others}"
            elif chosen.name != name:
                gf.message = f"{chosen.relative_to(root)} is graded as {name}"
            problem = syntax_problem(chosen)
            if problem:
                gf.status = "invalid"
                gf.message = f"{chosen.relative_to(root)} {problem}; its checks use the handout version"
            result.files[key] = gf
    return result
