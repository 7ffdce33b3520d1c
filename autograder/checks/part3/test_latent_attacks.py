"""Checks of part 3's latent_attacks.py: the symmetric KL divergence and the two latent attacks.

The attacks run on the grader's trained VAE (``assets/``, sent to the worker); while an attack is
graded its ``symmetric_kl`` is the grader's stand-in. Every expectation is computed here, in
float64, from what comes back.
"""
from __future__ import annotations

from typing import Any

import torch
from hypothesis import given
from hypothesis import strategies as st

from autograder.checks.part1.strategies import LOG_STD_RANGE, MEAN_RANGE, graded, uniform
from autograder.checks.part1.test_distributions import static_uses
from autograder.checks.part3 import helpers as H
from autograder.checks.part3 import mistakes, smoke
from autograder.registry import check, fail, grades, tags

SKL = "part3.latent_attacks.symmetric_kl"
ATTACK = "part3.latent_attacks.latent_attack"
TARGETED = "part3.latent_attacks.targeted_latent_attack"
SEEDS = st.integers(min_value=0, max_value=2**31 - 1)


def _gaussians(seed: int, batch: int, dim: int) -> list[torch.Tensor]:
    """Two batches of diagonal Gaussians' (mean, log_std) in a VAE encoder's usual ranges."""
    return [uniform((batch, dim), *(MEAN_RANGE if k % 2 == 0 else LOG_STD_RANGE), seed + k) for k in range(4)]


def _skl_out(part3: Any, args: list[torch.Tensor], call: str) -> dict[str, Any]:
    r = H.probe(part3, "skl_probe", *args, call=call)
    out, batch = r["out"], args[0].shape[0]
    if not isinstance(out, torch.Tensor):
        fail(f"{call} returned {H.describe(out)}; expected a tensor of shape [B] = [{batch}]")
    if tuple(out.shape) != (batch,):
        fail(f"{call} returned shape {list(out.shape)}; expected [B] = [{batch}]: one divergence per example, summed "
             "over the latent dimensions" + (" (not over the batch)" if out.numel() == 1 else ""))
    return r


# ============================================================================ 3.1 symmetric_kl
@check("part3.latent_attacks.symmetric_kl.values")
@grades(SKL)
@tags(SKL)
@graded
@given(seed=SEEDS, dim=st.sampled_from([3, 8, 20, 1]))  # not 2: a mean over 2 dimensions is the average of the KLs
def test_skl_values(part3, seed, dim):
    """KL(q1 || q2) + KL(q2 || q1) in closed form, per example, for means and log-stds across
    an encoder's usual ranges; relative tolerance 1e-4 (float32 with variance ratios up to e^10)."""
    args = _gaussians(seed, 16, dim)
    call = f"symmetric_kl(mean1, log_std1, mean2, log_std2) for [16, {dim}] inputs"
    got = _skl_out(part3, args, call)["out"].double()
    want = H.skl(*args)
    err = ((got - want).abs() / want.abs().clamp(min=1.0)).max()
    if not bool(torch.isfinite(got).all()) or float(err) > 1e-4:
        i = int(((got - want).abs() / want.abs().clamp(min=1.0)).nan_to_num(float("inf")).argmax())
        fail(f"{call}: example {i} is {float(got[i]):.6g}; expected {float(want[i]):.6g} "
             "(sum over dimensions of (s1^2 + d^2) / (2 s2^2) + (s2^2 + d^2) / (2 s1^2) - 1, d = mean1 - mean2)",
             mistakes.symmetric_kl(got, *args))


