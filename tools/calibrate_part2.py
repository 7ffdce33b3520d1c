"""Calibrate the part-2 thresholds: the reference over seeds next to broken variants.

Runs the procedures of the part-2 checks outside the engine (the same driver functions,
data, settings from grading.toml and grader-side metrics), one (variant, seed) per
subprocess, and prints a table per metric: min / mean / max over seeds for each variant.

Metrics (the threshold each one calibrates, in [thresholds.part2.*]):

* ``fgsm_drop``   clean minus FGSM accuracy of the grader's model     -> attacks.fgsm_min_drop
* ``pgd_drop``    clean minus PGD accuracy of the grader's model      -> attacks.pgd_min_drop
* ``pgd_vs_fgsm`` accuracy under PGD minus under FGSM (strength check) -> pgd.fgsm_slack
* ``pgd_gain``    min over the value check's settings of the loss increase relative to the
                  reference PGD's                                      -> pgd.min_loss_gain_fraction
* ``fgsm_train``  robust-accuracy gain of FGSM-loss training          -> smoke.fgsm_min_gain
* ``pgd_train``   robust-accuracy gain of PGD-batch training          -> smoke.pgd_min_gain

A seed picks a different test subset for the attack metrics (the checks use the first),
the random start of a randomised PGD, and the shuffling of the smoke trainings::

    taskset -c 0 .venv/bin/python tools/calibrate_part2.py --metrics fgsm_drop pgd_drop pgd_vs_fgsm pgd_gain
    taskset -c 0 .venv/bin/python tools/calibrate_part2.py --metrics fgsm_train --seeds 0 1 2 3 4
    taskset -c 0 .venv/bin/python tools/calibrate_part2.py --edition uva2024 --metrics fgsm_train pgd_train

Broken variants are the mutants of tests/mutants_part2.py (plus a few listed here), applied
to a copy of solutions/ exactly as the mutant tests do. With ``--edition`` the edition's
conventions apply (input space, training recipe, PGD settings) and the base is the edition's
template-style submission with the mutants of its module (:data:`EDITIONS`); the thresholds
it prints belong in ``[editions.NAME.thresholds...]``.
"""
from __future__ import annotations

import argparse
import importlib
import json
import shutil
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

ATTACK_METRICS = ("fgsm_drop", "pgd_drop", "pgd_vs_fgsm", "pgd_gain")
# edition -> (module of its template-style mutants and variants, the plan for it)
EDITIONS: dict[str, tuple[str, dict[str, list[str]]]] = {
    "uva2024": ("tests.mutants_uva2024", {
        "fgsm_drop": ["reference", "+fgsm_clamp_normalised_unit", "+fgsm_no_clamp", "fgsm_eps_halved",
                      "fgsm_grad_not_sign", "fgsm_sign_reversed"],
        "pgd_drop": ["reference", "+pgd_clamp_normalised_unit", "+pgd_no_clamp", "pgd_one_step", "pgd_no_projection",
                     "pgd_sign_reversed"],
        "pgd_vs_fgsm": ["reference", "+pgd_clamp_normalised_unit", "+pgd_no_clamp", "pgd_one_step", "pgd_sign_reversed"],
        "pgd_gain": ["reference", "+pgd_clamp_normalised_unit", "+pgd_no_clamp", "pgd_one_step", "pgd_no_projection",
                     "pgd_sign_reversed"],
        "fgsm_train": ["reference", "+fgsm_loss_autograd_grad", "loss_clean_only", "fgsm_sign_reversed",
                       "fgsm_grad_not_sign", "fgsm_eps_halved"],
        "pgd_train": ["reference", "+train_adversarial_only", "train_clean_only", "pgd_sign_reversed", "pgd_one_step",
                      "pgd_no_projection"],
    }),
}
METRICS = ATTACK_METRICS + ("fgsm_train", "pgd_train")
# Which variants each metric is calibrated against (the reference first; then broken ones,
# and correct-but-different ones marked with a leading "+").
PLAN: dict[str, list[str]] = {
    "fgsm_drop": ["reference", "fgsm_eps_halved", "fgsm_grad_not_sign", "fgsm_sign_reversed"],
    "pgd_drop": ["reference", "+pgd_random_start", "pgd_one_step", "pgd_step_radius_swapped", "pgd_radius_alpha",
                 "pgd_grad_not_sign", "pgd_sign_reversed", "pgd_grad_accumulates"],
    "pgd_vs_fgsm": ["reference", "+pgd_random_start", "+pgd_not_clamped", "pgd_one_step", "pgd_step_radius_swapped",
                    "pgd_radius_alpha", "pgd_grad_not_sign", "pgd_sign_reversed", "pgd_grad_accumulates"],
    "pgd_gain": ["reference", "+pgd_random_start", "+pgd_delta_clamped_forward", "pgd_one_step", "pgd_step_radius_swapped",
                 "pgd_radius_alpha", "pgd_grad_not_sign", "pgd_sign_reversed", "pgd_grad_accumulates",
                 "pgd_random_start_one_step", "pgd_random_start_grad_not_sign", "pgd_random_start_only"],
    "fgsm_train": ["reference", "+loss_adversarial_only", "loss_clean_only", "fgsm_sign_reversed", "fgsm_grad_not_sign",
                   "fgsm_eps_halved"],
    "pgd_train": ["reference", "+train_adversarial_only", "train_clean_only", "pgd_sign_reversed", "pgd_grad_not_sign",
                  "pgd_one_step", "pgd_no_projection"],
}

