"""Calibrate part 3's smoke thresholds: the reference over seeds next to its broken variants.

Measures what checks 3.2.2 (latent attack vs noise), 3.3.2 (targeted success), 3.5.2 (HMC
recovery) and 3.6.3 (beta-VAE training) measure, with the same settings (``[thresholds.part3.*]``
of grading.toml), grader-side functions (``autograder/checks/part3/smoke.py``) and worker driver
(``drivers_part3.beta_smoke``), in this process, once per (variant, seed). A seed moves the
images (a new block of test images) and the random draws. Prints one value per seed::

    .venv/bin/python tools/calibrate_part3.py                       # every metric, seeds 0-4
    .venv/bin/python tools/calibrate_part3.py --metrics hmc --seeds 0 1

Variants: the reference (solutions/part3), the template-style student
(tests/template_style/part3) and the mutants of tests/mutants_part3.py; ``+`` marks a correct
variant.
"""
from __future__ import annotations

import argparse
import importlib
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from autograder import config  # noqa: E402
from autograder.checks import reference  # noqa: E402
from autograder.checks.part3 import helpers as H  # noqa: E402
from autograder.checks.part3 import smoke  # noqa: E402
from tests import mutants_part3 as P  # noqa: E402

PLAN = {
    "latent": ["reference", "template", "+att_sign_noise_start", "att_descends", "att_starts_at_x"],
    "targeted": ["reference", "template", "+tgt_random_start", "tgt_ascends", "untargeted"],
    "hmc": ["reference", "template", "+def_normalised_prior", "def_no_prior", "def_sign_flipped", "def_one_step"],
    "beta": ["reference", "template", "loss_beta_on_reconstruction", "loss_no_beta", "loss_sum_over_batch"],
}
MODULES = ("latent_attacks", "hmc", "beta_vae", "models", "drivers_part3", "drivers_common")
TEMPLATE = ROOT / "tests" / "template_style" / "part3"


def variant_folder(name: str, dest: Path) -> Path:
    """The handout's part 3 with the variant's graded files."""
    shutil.copytree(ROOT / "student" / "part3", dest)
    base = TEMPLATE if name == "template" else ROOT / "solutions" / "part3"
    for f in ("latent_attacks.py", "hmc.py", "beta_vae.py"):
        shutil.copyfile(base / f, dest / f)
    item = next((x for x in [*P.MUTANTS, *P.VARIANTS] if x.id == name.lstrip("+")), None)
    for e in item.edits if item else ():
        path = dest / e.file
        path.write_text(path.read_text().replace(e.find, e.replace), encoding="utf-8")
    return dest


def modules_for(folder: Path) -> dict[str, Any]:
    """Fresh imports of the variant's modules and the worker drivers against ``folder``."""
    for m in MODULES:
        sys.modules.pop(m, None)
    sys.path[:0] = [str(folder), str(ROOT / "autograder" / "sandbox" / "drivers"), str(ROOT / "autograder" / "checks" / "part3")]
    try:
        return {m: importlib.import_module(m) for m in MODULES if m != "drivers_common"}
    finally:
        del sys.path[:3]


def latent(mods: dict[str, Any], vae: Any, data: Any, s: dict[str, Any], seed: int) -> str:
    x, _ = H.images(data, int(s["images"]), start=seed * int(s["images"]))
    torch.manual_seed(seed)
    adv = mods["latent_attacks"].latent_attack(vae.encoder, x, float(s["epsilon"]), float(s["alpha"]), int(s["num_iter"]))
    attacked, noise = smoke.latent_strength(vae, x, adv, float(s["epsilon"]), seed)
    return f"{attacked / noise:.2f}"


