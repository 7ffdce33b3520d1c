"""Smoke trainings of the student's VAE on real 4-bit FashionMNIST (Q1.9, Q1.10).

The grader loads a fixed subset of FashionMNIST with the instructor's ``data.py``
and sends it to the worker as uint8; the worker trains the student's VAE (their
encoder, decoder, forward and the utils it calls) with Adam for a fixed number of
steps (``drivers_part1_vae.train``), on the GPU when one is visible. The grader then
computes the test bpd itself on held-out images: the worker only encodes and
decodes, the grader draws z with its own noise and computes cross-entropy + KL.

Settings and thresholds: ``[thresholds.part1.vae_smoke]`` in grading.toml, with the
calibration numbers (reference over seeds, broken variants) next to them;
``tools/calibrate_part1_vae.py`` re-derives them.
"""
from __future__ import annotations

import math

import torch

from autograder.checks.part1 import vae_support as vs
from autograder.registry import check, fail, tags

TRAINED = ("part1.train.VAE.forward", "part1.utils.sample_reparameterize", "part1.utils.KLD",
           "part1.utils.elbo_to_bpd", "part1.cnn_encoder_decoder.CNNEncoder", "part1.cnn_encoder_decoder.CNNDecoder")
DRV = vs.DRIVER


def _train(part1, ref1, s: dict, z_dim: int, steps: int, partial_credit) -> tuple[object, str, dict]:
    """Build (real CNNs) and train the student's VAE; returns (model handle, description, metric)."""
    seed = int(s["seed"])
    built = part1.driver(f"{DRV}.build_vae", int(s["num_filters"]), z_dim, False, seed=seed)
    # Loaded once the model exists: an unimplemented VAE fails without reading the data.
    train_imgs, test_imgs = vs.smoke_images(ref1("data"), int(s["n_train"]), int(s["n_test"]))
    model = built["model"]
    what = (f"VAE(num_filters={s['num_filters']}, z_dim={z_dim}) ({built['trainer']}.py) trained for {steps} Adam steps "
            f"(lr 1e-3, batch {s['batch_size']}) on {s['n_train']} FashionMNIST images")
    log = vs.run_training(part1, model, train_imgs, steps, int(s["batch_size"]), seed)
    losses = log["losses"]
    if not losses or not all(math.isfinite(v) for v in losses):
        bad = next((i for i, v in enumerate(losses) if not math.isfinite(v)), len(losses))
        fail(f"{what}: the training bpd became {losses[bad] if losses else 'undefined'} at step {bad + 1}; "
             "expected finite losses (look for log(0), exp overflow or a missing softmax in the loss)")
    metric = vs.test_bpd(part1, model, test_imgs, z_dim, int(s["eval_seed"]), what)
    metric["note"] = (
        f"Trainer: {built['note']}. {what}: train bpd {losses[0]:.3f} -> {losses[-1]:.3f} in {log['seconds']:.1f} s on {log['device']}; "
        f"test bpd (computed by the grader on {s['n_test']} held-out images) {metric['bpd']:.4f} "
        f"(reconstruction {metric['rec']:.1f} nats, KL {metric['kl']:.2f} nats per image).")
    return model, what, metric


@check("part1.vae.smoke.bpd")
@tags(*TRAINED)
def test_smoke_bpd(part1, ref1, threshold, leaderboard, partial_credit):
    """After a short training (z_dim 20) the grader's test bpd is below ``max_test_bpd``.

    The threshold sits between the reference (over 5 seeds) and the broken variants
    (KL sign flipped, L_rec averaged over pixels, decoder ending in a softmax, ...);
    the numbers are in grading.toml next to it.
    """
    s = threshold("part1.vae_smoke")
    _, what, metric = _train(part1, ref1, s, int(s["z_dim"]), int(s["steps"]), partial_credit)
    leaderboard.record("VAE test bpd (smoke training)", round(metric["bpd"], 4), "asc")
    limit = float(s["max_test_bpd"])
    if metric["bpd"] > limit:
        fail(f"{what}: test bpd {metric['bpd']:.4f} (reconstruction {metric['rec']:.1f} nats, KL {metric['kl']:.2f} nats "
             f"per image) is above the threshold {limit:g}; the reference reaches about "
             f"{float(s['reference_bpd']):.2f} with the same budget. An untrained model scores about 4.")
    partial_credit.notes.append(metric["note"])


@check("part1.manifold.smoke.z2")
@tags(*TRAINED, "part1.utils.visualize_manifold")
def test_smoke_manifold(part1, ref1, threshold, partial_credit):
    """A z_dim = 2 VAE trained briefly learns a manifold, and visualize_manifold shows its decoder correctly.

    - test bpd below ``max_test_bpd_z2``;
    - the student's ``visualize_manifold(model.decoder, 20)`` equals the grid the grader
      computes from the same decoder's logits on the quantile latents (absolute 1e-3:
      a CNN evaluated on the same latents in a different batch layout differs by ~1e-6);
    - the manifold is not constant: the per-pixel std of the decoded images across the
      grid is at least ``min_manifold_spread`` (a posterior collapse gives ~0).
    """
    s = threshold("part1.vae_smoke")
    g = int(s["grid_size"])
    model, what, metric = _train(part1, ref1, s, 2, int(s["z2_steps"]), partial_credit)
    limit = float(s["max_test_bpd_z2"])
    if metric["bpd"] > limit:
        fail(f"{what}: test bpd {metric['bpd']:.4f} is above the threshold {limit:g} (the reference reaches about "
             f"{float(s['reference_bpd_z2']):.2f})")
    grid = part1.driver(f"{DRV}.manifold_of", model, g)
    call = f"visualize_manifold(model.decoder, grid_size={g}) on the trained z_dim = 2 decoder"
    want_shape = vs.grid_shape(g)
    if not isinstance(grid, torch.Tensor) or tuple(grid.shape) != want_shape:
        fail(f"{call} returned {vs.describe(grid)}; expected make_grid's output of shape {list(want_shape)}")
    cache: dict[bytes, torch.Tensor] = {}

    def logits_of(z: torch.Tensor) -> torch.Tensor:
        key = z.numpy().tobytes()
        if key not in cache:
            cache[key] = part1.driver(f"{DRV}.decode", model, z)
        return cache[key]

    matched, _, want = vs.match_orientation(grid, g, logits_of, atol=1e-3)
    if not matched:
        err = (grid.double() - want).abs().nan_to_num(float("inf"))
        fail(f"{call}: the grid differs from the grader's (largest difference {err.max().item():.3g}; yours: "
             f"{vs.stats_line(grid)}; expected: {vs.stats_line(want)}); each image must show the expected level / 15 "
             "decoded from the standard-normal quantile latents")
    spread = vs.manifold_spread(logits_of(vs.grid_latents(g)))
    minimum = float(s["min_manifold_spread"])
    if spread < minimum:
        fail(f"{what}: the decoded images hardly change over the latent grid (per-pixel std {spread:.4f} < {minimum:g}; "
             f"the reference reaches about {float(s['reference_spread']):.3f}): the decoder ignores z, "
             "e.g. because the KL term overwhelms the reconstruction term")
    partial_credit.notes.append(f"{metric['note']} Manifold spread (per-pixel std across the {g}x{g} grid): {spread:.4f}.")
