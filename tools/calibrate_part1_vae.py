"""Calibrate the part-1 VAE smoke trainings: test bpd of the reference and of broken variants.

Runs the smoke procedure of ``autograder/checks/part1/test_training.py`` outside the
engine (same driver functions, same data, same grader-side metric), one
(submission, seed) per subprocess, and prints a table. Use it after changing the
smoke settings in ``grading.toml`` ([thresholds.part1.vae_smoke]) to re-derive the
thresholds::

    taskset -c 0 .venv/bin/python tools/calibrate_part1_vae.py --seeds 0 1 2 3 4
    taskset -c 0 .venv/bin/python tools/calibrate_part1_vae.py --variants reference no_sampling --seeds 0

Broken variants are edits of ``solutions/`` (the same mechanism as the mutant tests).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

# Broken variants of VAE.forward, the function the smoke training grades (the encoder, decoder
# and utils are the grader's stand-ins there, as in a grade).
VARIANTS: dict[str, list[tuple[str, str, str]]] = {
    "reference": [],
    "rec_mean_pixels": [("train_torch.py", 'reduction="none").flatten(1).sum(dim=1)', 'reduction="none").flatten(1).mean(dim=1)')],
    "reg_sum_batch": [("train_torch.py", "return L_rec_i.mean(), L_reg_i.mean(), bpd",
                       "L_reg = L_reg_i.sum()\n        bpd = elbo_to_bpd(L_rec_i.mean() + L_reg, imgs.shape)\n        return L_rec_i.mean(), L_reg, bpd")],
    "no_sampling": [("train_torch.py", "z = sample_reparameterize(mean, torch.exp(log_std))", "z = mean")],
    "untrained": [],
}


class LocalSession:
    """Calls the worker-side driver functions in this process (the calibration's stand-in for a worker)."""

    def __init__(self, driver: Any) -> None:
        self.drv = driver

    def driver(self, name: str, *args: Any, seed: int | None = 0, slow_ok: bool = False, **kwargs: Any) -> Any:
        import torch

        if seed is not None:
            torch.manual_seed(seed)
        return getattr(self.drv, name.split(".", 1)[1])(*args, **kwargs)


def run_one(sub: Path, variant: str, seed: int, settings: dict[str, Any]) -> dict[str, Any]:
    """One smoke training of ``sub``'s VAE (in this process); the grader's metric."""
    import torch

    torch.set_num_threads(1)
    sys.path.insert(0, str(sub / "part1"))
    from autograder.checks import reference
    from autograder.checks.part1 import vae_support as vs

    data = reference.load(ROOT / "solutions", "part1", "data")  # as the grader's ref1("data")
    # The stand-ins a grade installs while VAE.forward is graded (drivers_common.use_standins).
    sys.path[:0] = [str(ROOT / "autograder" / "sandbox" / "drivers"), str(ROOT / "autograder" / "checks" / "part1")]
    import drivers_common

    from autograder.config import load
    from autograder.standins import StandIns

    spec = load().parts["part1"]
    standins = StandIns("part1", ROOT / "autograder" / "checks" / "part1" / f"{spec.standins}.py", spec.depends)
    drivers_common.use_standins(standins.source_for(standins.calls("train.VAE.forward")), str(sub / "part1"))
    session = LocalSession(vs.drv)
    train_imgs, test_imgs = vs.smoke_images(data, settings["n_train"], settings["n_test"])
    out: dict[str, Any] = {"variant": variant, "seed": seed, "z_dim": settings["z_dim"]}
    t0 = time.monotonic()
    built = session.driver("x.build_vae", settings["num_filters"], settings["z_dim"], False, seed=seed)
    model = built["model"]
    steps = 0 if variant == "untrained" else settings["steps"]
    log = vs.run_training(session, model, train_imgs, steps, settings["batch_size"], seed)
    out["train_s"] = round(log["seconds"], 2)
    out["final_train_bpd"] = log["losses"][-1] if log["losses"] else None
    metric = vs.test_bpd(session, model, test_imgs, settings["z_dim"], settings["eval_seed"], "calibration")
    out.update({k: round(v, 4) for k, v in metric.items()})
    out["total_s"] = round(time.monotonic() - t0, 2)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--variants", nargs="+", default=list(VARIANTS))
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2, 3, 4])
    ap.add_argument("--z_dims", nargs="+", type=int, default=None)
    ap.add_argument("--config", default=str(ROOT / "grading.toml"))
    ap.add_argument("--set", nargs="*", default=[], help="override settings, e.g. steps=300 num_filters=16")
    ap.add_argument("--one", default=None, help=argparse.SUPPRESS)  # internal: JSON job for a subprocess
    args = ap.parse_args()
    if args.one:
        job = json.loads(args.one)
        print(json.dumps(run_one(Path(job["sub"]), job["variant"], job["seed"], job["settings"])))
        return 0

    from autograder.config import load
    from tests.support import Edit, make_submission

    cfg = load(args.config)
    base = dict(cfg.threshold("part1.vae_smoke"))
    for item in args.set:
        k, v = item.split("=", 1)
        base[k] = type(base[k])(v) if k in base else float(v)
    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        for variant in args.variants:
            edits = [Edit("part1", f, a, b) for f, a, b in VARIANTS[variant]]
            sub = make_submission(Path(tmp) / variant, edits, parts=("part1",))
            for z_dim in args.z_dims or [base["z_dim"]]:
                settings = dict(base, z_dim=z_dim)
                for seed in args.seeds:
                    job = json.dumps({"sub": str(sub), "variant": variant, "seed": seed, "settings": settings})
                    proc = subprocess.run([sys.executable, __file__, "--one", job], capture_output=True, text=True,
                                          cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
                    if proc.returncode != 0:
                        print(f"{variant} seed {seed} z_dim {z_dim}: FAILED\n{proc.stderr[-2000:]}", flush=True)
                        continue
                    row = json.loads(proc.stdout.strip().splitlines()[-1])
                    runs.append(row)
                    print(json.dumps(row), flush=True)
    print("\nvariant            z_dim  seeds  test bpd (min / mean / max)    train s (max)")
    keys = sorted({(r["variant"], r["z_dim"]) for r in runs}, key=lambda k: (args.variants.index(k[0]), -k[1]))
    for variant, z_dim in keys:
        rs = [r for r in runs if r["variant"] == variant and r["z_dim"] == z_dim]
        b = [r["bpd"] for r in rs]
        print(f"{variant:18s} {z_dim:5d}  {len(rs):5d}  {min(b):.4f} / {sum(b)/len(b):.4f} / {max(b):.4f}     "
              f"{max(r['train_s'] for r in rs):.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
