"""Smoke training of the student's ``VAE.forward`` on real 4-bit FashionMNIST (Q1.9), and the
manifold of a neural decoder (Q1.10).

One mistake, one deduction: the smoke training grades ``VAE.forward`` alone. The VAE is
built by the student's ``__init__``, but its encoder and decoder are the grader's stand-in
MLPs and the utils forward calls are the grader's stand-ins (``drivers_part1_standins``);
the student's CNNs and utils are graded by their own checks. The grader loads a fixed
subset of FashionMNIST with the instructor's ``data.py`` and sends it to the worker as
uint8; the worker trains with Adam on the bpd that the student's ``forward`` returns, on the
GPU when one is visible. The grader then computes the test bpd itself on held-out images:
the worker only encodes and decodes, the grader draws z with its own noise and computes
cross-entropy + KL.

Settings and thresholds: ``[thresholds.part1.vae_smoke]`` in grading.toml, with the
calibration numbers (reference over seeds, broken variants) next to them;
``tools/calibrate_part1_vae.py`` re-derives them.
"""
from __future__ import annotations

import math

import torch

from autograder.checks.part1 import vae_support as vs
from autograder.registry import check, fail, grades, tags

FORWARD = "part1.train.VAE.forward"
MANIFOLD = "part1.utils.visualize_manifold"
DRV = vs.DRIVER
LEVELS = vs.LEVELS


def _train(part1, ref1, s: dict, z_dim: int, steps: int, partial_credit, figures=None) -> tuple[object, str, dict]:
    """Build and train the student's VAE (stand-in encoder/decoder); returns (model handle, description, metric)."""
    seed = int(s["seed"])
    built = part1.driver(f"{DRV}.build_vae", int(s["num_filters"]), z_dim, False, seed=seed)
    # Loaded once the model exists: an unimplemented VAE fails without reading the data.
    train_imgs, test_imgs = vs.smoke_images(ref1("data"), int(s["n_train"]), int(s["n_test"]))
    model = built["model"]
    what = (f"VAE(num_filters={s['num_filters']}, z_dim={z_dim}) ({built['trainer']}.py, with the grader's MLP encoder "
            f"and decoder) trained for {steps} Adam steps (lr 1e-3, batch {s['batch_size']}) on {s['n_train']} "
            "FashionMNIST images")
    log = vs.run_training(part1, model, train_imgs, steps, int(s["batch_size"]), seed)
    losses = log["losses"]
    if not losses or not all(math.isfinite(v) for v in losses):
        bad = next((i for i, v in enumerate(losses) if not math.isfinite(v)), len(losses))
        fail(f"{what}: the training bpd became {losses[bad] if losses else 'undefined'} at step {bad + 1}; "
             "expected finite losses (look for log(0), exp overflow or a missing softmax in the loss)")
    metric = vs.test_bpd(part1, model, test_imgs, z_dim, int(s["eval_seed"]), what)
    if figures is not None:
        _pictures(part1, model, test_imgs, z_dim, losses, figures)
    metric["note"] = (
        f"Trainer: {built['note']}. {what}: train bpd {losses[0]:.3f} -> {losses[-1]:.3f} in {log['seconds']:.1f} s on {log['device']}; "
        f"test bpd (computed by the grader on {s['n_test']} held-out images) {metric['bpd']:.4f} "
        f"(reconstruction {metric['rec']:.1f} nats, KL {metric['kl']:.2f} nats per image).")
    return model, what, metric