PGD_DELTA = """    delta = torch.zeros_like(data)
    for _ in range(num_iter):
        delta.requires_grad_(True)
        loss = criterion(model((data + delta).clamp(0, 1)), target)  # clamp only inside the forward pass
        (grad,) = torch.autograd.grad(loss, delta)
        delta = (delta + alpha * grad.sign()).clamp(-epsilon, epsilon).detach()
    perturbed_data = (data + delta).clamp(0, 1).detach()
"""


def _edits(name: str, edition: str = "") -> tuple:
    if edition:
        import importlib

        module = importlib.import_module(EDITIONS[edition][0])
        if name == "reference":
            return ()
        for item in [*module.MUTANTS, *module.VARIANTS]:
            if item.id == name:
                return item.edits
        raise KeyError(f"unknown variant {name!r} of edition {edition!r}")
    from tests.mutants_part2 import AA, LOSS_LINE, MUTANTS, PGD_RANDOM_START, VARIANTS, body, e

    start = body(AA, "pgd_attack")
    extra = {
        "reference": (),
        "loss_clean_only": (e(AA, LOSS_LINE, "    loss = clean_loss\n"),),
        "pgd_delta_clamped_forward": (e(AA, start, PGD_DELTA),),
        # random start combined with a broken step: only the loss level can catch these
        "pgd_random_start_one_step": (e(AA, start, PGD_RANDOM_START.replace("range(num_iter)", "range(1)")),),
        "pgd_random_start_grad_not_sign": (e(AA, start, PGD_RANDOM_START.replace("alpha * grad.sign()", "alpha * grad")),),
        "pgd_random_start_only": (e(AA, start, PGD_RANDOM_START.replace("range(num_iter)", "range(0)")),),
    }
    if name in extra:
        return extra[name]
    for item in [*MUTANTS, *VARIANTS]:
        if item.id == name:
            return item.edits
    raise KeyError(f"unknown variant {name!r}")


class LocalSession:
    """Calls the worker-side driver functions in this process, seeding torch first like the worker."""

    def __init__(self, driver: Any) -> None:
        self.drv = driver

    def driver(self, name: str, *args: Any, seed: int | None = 0, slow_ok: bool = False, **kwargs: Any) -> Any:
        import torch

        if seed is not None:
            torch.manual_seed(seed)
        return getattr(self.drv, name.split(".", 1)[1])(*args, **kwargs)


