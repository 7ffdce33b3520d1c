"""The handout is generated from the reference, and every graded function in it is a stub."""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import ROOT, SOLUTIONS, STUDENT

sys.path.insert(0, str(ROOT / "tools"))
import make_handout  # noqa: E402


def test_student_matches_generator():
    """student/ is exactly what tools/make_handout.py produces from solutions/."""
    assert make_handout.differences() == [], "student/ is stale: run python tools/make_handout.py"


def _marked_functions(path: Path) -> list[str]:
    """Qualified names of the functions whose bodies hold a BEGIN SOLUTION marker."""
    lines = path.read_text().splitlines()
    return sorted({make_handout._qualname(lines, i, len(l) - len(l.lstrip()))
                   for i, l in enumerate(lines) if make_handout.BEGIN.match(l)})


def _has_markers(path: Path) -> bool:
    return any(make_handout.BEGIN.match(line) for line in path.read_text().splitlines())


GRADED = sorted(p.relative_to(SOLUTIONS) for p in SOLUTIONS.rglob("*.py")
                if "__pycache__" not in p.parts and _has_markers(p))


def test_some_files_are_graded():
    assert len(GRADED) >= 6, GRADED


@pytest.mark.parametrize("rel", GRADED, ids=str)
def test_every_marked_function_raises_in_handout(rel: Path):
    """Each function with solution code becomes `raise NotImplementedError` naming it."""
    handout = (STUDENT / rel).read_text()
    tree = ast.parse(handout)
    raising: dict[str, str] = {}

    def visit(node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.ClassDef):
                visit(child, f"{prefix}{child.name}.")
            elif isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                for stmt in ast.walk(child):
                    if isinstance(stmt, ast.Raise) and isinstance(stmt.exc, ast.Call) \
                            and getattr(stmt.exc.func, "id", "") == "NotImplementedError":
                        raising[prefix + child.name] = ast.literal_eval(stmt.exc.args[0])
                visit(child, f"{prefix}{child.name}.")

    visit(tree, "")
    for qual in _marked_functions(SOLUTIONS / rel):
        assert qual in raising, f"{rel}: {qual} does not raise NotImplementedError in the handout"
        assert qual in raising[qual] and str(rel.name) in raising[qual], raising[qual]


def test_marker_errors_are_reported():
    with pytest.raises(make_handout.MarkerError, match="without END"):
        make_handout.strip_solutions("def f():\n    # BEGIN SOLUTION\n    return 1\n", "x.py")
    with pytest.raises(make_handout.MarkerError, match="without BEGIN"):
        make_handout.strip_solutions("def f():\n    return 1\n    # END SOLUTION\n", "x.py")


def test_strip_keeps_docstring_and_handout_lines():
    src = ('class VAE:\n    def forward(self, x):\n        """Doc."""\n        # BEGIN SOLUTION Q1.9\n'
           '        # HANDOUT: y = None\n        y = x * 2\n        # END SOLUTION\n        return y\n')
    out = make_handout.strip_solutions(src, "t.py")
    assert '"""Doc."""' in out and "y = None" in out and "x * 2" not in out
    out2 = make_handout.strip_solutions(src.replace("        # HANDOUT: y = None\n", ""), "t.py")
    assert "VAE.forward (Q1.9) is not implemented yet" in out2 and "t.py" in out2


@pytest.mark.parametrize("part", ["part1", "part2", "part4"])
def test_handout_modules_import(part: str):
    """Every handout file can be imported: students can run things before filling them in.

    A fresh interpreter per part: both parts have a ``utils`` module, and extension
    modules (numpy) cannot be re-imported in one process.
    """
    code = ("import importlib, pathlib, sys\n"
            "folder = pathlib.Path(sys.argv[1]); sys.path.insert(0, str(folder))\n"
            "for p in sorted(folder.glob('*.py')):\n"
            "    if not p.name.startswith('test_'):\n"
            "        importlib.import_module(p.stem)\n")
    proc = subprocess.run([sys.executable, "-c", code, str(STUDENT / part)], cwd=STUDENT / part,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
