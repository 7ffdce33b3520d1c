"""Which graded functions a submission left exactly as the handout has them.

A graded function that is still the handout's version earns nothing, whatever its checks
would say: with stand-ins for the other functions (one mistake, one deduction), a check
could otherwise pass on code the student never wrote (e.g. the STANDARD and FGSM branches
of part 2's ``train``, which the handout gives, around the PGD branch the student writes).
The comparison is of syntax trees (``ast.dump``), so comments and blank lines do not count
as work; a graded file missing from the submission is the handout's, hence untouched.

A course's own template (an edition) is not in this project, so its stubs are recognised by
their shape instead: a ``raise NotImplementedError`` with more statements after it in the same
block (the template's given code that the raise makes unreachable, e.g. ``return
perturbed_image`` or the rest of the PGD branch in ``train``). Code a student wrote never has
that shape: a ``raise NotImplementedError(...)`` of their own ends its block (``else: raise``).

Discovery has already parsed every submitted file in a subprocess, so parsing it again
here cannot crash the grading process.
"""
from __future__ import annotations

import ast
from pathlib import Path

from .config import Config
from .discovery import Discovery


def _parse(source: str) -> ast.Module | None:
    try:
        return ast.parse(source)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return None


def _nodes(tree: ast.Module | None) -> dict[str, ast.AST]:
    """Qualified name (``VAE.forward``) -> every function and class definition."""
    found: dict[str, ast.AST] = {}

    def visit(body: list[ast.stmt], prefix: str) -> None:
        for node in body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                name = prefix + node.name
                found[name] = node
                if isinstance(node, ast.ClassDef):
                    visit(node.body, name + ".")

    if tree is not None:
        visit(tree.body, "")
    return found


def _definitions(source: str) -> dict[str, str]:
    """Qualified name (``VAE.forward``) -> ``ast.dump`` of every function and class definition."""
    return {q: ast.dump(n, include_attributes=False) for q, n in _nodes(_parse(source)).items()}


def _is_not_implemented(stmt: ast.stmt) -> bool:
    exc = stmt.exc if isinstance(stmt, ast.Raise) else None
    if isinstance(exc, ast.Call):
        exc = exc.func
    return isinstance(exc, ast.Name) and exc.id == "NotImplementedError"


def stub_line(function: ast.AST) -> int | None:
    """The line of a ``raise NotImplementedError`` followed by more statements in its block (a
    template's stub left in place), or None. Nested definitions are their own functions."""
    def blocks(node: ast.AST) -> list[list[ast.stmt]]:
        found = []
        for name in ("body", "orelse", "finalbody"):
            block = getattr(node, name, None)
            if isinstance(block, list) and block and isinstance(block[0], ast.stmt):
                found.append(block)
        for handler in getattr(node, "handlers", []) or []:
            found.append(handler.body)
        for case in getattr(node, "cases", []) or []:
            found.append(case.body)
        return found

    def search(node: ast.AST) -> int | None:
        for block in blocks(node):
            for i, stmt in enumerate(block):
                if _is_not_implemented(stmt) and i + 1 < len(block):
                    return stmt.lineno
                if not isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)):
                    line = search(stmt)
                    if line is not None:
                        return line
        return None

    return search(function) if isinstance(function, (ast.FunctionDef, ast.AsyncFunctionDef)) else None


def _read(path: Path | None) -> str:
    try:
        return path.read_text(encoding="utf-8") if path is not None else ""
    except (OSError, UnicodeDecodeError):
        return ""


def untouched_functions(found: Discovery, cfg: Config) -> dict[str, str]:
    """Function id (``part2.utils.train``, ``part1.train.VAE.forward``) -> why it counts as not
    implemented yet: its definition in the graded submission is the handout's, or it still has a
    template's stub (:func:`stub_line`); for every graded file of every part."""
    untouched: dict[str, str] = {}
    same = "it is still the handout's version"
    for part, spec in cfg.parts.items():
        per_module: dict[str, dict[str, str]] = {}
        for name in spec.graded_files:
            handout = _definitions(_read(cfg.handout_dir / part / name))
            f = found.files.get(f"{part}/{name}")
            source = _read(f.path) if f is not None and f.usable else ""
            mine = _nodes(_parse(source)) if source else {}
            stem = Path(name).stem
            if not source:  # missing or unusable: the handout's file is graded
                reasons = {q: same for q in handout}
            else:
                reasons = {q: same for q, dump in handout.items()
                           if q in mine and ast.dump(mine[q], include_attributes=False) == dump}
            for q, node in mine.items():
                line = stub_line(node)
                if line is not None and q not in reasons:
                    reasons[q] = (f"{name} line {line} still raises NotImplementedError before the code that follows "
                                  "it (delete that line once the function is written)")
            per_module[stem] = reasons
            untouched.update({f"{part}.{stem}.{q}": why for q, why in reasons.items()})
        # An alias names one function whichever of several files the student wrote it in
        # (part1.train.VAE.forward: train_torch.py or train_pl.py): untouched in all of them.
        for alias, modules in spec.aliases.items():
            common = set.intersection(*(set(per_module.get(m, {})) for m in modules)) if modules else set()
            untouched.update({f"{part}.{alias}.{q}": per_module[modules[0]][q] for q in common})
    return untouched