def run_one(sub: Path, metric: str, seed: int, edition: str = "") -> float:
    """One metric for one submission folder and seed, computed as the checks do."""
    import torch

    torch.set_num_threads(1)
    from autograder import config
    from autograder.checks import reference

    cfg = config.load(edition=edition or None)
    reference.setup_parts(cfg)

    def ref2(module: str) -> Any:
        return reference.load(cfg.reference_dir, "part2", module)

    for module in ("globals", "models", "data", "adversarial_attack", "utils"):
        ref2(module)  # the reference first, under private names: the flat names stay free for the variant
    sys.path.insert(0, str(sub / "part2"))
    from autograder.checks.part2 import drivers_part2 as D
    from autograder.checks.part2 import helpers as H
    from autograder.checks.part2 import mistakes
    from autograder.checks.part2 import smoke as S
    from autograder.checks.part2 import test_training as T
    from autograder.checks.part2.test_pgd import settings_of

    th = cfg.threshold
    space = H.space()
    session = LocalSession(D)
    model = H.grader_model(ref2("models"))
    if metric == "fgsm_drop":
        start, count = th("part2.attacks.smoke_images")
        x, y = H.test_images(ref2("data"), start + 1000 * seed, count)
        eps = space.epsilon(th("part2.attacks.smoke_epsilon"))
        adv = session.driver("d.fgsm_on_model", model, x, y, eps, seed=seed)
        return H.accuracy(model, x, y) - H.accuracy(model, adv, y)
    if metric in ("pgd_drop", "pgd_vs_fgsm"):
        key = "smoke_pgd" if metric == "pgd_drop" else "strength"
        eps, alpha, n = th("part2.attacks.smoke_pgd") if metric == "pgd_drop" else th("part2.pgd.strength_attack")
        eps, alpha = space.epsilon(eps), space.epsilon(alpha)
        start, count = th("part2.attacks.smoke_pgd_images") if key == "smoke_pgd" else th("part2.pgd.strength_images")
        x, y = H.test_images(ref2("data"), start + 500 * seed, count)
        adv = session.driver("d.pgd_on_model", model, x, y, eps, alpha, n, seed=seed)
        if H.ball_excess(adv, x, eps).max().item() > 1e-6:
            return float("nan")  # the check fails it on the ball alone
        if metric == "pgd_drop":
            return H.accuracy(model, x, y) - H.accuracy(model, adv, y)
        fgsm = H.fgsm(x, H.input_gradient(model, x, y), eps)
        return H.accuracy(model, adv, y) - H.accuracy(model, fgsm, y)
    if metric == "pgd_gain":
        x, y = H.test_images(ref2("data"), 200 + 64 * seed, 64)
        worst = float("inf")
        for eps, alpha, n in settings_of(cfg):
            out = session.driver("d.pgd_probe", model, x, y, eps, alpha, n, seed=seed)["out"]
            if H.ball_excess(out, x, eps).max().item() > 1e-6:
                return float("nan")
            want = H.pgd(model, x, y, eps, alpha, n)
            clean = H.mean_loss(model, x, y)
            worst = min(worst, (H.mean_loss(model, out, y) - clean) / (H.mean_loss(model, want, y) - clean))
        return worst
    if metric in ("fgsm_train", "pgd_train"):
        strategy = "fgsm" if metric == "fgsm_train" else "pgd"
        s = S.settings(th, cfg.conventions.get("part2", {}))
        s["seed"] = seed
        args = dict(s["fgsm_defense"] if strategy == "fgsm" else s["pgd_defense"])
        # As check 2.2.5 does: FGSM trains with the handout's loop (it grades fgsm_loss).
        trained = T.train_student(session, ref2, s, strategy, args, metric, "harness" if strategy == "fgsm" else "student")
        _, _, _, _, xte, yte = S.smoke_data(ref2("data"), s)
        got = S.robust_accuracy(trained, xte, yte, strategy, s)
        # Computed, not cached: each seed's settings would leave a cache file behind.
        return got - S.compute_baseline(ref2, s)[strategy]
    raise KeyError(metric)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--metrics", nargs="+", default=list(ATTACK_METRICS), choices=METRICS)
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2, 3, 4])
    parser.add_argument("--variants", nargs="*", help="restrict to these variants (names without '+')")
    parser.add_argument("--json", type=Path, help="also write the raw numbers here")
    parser.add_argument("--edition", default="", choices=["", *EDITIONS], help="calibrate for this edition")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.one:
        job = json.loads(args.one)
        print(json.dumps({"value": run_one(Path(job["sub"]), job["metric"], job["seed"], job.get("edition", ""))}))
        return 0

    from tests.support import ROOT as REPO, make_submission

    plan = EDITIONS[args.edition][1] if args.edition else PLAN

    table: dict[str, dict[str, list[float]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for metric in args.metrics:
            for label in plan[metric]:
                name = label.lstrip("+")
                if args.variants and name not in args.variants:
                    continue
                sub = Path(tmp) / name
                if not sub.exists():
                    if args.edition:
                        base = importlib.import_module(EDITIONS[args.edition][0]).TEMPLATE
                        make_submission(sub, _edits(name, args.edition), base=base, parts=("part2",))
                        for handout in (REPO / "student" / "part2").glob("*.py"):  # what staging adds
                            if not (sub / "part2" / handout.name).exists():
                                shutil.copyfile(handout, sub / "part2" / handout.name)
                    else:
                        make_submission(sub, _edits(name), parts=("part2",))
                for seed in args.seeds:
                    started = time.time()
                    job = json.dumps({"sub": str(sub), "metric": metric, "seed": seed, "edition": args.edition})
                    proc = subprocess.run([sys.executable, __file__, "--one", job], capture_output=True, text=True,
                                          cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
                    lines = [l for l in proc.stdout.splitlines() if l.startswith("{")]
                    value = json.loads(lines[-1])["value"] if proc.returncode == 0 and lines else float("nan")
                    if proc.returncode != 0:
                        print(f"  {metric} {name} seed {seed}: failed: {proc.stderr.strip().splitlines()[-1:]}",
                              file=sys.stderr)
                    table.setdefault(metric, {}).setdefault(label, []).append(value)
                    print(f"  {metric:11s} {label:28s} seed {seed}: {value:.4f} ({time.time() - started:.0f} s)", flush=True)
    print()
    for metric, rows in table.items():
        print(f"{metric}  (min / mean / max over seeds {args.seeds}; '+' = correct variant, nan = fails the ball check)")
        for label, values in rows.items():
            ok = [v for v in values if v == v]
            stats = f"{min(ok):.4f} / {sum(ok) / len(ok):.4f} / {max(ok):.4f}" if ok else "nan"
            print(f"    {label:30s} {stats}   {['%.4f' % v for v in values]}")
    if args.json:
        args.json.write_text(json.dumps(table, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
