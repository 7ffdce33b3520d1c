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
    python tools/make_handout.py --edition ift6135 --out DIR   # an edition's handout, in its layout
    python tools/make_handout.py --grader   # student/ plus the student edition of the grader
                                            # (tools/student_grader.py: visible checks, recorded values)

An edition's handout (``[editions.NAME.handout] layout``) holds the parts that edition grades:
``"folders"`` (the default) one folder per part, as ``student/``; ``"flat"`` one folder as a
course hands it out (IFT6135's ``assignment3/``): each graded file under the course's name (its
first ``file_names`` alias), the part's modules it imports, the part's README and public tests
where no file of the part is renamed and all they import is there, and an index README.
"""
from __future__ import annotations

import argparse
import ast
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
# What --grader adds to student/ (generated, not tracked): not part of the handout proper.
GRADER_FILES = {"autograder", "grading.toml", "requirements.txt", "results.json", "report.html"}


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
        and p.relative_to(student).parts[0] not in GRADER_FILES
    }
    diffs = [f"missing: {p}" for p in sorted(set(expected) - set(actual))]
    diffs += [f"extra: {p}" for p in sorted(set(actual) - set(expected))]
    diffs += [f"differs: {p}" for p in sorted(set(expected) & set(actual)) if expected[p] != actual[p]]
    return diffs


def write(student: Path = ROOT / "student", solutions: Path = ROOT / "solutions") -> int:
    """Rewrite ``student/`` from ``solutions/``; returns the number of files written."""
    files = render(solutions)
    if student.exists():  # the student grader (--grader) is rebuilt separately; keep it till then
        for p in student.iterdir():
            if p.name not in GRADER_FILES:
                shutil.rmtree(p) if p.is_dir() else p.unlink()
    for rel, data in files.items():
        target = student / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
        source_mode = (solutions / rel).stat().st_mode
        target.chmod(source_mode & 0o777)
    return len(files)


def _imports(source: str) -> set[str]:
    """Top-level module names a file imports."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module.split(".")[0])
    return names


def edition_files(edition: str, solutions: Path = ROOT / "solutions") -> dict[str, bytes]:
    """An edition's handout: relative path -> content, in the edition's layout (module docstring)."""
    sys.path.insert(0, str(ROOT))
    from autograder import config

    cfg = config.load(edition=edition)
    rendered = render(solutions)
    layout = cfg.handout_layout
    files: dict[str, bytes] = {}
    if layout != "flat":
        for rel, data in rendered.items():
            if rel.split("/", 1)[0] in cfg.parts:
                files[rel] = data
        return files
    lines = [f"# {cfg.title}", "", "The files of this homework (generated from the course's reference by the "
             "autograder's `tools/make_handout.py`). Write the functions that raise `NotImplementedError`.", ""]
    for part, spec in cfg.parts.items():
        modules = {p.split("/", 1)[1][:-3] for p in rendered if p.startswith(part + "/") and p.endswith(".py")}
        names: dict[str, str] = {}  # part file -> handout name
        for graded in spec.graded_files:
            names[graded] = (spec.file_names.get(graded) or (graded,))[0]
        todo = list(names)
        while todo:  # the part's modules the taken files import, transitively
            source = rendered[f"{part}/{todo.pop()}"].decode("utf-8")
            for module in _imports(source) & modules:
                if f"{module}.py" not in names:
                    names[f"{module}.py"] = f"{module}.py"
                    todo.append(f"{module}.py")
        # The part's README and public tests name the part's files: kept only where none is renamed.
        if all(a == b for a, b in names.items()):
            taken = {Path(n).stem for n in names}
            if f"{part}/README.md" in rendered:
                names["README.md"] = f"{part}_README.md"
            tests = rendered.get(f"{part}/test_public.py")
            if tests is not None and _imports(tests.decode("utf-8")) & modules <= taken:
                names["test_public.py"] = f"test_{part}_public.py"
        for source_name, handout_name in sorted(names.items()):
            files[handout_name] = rendered[f"{part}/{source_name}"]
            if source_name in spec.graded_files:
                lines.append(f"- `{handout_name}`" + (f" (graded as {source_name})" if handout_name != source_name else ""))
    lines += ["", f"Grade it as Gradescope does: `python -m autograder grade . --edition {edition}`.", ""]
    files["README.md"] = "\n".join(lines).encode("utf-8")
    return files


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only report whether student/ is up to date")
    parser.add_argument("--edition", help="write this edition's handout (its parts, in its layout) to --out")
    parser.add_argument("--out", type=Path, help="where --edition writes (a new or empty folder)")
    parser.add_argument("--grader", action="store_true",
                        help="also add the student edition of the grader to student/ (visible checks, recorded values)")
    args = parser.parse_args(argv)
    if args.edition:
        if args.out is None:
            parser.error("--edition needs --out DIR")
        if args.out.exists() and any(args.out.iterdir()):
            parser.error(f"{args.out} is not empty")
        files = edition_files(args.edition)
        for rel, data in files.items():
            target = args.out / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
        print(f"wrote {len(files)} files of the {args.edition} handout to {args.out}")
        return 0
    if args.check:
        diffs = differences()
        for line in diffs:
            print(line)
        print("student/ is up to date" if not diffs else "student/ is out of date: run python tools/make_handout.py")
        from student_grader import stale

        grader = stale(ROOT / "student")  # only when student/ holds a student grader (--grader)
        for line in grader:
            print(f"student grader differs: {line}")
        if grader:
            print("the student grader in student/ is out of date: run python tools/make_handout.py --grader")
        return 1 if diffs or grader else 0
    print(f"wrote {write()} files to student/")
    if args.grader:
        from student_grader import build

        points = build(ROOT / "student")
        print(f"added the student edition of the grader to student/: {points['visible']:g} visible points "
              f"(recorded from solutions/), {points['hidden']:g} hidden; grade inside student/ with "
              "`python -m autograder grade .`")
    return 0


if __name__ == "__main__":
    sys.exit(main())
