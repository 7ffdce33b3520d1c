"""``python -m autograder prepare``: compute once, when the image is built, what every grade
would otherwise recompute from trusted inputs alone.

setup.sh runs it (Gradescope runs setup.sh once per autograder upload). Two steps: the
reference's pictures of the VAE smoke training (report.html shows them beside the student's),
and the part 2 smoke tests' standard-training baseline (see autograder/checks/part2/smoke.py);
without it a grade computes the baseline itself, ~1-3 s and ~70 MB more.
"""
from __future__ import annotations

import os
import time
from pathlib import Path

from .checks import reference
from .config import Config
from .console import Console


# What prepare computes lives here; workers cannot read or write it (it is inside autograder/).
CACHE_DIR = Path(__file__).resolve().parent / ".cache"
REFERENCE_FIGURES = CACHE_DIR / "part1_reference_figures.pt"


def reference_figures(cfg: Config, console: Console) -> None:
    """The reference's pictures of the VAE smoke training (report.html shows them beside the
    student's): one grade of ``solutions/`` with check 1.9.7 only. A failure costs the pictures."""
    import tempfile

    from .runner import grade

    if "part1" not in cfg.parts or not any(c.number == "1.9.7" and cfg.selected(c) for c in cfg.checks.values()):
        return
    import torch

    start = time.monotonic()
    try:
        CACHE_DIR.mkdir(parents=True, exist_ok=True)
        # Made beside the old file and renamed over it: a grade running meanwhile (a second
        # setup, the test suite) finds the old pictures or the new ones, never none.
        with tempfile.TemporaryDirectory(dir=CACHE_DIR) as tmp:
            made = Path(tmp) / REFERENCE_FIGURES.name
            grade(cfg.reference_dir, Path(tmp) / "results.json", cfg, ["1.9.7"], Console(quiet=True),
                  figures_out=made)
            # The check showed the previous reference pictures beside these: keep only its own rows.
            entries = [dict(e, rows=[r for r in e["rows"] if not str(r[0]).startswith("reference: ")])
                       if isinstance(e, dict) and "rows" in e else e for e in torch.load(made, weights_only=True)]
            torch.save(entries, made)
            made.chmod(0o644)
            os.replace(made, REFERENCE_FIGURES)
        console.line(f"prepare: the reference's VAE pictures for report.html in {time.monotonic() - start:.1f} s")
    except Exception as exc:  # noqa: BLE001 - the report then shows the student's pictures alone
        console.line(f"prepare: the reference's pictures could not be made: {type(exc).__name__}: {exc}")


def run(cfg: Config, console: Console) -> bool:
    """Run every preparation step for ``cfg``; False when one failed (its message is printed)."""
    reference_figures(cfg, console)
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