def targeted(mods: dict[str, Any], vae: Any, data: Any, s: dict[str, Any], seed: int, untargeted: bool) -> str:
    x, labels = H.images(data, int(s["images"]), start=seed * int(s["images"]))
    target = x[H.pairs(labels, seed)]
    torch.manual_seed(seed)
    args = (float(s["epsilon"]), float(s["alpha"]), int(s["num_iter"]))
    attacks = mods["latent_attacks"]
    adv = attacks.latent_attack(vae.encoder, x, *args) if untargeted else attacks.targeted_latent_attack(vae.encoder, x, target, *args)
    return f"{H.success_rate(vae, adv, x, target):.3f}"


def hmc(mods: dict[str, Any], vae: Any, data: Any, s: dict[str, Any], seed: int, correct_step: Any) -> str:
    s = dict(s, seed=seed)
    x, _ = H.images(data, int(s["images"]), start=seed * int(s["images"]))
    x_adv, z0, z_clean = smoke.defence_setup(vae, x, s)
    mods["hmc"].hmc_step = correct_step  # as in the check, where the grader's stand-in (the same algorithm) runs
    torch.manual_seed(seed)
    z_t = mods["hmc"].hmc_defence(vae.decoder, x_adv, z0, int(s["T"]), float(s["step_size"]), int(s["n_leapfrog"]))
    return f"{smoke.recovery(vae, mods['models'], x, z0, z_t, z_clean)[3]:.2f}"


def beta(mods: dict[str, Any], models: Any, data: Any, s: dict[str, Any], seed: int) -> str:
    s = dict(s, seed=seed)
    train, _ = H.images(data, int(s["train_images"]), split="train", start=seed * int(s["train_images"]))
    held, labels = H.images(data, int(s["eval_images"]), start=seed * int(s["eval_images"]))
    a = H.asset()
    torch.manual_seed(seed)
    initial = models.VAE(a["z_dim"], a["hidden"]).state_dict()
    betas = [float(b) for b in s["betas"]]
    torch.manual_seed(seed)
    trained = mods["drivers_part3"].beta_smoke(train, a["z_dim"], a["hidden"], int(s["steps"]), int(s["batch"]),
                                               float(s["lr"]), betas, seed, initial)
    target = held[H.pairs(labels, seed)]
    out = []
    for b in betas:
        m = smoke.beta_measure(H.grader_vae(models, trained[str(b)]), models, held, target, s)
        out.append(f"b{b:g}: {m['elbo']:.0f}/{m['kl']:.1f}/{m['success']:.2f}")
    return " ".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--metrics", nargs="+", default=list(PLAN), choices=list(PLAN))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2, 3, 4])
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    cfg = config.load()
    data = reference.load(cfg.reference_dir, "part1", "data")
    models = reference.load(cfg.reference_dir, "part3", "models")
    vae = H.grader_vae(models)
    correct_step = reference.load(cfg.reference_dir, "part3", "hmc").hmc_step
    sections = {"latent": "latent_attack", "targeted": "targeted", "hmc": "hmc_defence", "beta": "beta_smoke"}
    legends = {"latent": "median SKL / that of sign noise", "targeted": "success rate",
               "hmc": "fraction of -log p(x|z) recovered", "beta": "per beta: held-out -ELBO / KL / attack success"}
    with tempfile.TemporaryDirectory() as tmp:
        for metric in args.metrics:
            s = cfg.threshold(f"part3.{sections[metric]}")
            print(f"\n{metric}: {legends[metric]}")
            for name in PLAN[metric]:
                mods = modules_for(variant_folder("reference" if name == "untargeted" else name, Path(tmp) / f"{metric}-{name}"))
                values = []
                for seed in args.seeds:
                    if metric == "latent":
                        values.append(latent(mods, vae, data, s, seed))
                    elif metric == "targeted":
                        values.append(targeted(mods, vae, data, s, seed, untargeted=name == "untargeted"))
                    elif metric == "hmc":
                        values.append(hmc(mods, vae, data, s, seed, correct_step))
                    else:
                        values.append(beta(mods, models, data, s, seed))
                print(f"  {name:<30} " + "  ".join(values), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