def _pictures(part1, model, test_imgs: torch.Tensor, z_dim: int, losses: list, figures) -> None:
    """For report.html: the training curve, test images and their reconstructions (the decoder's
    expected level at the encoder's mean), and decoded prior samples. Never part of the score."""
    figures.curve("Your VAE's training bpd (smoke training)", losses, "per Adam step", "step")
    mean, _ = part1.driver(f"{DRV}.encode", model, test_imgs[:10])
    z = torch.randn(10, z_dim, generator=torch.Generator().manual_seed(0))
    rows = [("test image", test_imgs[:10, 0].float() / (LEVELS - 1))]
    for name, latents in (("reconstruction", mean.float()), ("prior sample", z)):
        logits = part1.driver(f"{DRV}.decode", model, latents)
        if isinstance(logits, torch.Tensor) and logits.shape == (10, LEVELS, 28, 28):
            levels = torch.arange(LEVELS, dtype=torch.float64).view(1, LEVELS, 1, 1)
            rows.append((name, (torch.softmax(logits.double(), 1) * levels).sum(1) / (LEVELS - 1)))
    rows += [(f"reference: {name}", images) for name, images in _reference_rows()
             if name in ("reconstruction", "prior sample")]
    figures.images("Your VAE after the smoke training", rows,
                   "expected grey level of each pixel under the decoder (encoder and decoder: the grader's MLPs); "
                   "the reference's rows: the same training with the reference forward")


def _reference_rows() -> list:
    """The reference's rows of the same picture, made by ``python -m autograder prepare``; none
    when it has not run."""
    from autograder.prepare import REFERENCE_FIGURES

    try:
        entries = torch.load(REFERENCE_FIGURES, weights_only=True)
        mine = next(e for e in entries if e.get("title") == "Your VAE after the smoke training")
        return [(str(name), images) for name, images in mine["rows"]]
    except Exception:  # noqa: BLE001 - no picture is no failure
        return []


@check("part1.vae.smoke.bpd")
@tags(FORWARD)
def test_smoke_bpd(part1, ref1, threshold, leaderboard, partial_credit, figures):
    """After a short training (z_dim 20) the grader's test bpd is below ``max_test_bpd``.

    The threshold sits between the reference (over 5 seeds) and the broken variants
    (KL sign flipped, L_rec averaged over pixels, decoder ending in a softmax, ...);
    the numbers are in grading.toml next to it.
    """
    s = threshold("part1.vae_smoke")
    _, what, metric = _train(part1, ref1, s, int(s["z_dim"]), int(s["steps"]), partial_credit, figures)
    leaderboard.record("VAE test bpd (smoke training)", round(metric["bpd"], 4), "asc")
    limit = float(s["max_test_bpd"])
    if metric["bpd"] > limit:
        fail(f"{what}: test bpd {metric['bpd']:.4f} (reconstruction {metric['rec']:.1f} nats, KL {metric['kl']:.2f} nats "
             f"per image) is above the threshold {limit:g}; the reference reaches about "
             f"{float(s['reference_bpd']):.2f} with the same budget. An untrained model scores about 4.")
    partial_credit.notes.append(metric["note"])


@check("part1.manifold.smoke.z2")
@grades(MANIFOLD)
@tags(MANIFOLD)
def test_smoke_manifold(part1, threshold, partial_credit):
    """``visualize_manifold`` on a neural decoder: the grader's seeded MLP with ``z_dim = 2``.

    Where 1.10.2's known decoder is a formula, this one is an ``nn.Module`` like a trained
    CNNDecoder (float32 weights, a batch of 400 latents at once, ``decoder.device``). The
    grader evaluates the same network itself and expects the grid of expected pixel values
    on the quantile latents, in any of the accepted orientations, with make_grid's padding
    or any other (absolute 1e-3: the same network evaluated in another batch layout
    differs by ~1e-6).
    """
    g = int(threshold("part1.vae_smoke.grid_size"))
    seed = int(threshold("part1.vae_smoke.manifold_decoder_seed"))
    grid = part1.driver(f"{DRV}.manifold_seeded", g, seed)
    call = f"visualize_manifold(decoder, grid_size={g}) on the grader's neural decoder (MLP, z_dim = 2)"
    decoder = vs.drv.seeded_decoder(seed).double()

    def logits_of(z: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return decoder(z.double())

    if not isinstance(grid, torch.Tensor):
        fail(f"{call} returned {vs.describe(grid)}; expected make_grid's output, a float tensor [3, H, W]")
    matched, _, want = vs.match_orientation(grid, g, logits_of, atol=1e-3)
    if not matched:
        fail(f"{call}: the grid differs from the grader's ({vs.grid_difference(grid, want)}; yours: "
             f"{vs.stats_line(grid)}; expected: {vs.stats_line(want)}); each image must show the expected level / 15 "
             "decoded from the standard-normal quantile latents")
