"""``python -m autograder prepare``: compute once, when the image is built, what every grade
would otherwise recompute from trusted inputs alone.

setup.sh runs it (Gradescope runs setup.sh once per autograder upload). Today there is one
step: the part 2 smoke tests' standard-training baseline (see autograder/checks/part2/smoke.py);
without it a grade computes the baseline itself, ~1-3 s and ~70 MB more.
"""
from __future__ import annotations

import time

from .checks import reference
from .config import Config
from .console import Console


def run(cfg: Config, console: Console) -> bool:
    """Run every preparation step for ``cfg``; False when one failed (its message is printed)."""
    if "part2" not in cfg.parts:
        return True
    from .checks.part2 import smoke
    from .runner import set_torch_threads

    # The grading process's thread count: the baseline must be what a grade would compute.
    set_torch_threads(int(cfg.grader.get("threads", 1)))
    reference.setup_parts(cfg)  # the edition's input space and training recipe
    start = time.monotonic()
    try:
        path, values = smoke.prepare(lambda m: reference.load(cfg.reference_dir, "part2", m), cfg.threshold,
                                     cfg.conventions.get("part2", {}))
    except Exception as exc:  # e.g. FashionMNIST missing: say so; grades will compute it themselves
        console.line(f"prepare: the part 2 smoke baseline could not be computed: {type(exc).__name__}: {exc}")
        return False
    where = str(path) if path else "not stored (the cache folder is not writable); grades will compute it"
    console.line(f"prepare: part 2 smoke baseline (standard training) robust accuracy "
                 f"FGSM {values['fgsm']:.3f}, PGD {values['pgd']:.3f} in {time.monotonic() - start:.1f} s -> {where}")
    return True
