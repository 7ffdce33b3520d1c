"""Which stand-ins a check gets, in which order checks run, and the stand-ins' source (grader side).

One mistake, one deduction: while a check grades function F, the worker replaces the graded
functions F calls (``[parts.NAME.depends]`` in grading.toml, transitively) by the grader's
stand-ins, written in ``autograder/checks/NAME/drivers_NAME_standins.py``. That file is never
staged for the worker: the grader sends the source of just the stand-ins a check needs
(``drivers_common.use_standins``), and checks run in tiers so that every function's own
checks are over before its stand-in first reaches the worker (functions without
dependencies first, then those that call them, ...). Student code therefore never holds a
stand-in of a function whose points are still open, not even by keeping a reference to one.
"""
from __future__ import annotations

import ast
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path


@dataclass
class StandIns:
    """The stand-ins of one part: their file and the dependencies between graded functions."""

    part: str
    file: Path | None
    depends: dict[str, tuple[str, ...]] = field(default_factory=dict)  # "train.VAE.forward" -> ("utils.KLD", ...)

    def key(self, function_id: str) -> str:
        """``part1.utils.KLD`` -> ``utils.KLD`` (the worker's name); other parts' ids unchanged."""
        prefix = self.part + "."
        return function_id[len(prefix):] if function_id.startswith(prefix) else function_id

    def calls(self, key: str) -> list[str]:
        """Every graded function ``key`` calls, transitively (never ``key`` itself)."""
        seen: list[str] = []
        todo = list(self.depends.get(key, ()))
        while todo:
            k = todo.pop(0)
            if k != key and k not in seen:
                seen.append(k)
                todo += list(self.depends.get(k, ()))
        return seen

    def tier(self, key: str) -> int:
        """0 for a function that calls no graded function, else 1 + the highest tier it calls."""
        def depth(k: str, path: tuple[str, ...]) -> int:
            deps = [d for d in self.depends.get(k, ()) if d not in path]
            return 0 if not deps else 1 + max(depth(d, path + (k,)) for d in deps)

        return depth(key, ())

    @cached_property
    def _parsed(self) -> tuple[str, list[str], dict[str, str]]:
        """(module docstring, prelude statements, key -> the stand-in's definition with decorators)."""
        if self.file is None:
            return "", [], {}
        source = self.file.read_text(encoding="utf-8")
        tree = ast.parse(source)
        prelude: list[str] = []
        defs: dict[str, str] = {}
        for node in tree.body:
            if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) and node is tree.body[0]:
                continue  # the module docstring
            if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "STANDINS" for t in node.targets):
                continue
            key = _standin_key(node)
            text = "\n".join(["@" + ast.get_source_segment(source, d) for d in getattr(node, "decorator_list", [])]
                             + [ast.get_source_segment(source, node) or ""])
            if key is not None:
                defs[key] = text
            else:
                prelude.append(text)
        return ast.get_docstring(tree) or "", prelude, defs

    def available(self) -> list[str]:
        return sorted(self._parsed[2])

    def source_for(self, keys: list[str]) -> str:
        """A module holding just the stand-ins ``keys`` (and the imports and constants they share)."""
        _, prelude, defs = self._parsed
        chosen = [k for k in keys if k in defs]
        names = {k: _def_name(defs[k]) for k in chosen}
        body = prelude + [defs[k] for k in chosen]
        table = "STANDINS = {" + ", ".join(f"{k!r}: {names[k]}" for k in chosen) + "}"
        return '"""The grader\'s stand-ins for this check (sent by the grader, never on disk)."""\n' + \
            "\n\n".join(body + [table]) + "\n"


def _standin_key(node: ast.stmt) -> str | None:
    """The key of ``@standin("utils.KLD")`` on a definition, else None."""
    for d in getattr(node, "decorator_list", []):
        if isinstance(d, ast.Call) and isinstance(d.func, ast.Name) and d.func.id == "standin" and d.args \
                and isinstance(d.args[0], ast.Constant) and isinstance(d.args[0].value, str):
            return d.args[0].value
    return None


def _def_name(text: str) -> str:
    for line in text.splitlines():
        stripped = line.strip()
        for kw in ("def ", "class "):
            if stripped.startswith(kw):
                return stripped[len(kw):].split("(")[0].split(":")[0].strip()
    raise ValueError(f"no definition in {text[:80]!r}")
