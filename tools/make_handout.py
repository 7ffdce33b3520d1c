"""Generate the student handout (``student/``) from the reference (``solutions/``).

The reference is the single source of truth. Solution code is fenced by markers::

    def KLD(mean, log_std):
        \"\"\"...docstring stays in the handout...\"\"\"
        # BEGIN SOLUTION Q1.8
        ...reference code...
        # END SOLUTION

In the handout each fenced block becomes one line,
``raise NotImplementedError("KLD (Q1.8) is not implemented yet: ...")``,
indented like the marker. Lines inside the block written as ``# HANDOUT: code``
replace that ``raise`` (for the rare place where the handout must stay runnable,
e.g. a default that a later function fills in). Lines tagged ``# SOLUTION ONLY``
are dropped. Every other file is copied byte for byte.

Usage::

    python tools/make_handout.py            # rewrite student/ from solutions/
    python tools/make_handout.py --check    # exit 1 if student/ is out of date
"""
from __future__ import annotations

import argparse
import re
import shutil
import sys
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parent.parent
BEGIN = re.compile(r"^(?P<indent>\s*)# BEGIN SOLUTION(?:\s+(?P<question>\S.*?))?\s*$")
END = re.compile(r"^\s*# END SOLUTION\s*$")
HANDOUT = re.compile(r"^\s*# HANDOUT: ?(?P<code>.*)$")
DEF = re.compile(r"^(?P<indent>\s*)(?:async\s+)?(?:def|class)\s+(?P<name>\w+)")
SKIPPED_DIRS = {"__pycache__", ".pytest_cache", "lightning_logs", ".hypothesis", "VAE_logs", "data", "runs"}


class MarkerError(ValueError):
    """A solution file whose markers are unbalanced or misplaced."""


def _qualname(lines: list[str], index: int, indent: int) -> str:
    """Name of the function/class enclosing line ``index`` (e.g. ``VAE.forward``)."""
    names: list[str] = []
    level = indent
    for line in reversed(lines[:index]):
        match = DEF.match(line)
        if match and len(match.group("indent")) < level:
            names.append(match.group("name"))
            level = len(match.group("indent"))
            if level == 0:
                break
    return ".".join(reversed(names)) or "<module>"


def strip_solutions(source: str, filename: str, stub: Callable[[str], bool] | None = None) -> str:
    """Return the handout version of one solution file's text.

    With ``stub``, only the blocks whose enclosing function's qualified name satisfies it
    become the handout's ``raise``; the others, and ``# SOLUTION ONLY`` lines, stay as they
    are (the tests build "the reference with one function stubbed" and "the handout with one
    function written" this way).
    """
    lines = source.splitlines(keepends=True)
    out: list[str] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        begin = BEGIN.match(line)
        if END.match(line):
            raise MarkerError(f"{filename}:{i + 1}: END SOLUTION without BEGIN")
        if "# SOLUTION ONLY" in line and stub is None:
            i += 1
            continue
        if not begin:
            out.append(line)
            i += 1
            continue
        indent = begin.group("indent")
        question = begin.group("question")
        handout: list[str] = []
        j = i + 1
        while j < len(lines) and not END.match(lines[j]):
            if BEGIN.match(lines[j]):
                raise MarkerError(f"{filename}:{j + 1}: nested BEGIN SOLUTION")
            keep = HANDOUT.match(lines[j])
            if keep:
                handout.append(f"{indent}{keep.group('code')}\n")
            j += 1
        if j == len(lines):
            raise MarkerError(f"{filename}:{i + 1}: BEGIN SOLUTION without END")
        if stub is not None and not stub(_qualname(lines, i, len(indent))):
            out.extend(lines[i:j + 1])
        elif handout:
            out.extend(handout)
        else:
            name = _qualname(lines, i, len(indent))
            where = f" ({question})" if question else ""
            message = f"{name}{where} is not implemented yet: write your code here, in {filename}."
            out.append(f"{indent}raise NotImplementedError({message!r})\n")
        i = j + 1
    return "".join(out)


def render(solutions: Path = ROOT / "solutions") -> dict[str, bytes]:
    """Map every handout file (relative path) to its generated content."""
    files: dict[str, bytes] = {}
    for path in sorted(solutions.rglob("*")):
        rel = path.relative_to(solutions)
        if path.is_dir() or SKIPPED_DIRS.intersection(rel.parts) or path.suffix == ".pyc":
            continue
        data = path.read_bytes()
        if path.suffix == ".py":
            data = strip_solutions(data.decode("utf-8"), rel.as_posix()).encode("utf-8")
        files[rel.as_posix()] = data
    return files


def differences(student: Path = ROOT / "student", solutions: Path = ROOT / "solutions") -> list[str]:
    """Paths where ``student/`` differs from what the generator produces."""
    expected = render(solutions)
    actual = {
        p.relative_to(student).as_posix(): p.read_bytes()
        for p in student.rglob("*")
        if p.is_file() and not SKIPPED_DIRS.intersection(p.relative_to(student).parts) and p.suffix != ".pyc"
    }
    diffs = [f"missing: {p}" for p in sorted(set(expected) - set(actual))]
    diffs += [f"extra: {p}" for p in sorted(set(actual) - set(expected))]
    diffs += [f"differs: {p}" for p in sorted(set(expected) & set(actual)) if expected[p] != actual[p]]
    return diffs


def write(student: Path = ROOT / "student", solutions: Path = ROOT / "solutions") -> int:
    """Rewrite ``student/`` from ``solutions/``; returns the number of files written."""
    files = render(solutions)
    if student.exists():
        shutil.rmtree(student)
    for rel, data in files.items():
        target = student / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
        source_mode = (solutions / rel).stat().st_mode
        target.chmod(source_mode & 0o777)
    return len(files)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only report whether student/ is up to date")
    args = parser.parse_args(argv)
    if args.check:
        diffs = differences()
        for line in diffs:
            print(line)
        print("student/ is up to date" if not diffs else "student/ is out of date: run python tools/make_handout.py")
        return 1 if diffs else 0
    print(f"wrote {write()} files to student/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