@check("part3.latent_attacks.symmetric_kl.properties")
@grades(SKL)
@tags(SKL)
def test_skl_properties(part3):
    """Symmetric in its two Gaussians, exactly 0 where they are equal, and differentiable: the
    attacks ascend its gradient, so the gradients on all four inputs must match the closed form's
    (tolerance 1e-4 relative)."""
    args = _gaussians(7, 32, 8)
    call = "symmetric_kl(mean1, log_std1, mean2, log_std2) for [32, 8] inputs"
    r = _skl_out(part3, args, call)
    swapped = _skl_out(part3, [args[2], args[3], args[0], args[1]], call + " with the two Gaussians swapped")["out"]
    if float((r["out"].double() - swapped.double()).abs().max() / r["out"].double().abs().clamp(min=1).max()) > 1e-5:
        fail(f"{call}: swapping the two Gaussians changes the result (largest change "
             f"{float((r['out'] - swapped).abs().max()):.4g}); the symmetric KL divergence is symmetric",
             mistakes.symmetric_kl(r["out"], *args))
    same = _skl_out(part3, [args[0], args[1], args[0].clone(), args[1].clone()], call + " of a Gaussian with itself")["out"]
    if float(same.abs().max()) > 1e-5:
        fail(f"symmetric_kl of a Gaussian with itself is {H.preview(same)}; expected exactly 0 for every example")
    if r.get("grads") is None or any(g is None for g in r["grads"]):
        fail(f"{call}: no gradient reaches " + ("the inputs" if r.get("grads") is None else
             ", ".join(n for n, g in zip(("mean1", "log_std1", "mean2", "log_std2"), r["grads"]) if g is None))
             + " (detached, or computed with .item()/numpy): the attacks need the gradient"
             + (f"; backward() raised {r['backward_error']}" if "backward_error" in r else ""))
    leaves = [a.double().requires_grad_(True) for a in args]
    want = torch.autograd.grad(H.skl(*leaves).sum(), leaves)
    for name, g, w in zip(("mean1", "log_std1", "mean2", "log_std2"), r["grads"], want):
        if float(((g.double() - w).abs() / w.abs().clamp(min=1.0)).max()) > 1e-4:
            fail(f"{call}: the gradient of the summed result with respect to {name} is {H.preview(g)}; expected "
                 f"{H.preview(w)}")


@check("part3.latent_attacks.symmetric_kl.closed_form")
@grades(SKL)
@tags(SKL)
def test_skl_closed_form(part3):
    """The closed form is the exercise: latent_attacks.py may not use torch.distributions."""
    if not part3.has("latent_attacks.py"):
        fail("latent_attacks.py was not found in your submission" + (f" ({part3.file_note('latent_attacks.py')})"
                                                                      if part3.file_note("latent_attacks.py") else ""))
    f = part3.discovery.files.get("part3/latent_attacks.py")
    uses = static_uses(f.path.read_text(encoding="utf-8"), "latent_attacks.py") if f and f.path else []
    if uses:
        fail("latent_attacks.py uses torch.distributions (write the Gaussians' KL divergence by formula): "
             + "; ".join(f"line {u.line} (in {u.function}): {u.text}" for u in uses[:6]), "torch.distributions used")
    H.probe(part3, "skl_probe", *_gaussians(1, 2, 2), call="symmetric_kl(...)")  # it must also run


# ============================================================================ 3.2 latent_attack
def _ball(part3: Any, data: Any, function: str, epsilons: list[float], with_target: bool) -> None:
    asset = H.asset()
    x, labels = H.images(data, 16)
    target = x[H.pairs(labels, 0)] if with_target else None
    for eps in epsilons:
        alpha, steps = eps / 4, 5
        call = f"{function}(encoder, x, {'x_target, ' if with_target else ''}epsilon={eps:g}, alpha={alpha:g}, num_iter={steps})"
        r = H.probe(part3, "attack_probe", function, asset, x, target, eps, alpha, steps, call=call)
        adv = H.returned_images(r["out"], x, call)
        if r["input_changed"]:
            fail(f"{call} changed x in place; the caller's clean images must stay as they were (work on a copy)")
        if r["requires_grad"]:
            fail(f"{call} returned a tensor that requires grad; return x_adv.detach()")
        excess = float(((adv - x).abs() - eps).max())
        if excess > 1e-6:
            fail(f"{call}: a pixel moved by {eps + excess:.4g}, outside the L-infinity ball of radius {eps:g} "
                 "(project after every step: x + clamp(x_adv - x, -epsilon, epsilon))", "no projection onto the ball")
        if float(adv.min()) < -1e-6 or float(adv.max()) > 1 + 1e-6:
            fail(f"{call}: pixel values reach [{float(adv.min()):.4g}, {float(adv.max()):.4g}]; images stay in [0, 1] "
                 "(clamp after the projection)")


@check("part3.latent_attacks.latent_attack.ball")
@grades(ATTACK)
@tags(ATTACK)
def test_latent_attack_ball(part3, ref1):
    """Every adversarial image is inside the L-infinity ball around its clean image and in
    [0, 1], of x's shape, detached, and x is not changed in place (radii 0.03 and 0.1, where the
    [0, 1] clamp matters for the black background)."""
    _ball(part3, ref1("data"), "latent_attack", [0.03, 0.1], with_target=False)


