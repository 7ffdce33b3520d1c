"""Calibrate the part-4 (IFT6135 HW3) smoke thresholds: the reference over seeds next to broken variants.

Runs the two smoke trainings of checks 2.1.4 (critic with the student's ``lp_reg``) and 3.1.3
(SimSiam with the student's ``forward``) outside the engine: the same worker drivers
(``autograder/checks/part4/drivers_part4.py``), settings (``[thresholds.part4.*]`` of grading.toml)
and grader-side measurements (``autograder/checks/part4/smoke.py``), in this process, once per
(variant, seed). Prints min / mean / max over the seeds per variant::

    .venv/bin/python tools/calibrate_ift6135.py                 # both metrics, seeds 0-4
    .venv/bin/python tools/calibrate_ift6135.py --metrics wgan --seeds 0 1 2

Variants: the reference (solutions/part4), the template-style submission
(tests/template_style/ift6135) and the mutants of tests/mutants_ift6135.py applied to it; a
name with ``+`` in front is a correct variant.
"""
from __future__ import annotations

import argparse
import importlib
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any, Callable

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from autograder import config  # noqa: E402
from autograder.checks import reference  # noqa: E402
from autograder.checks.part4 import smoke  # noqa: E402
from tests import mutants_ift6135 as I  # noqa: E402

PLAN = {
    "wgan": ["reference", "template", "+lp_t_per_element", "lp_no_square", "lp_two_sided", "lp_no_create_graph",
             "lp_norm_over_batch", "lp_sum_over_batch"],
    "simsiam": ["reference", "template", "fwd_never_detached"],
}
MODULES = ("q2_solution", "q2_model", "q2_sampler", "q3_solution", "q3_model", "drivers_part4", "drivers_common")


def variant_folder(name: str, dest: Path) -> Path:
    """A folder with the handout's helpers and the variant's q2/q3_solution.py."""
    shutil.copytree(ROOT / "student" / "part4", dest)
    base = ROOT / "solutions" / "part4" if name == "reference" else I.TEMPLATE
    for f in ("q2_solution.py", "q3_solution.py"):
        shutil.copyfile(base / f, dest / f)
    if name not in ("reference", "template"):
        mutant = next(x for x in [*I.MUTANTS, *I.VARIANTS] if x.id == name.lstrip("+"))
        for e in mutant.edits:
            path = dest / e.file
            path.write_text(path.read_text().replace(e.find, e.replace), encoding="utf-8")
    return dest


def drivers_for(folder: Path) -> Any:
    """Import the worker drivers against ``folder`` (fresh modules, as a new worker has)."""
    for m in MODULES:
        sys.modules.pop(m, None)
    sys.path[:0] = [str(folder), str(ROOT / "autograder" / "sandbox" / "drivers"), str(ROOT / "autograder" / "checks" / "part4")]
    try:
        for m in ("q2_solution", "q3_solution"):  # imported now: the drivers resolve them by name later
            importlib.import_module(m)
        return importlib.import_module("drivers_part4"), importlib.import_module("q2_model"), importlib.import_module("q3_model")
    finally:
        del sys.path[:3]


def wgan(mods: Any, s: dict[str, Any], seed: int) -> str:
    drivers, q2_model, _ = mods
    s = dict(s, seed=seed)
    critic, args, g = smoke.wgan_setup(s, q2_model.Critic)
    torch.manual_seed(seed)  # the worker seeds each call
    critic.load_state_dict(drivers.wgan_smoke(*args))
    estimate, norm = smoke.wgan_measure(critic, s, g)
    return f"{estimate:.3f}/{norm:.3f}"


def simsiam(mods: Any, s: dict[str, Any], seed: int, images: tuple[torch.Tensor, torch.Tensor]) -> str:
    drivers, _, q3_model = mods
    s = dict(s, seed=seed)
    encoder, args = smoke.simsiam_setup(s, q3_model, images[0])
    torch.manual_seed(seed)  # the worker seeds each call
    encoder.load_state_dict(drivers.simsiam_smoke(*args))
    return f"{smoke.collapse_std(encoder, images[1], int(s['dim'])):.3f}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--metrics", nargs="+", default=list(PLAN), choices=list(PLAN))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2, 3, 4])
    parser.add_argument("--edition", default="ift6135")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    cfg = config.load(edition=args.edition)
    settings = {"wgan": cfg.threshold("part4.wgan_smoke"), "simsiam": cfg.threshold("part4.simsiam_smoke")}
    images = None
    if "simsiam" in args.metrics:
        images = smoke.simsiam_images(reference.load(cfg.reference_dir, "part2", "data"), settings["simsiam"])
    with tempfile.TemporaryDirectory() as tmp:
        for metric in args.metrics:
            print(f"\n{metric}: " + ("W1 estimate / mean gradient norm" if metric == "wgan" else "collapse std"))
            for name in PLAN[metric]:
                mods = drivers_for(variant_folder(name, Path(tmp) / f"{metric}-{name}"))
                run: Callable[[int], str] = (lambda seed: wgan(mods, settings["wgan"], seed)) if metric == "wgan" else (
                    lambda seed: simsiam(mods, settings["simsiam"], seed, images))
                values = [run(seed) for seed in args.seeds]
                print(f"  {name:<24} " + "  ".join(values), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
