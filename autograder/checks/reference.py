"""The reference solution, imported into the trusted grading process only.

Each part's files import their siblings flatly (``from utils import *``), and two
parts both have a ``utils``; so a part is imported with its folder first on
``sys.path`` and its modules are then renamed ``_reference_part1_utils`` etc., leaving
``sys.modules`` as it was for the next part.
"""
from __future__ import annotations

import importlib
import sys
from functools import lru_cache
from pathlib import Path
from types import ModuleType


@lru_cache(maxsize=None)
def load(reference_dir: Path, part: str, module: str) -> ModuleType:
    """Import ``reference_dir/part/module.py`` (and the siblings it imports) under private names."""
    folder = str(reference_dir / part)
    before = set(sys.modules)
    sys.path.insert(0, folder)
    try:
        mod = importlib.import_module(module)
    finally:
        sys.path.remove(folder)
        for name in set(sys.modules) - before:
            loaded = sys.modules[name]
            if str(getattr(loaded, "__file__", "") or "").startswith(folder):
                sys.modules[f"_reference_{part}_{name}"] = sys.modules.pop(name)
    return mod


def drop_caches(module: ModuleType) -> None:
    """Empty every ``functools`` cache of a reference module (the data modules keep whole
    official splits, ~50 MB each, in theirs; copies already handed out stay valid)."""
    for value in vars(module).values():
        if callable(getattr(value, "cache_clear", None)) and hasattr(value, "cache_info"):
            value.cache_clear()


def setup_parts(cfg: object) -> None:
    """Run each part's setup driver (``[parts.N] setup``) in this process with the part's
    conventions, as every worker does first: the grader then computes in the same conventions."""
    for part in cfg.parts.values():  # type: ignore[attr-defined]
        if part.setup:
            module, function = part.setup.rsplit(".", 1)
            driver = importlib.import_module(f"autograder.checks.{part.name}.{module}")
            getattr(driver, function)(cfg.conventions.get(part.name, {}))  # type: ignore[attr-defined]