@check("part3.latent_attacks.latent_attack.strength")
@grades(ATTACK)
@tags(ATTACK)
def test_latent_attack_strength(part3, ref1, ref3, threshold, figures):
    """On the grader's VAE, the median SKL between q(z|x_adv) and q(z|x) the attack reaches must
    beat random sign noise of the same radius by a calibrated factor (grading.toml): an attack
    that descends, or that starts at x (where the gradient is exactly zero), does not."""
    s = threshold("part3.latent_attack")
    eps, alpha, steps = float(s["epsilon"]), float(s["alpha"]), int(s["num_iter"])
    x, _ = H.images(ref1("data"), int(s["images"]))
    call = f"latent_attack(encoder, x, epsilon={eps:g}, alpha={alpha:g}, num_iter={steps}) on {len(x)} FashionMNIST test images"
    r = H.probe(part3, "attack_probe", "latent_attack", H.asset(), x, None, eps, alpha, steps, call=call)
    adv = H.returned_images(r["out"], x, call)
    vae = H.grader_vae(ref3("models"))
    attacked, noise = smoke.latent_strength(vae, x, adv, eps, int(s["seed"]))
    figures.images("Your latent attack on the grader's VAE", [
        ("clean", x[:8]), ("attacked", adv[:8]), ("clean reconstruction", vae.reconstruct(x[:8])),
        ("attacked reconstruction", vae.reconstruct(adv[:8].clamp(0, 1)))],
        caption=f"epsilon {eps:g}: median SKL {attacked:.1f} (random signs of the same radius: {noise:.1f})")
    ratio = attacked / max(noise, 1e-12)
    if ratio < float(s["min_ratio"]):
        moved = float((adv - x).abs().max())
        hint = ("started at x: the SKL's gradient there is exactly zero, so sign steps never move; start from a random "
                "point of the ball" if moved == 0 else
                "the attack does not increase the SKL beyond what noise does (a step against the gradient, or steps "
                "that are lost between iterations)" if attacked < 1.5 * noise else None)
        fail(f"{call}: the median SKL[q(z|x_adv), q(z|x)] is {attacked:.4g}, {ratio:.3g} times that of random sign "
             f"noise of the same radius ({noise:.4g}); expected at least {float(s['min_ratio']):g} times", hint)


# ============================================================================ 3.3 targeted_latent_attack
@check("part3.latent_attacks.targeted_latent_attack.ball")
@grades(TARGETED)
@tags(TARGETED)
def test_targeted_ball(part3, ref1):
    """As 3.2.1 for the targeted attack (radii 0.03 and 0.2)."""
    _ball(part3, ref1("data"), "targeted_latent_attack", [0.03, 0.2], with_target=True)


@check("part3.latent_attacks.targeted_latent_attack.success")
@grades(TARGETED)
@tags(TARGETED)
def test_targeted_success(part3, ref1, ref3, threshold, figures):
    """On the grader's VAE, pairs of test images of different classes: the attack succeeds when
    the reconstruction of x_adv is nearer the target's reconstruction than the source's
    (Sootla's criterion). The success rate must reach a calibrated bound (grading.toml); random
    noise and the untargeted attack stay far below it."""
    s = threshold("part3.targeted")
    eps, alpha, steps = float(s["epsilon"]), float(s["alpha"]), int(s["num_iter"])
    x, labels = H.images(ref1("data"), int(s["images"]))
    target = x[H.pairs(labels, int(s["seed"]))]
    call = (f"targeted_latent_attack(encoder, x, x_target, epsilon={eps:g}, alpha={alpha:g}, num_iter={steps}) "
            f"on {len(x)} pairs of FashionMNIST test images of different classes")
    r = H.probe(part3, "attack_probe", "targeted_latent_attack", H.asset(), x, target, eps, alpha, steps, call=call)
    adv = H.returned_images(r["out"], x, call).clamp(0, 1)
    vae = H.grader_vae(ref3("models"))
    rate = H.success_rate(vae, adv, x, target)
    figures.images("Your targeted latent attack on the grader's VAE", [
        ("source", x[:8]), ("target", target[:8]), ("attacked", adv[:8]),
        ("attacked reconstruction", vae.reconstruct(adv[:8]))],
        caption=f"epsilon {eps:g}: success rate {rate:.3f} (reconstruction nearer the target's than the source's)")
    if rate < float(s["min_success"]):
        before = float(H.skl(*H.posterior(vae, x), *H.posterior(vae, target)).median())
        after = float(H.skl(*H.posterior(vae, adv), *H.posterior(vae, target)).median())
        fail(f"{call}: success rate {rate:.3f}; expected at least {float(s['min_success']):g}. The median SKL to the "
             f"target's posterior went from {before:.4g} (clean) to {after:.4g} (attacked)",
             "the attack moves away from the target (a step along the gradient; the targeted attack descends)"
             if after > before else None)
