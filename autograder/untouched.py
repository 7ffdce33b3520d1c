"""Which graded functions a submission left exactly as the handout has them.

A graded function that is still the handout's version earns nothing, whatever its checks
would say: with stand-ins for the other functions (one mistake, one deduction), a check
could otherwise pass on code the student never wrote (e.g. the STANDARD and FGSM branches
of part 2's ``train``, which the handout gives, around the PGD branch the student writes).
The comparison is of syntax trees (``ast.dump``), so comments and blank lines do not count
as work; a graded file missing from the submission is the handout's, hence untouched.

Discovery has already parsed every submitted file in a subprocess, so parsing it again
here cannot crash the grading process.
"""
from __future__ import annotations

import ast
from pathlib import Path

from .config import Config
from .discovery import Discovery


def _definitions(source: str) -> dict[str, str]:
    """Qualified name (``VAE.forward``) -> ``ast.dump`` of every function and class definition."""
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return {}
    found: dict[str, str] = {}

    def visit(body: list[ast.stmt], prefix: str) -> None:
        for node in body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                name = prefix + node.name
                found[name] = ast.dump(node, include_attributes=False)
                if isinstance(node, ast.ClassDef):
                    visit(node.body, name + ".")

    visit(tree.body, "")
    return found


def _read(path: Path | None) -> str:
    try:
        return path.read_text(encoding="utf-8") if path is not None else ""
    except (OSError, UnicodeDecodeError):
        return ""


def untouched_functions(found: Discovery, cfg: Config) -> set[str]:
    """Function ids (``part2.utils.train``, ``part1.train.VAE.forward``) whose definition in the
    graded submission is the handout's, for every graded file of every part."""
    untouched: set[str] = set()
    for part, spec in cfg.parts.items():
        per_module: dict[str, set[str]] = {}
        for name in spec.graded_files:
            handout = _definitions(_read(cfg.handout_dir / part / name))
            f = found.files.get(f"{part}/{name}")
            mine = _definitions(_read(f.path)) if f is not None and f.usable else handout
            stem = Path(name).stem
            per_module[stem] = {q for q, dump in handout.items() if mine.get(q) == dump}
            untouched |= {f"{part}.{stem}.{q}" for q in per_module[stem]}
        # An alias names one function whichever of several files the student wrote it in
        # (part1.train.VAE.forward: train_torch.py or train_pl.py): untouched in all of them.
        for alias, modules in spec.aliases.items():
            common = set.intersection(*(per_module.get(m, set()) for m in modules)) if modules else set()
            untouched |= {f"{part}.{alias}.{q}" for q in common}
    return untouched
