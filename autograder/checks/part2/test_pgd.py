"""Checks of ``pgd_attack`` (Q2.3): the epsilon-ball, the values, autograd state, and strength.

``pgd_attack(model, data, target, criterion, {ALPHA: a, EPSILON: e, NUM_ITER: n})`` takes
``n`` steps of size ``a`` along ``sign(grad)``, each followed by the projection onto the
L-infinity ball of radius ``e`` around the ORIGINAL ``data``. Allowed, and accepted:
keeping each iterate in the valid range in any way the edition accepts (``[conventions.part2]
valid_range``), or not, and a random start inside the ball. Without a random start the result
must equal PGD's (in one of those forms); with one it must stay in the ball and raise the loss
nearly as much as PGD does. The settings compared are the edition's (``pgd_settings``).
"""
from __future__ import annotations

from typing import Any

import torch
import torch.nn as nn
from hypothesis import given

from autograder.checks.part2 import helpers as H
from autograder.checks.part2 import mistakes
from autograder.checks.part2.drivers_part2 import make_linear
from autograder.checks.part2.strategies import graded, images, labels, pgd_settings
from autograder.registry import check, fail, tags

PGD = "part2.adversarial_attack.pgd_attack"
DRV = H.DRIVERS
BALL_ATOL = 1e-6  # float32 rounding of data + clip(x - data): a few ulps of 1
MATCH_ATOL = 1e-5  # a pixel "matches" another implementation's within 1e-5 (float32 rounding)
# (epsilon, alpha, num_iter) compared by the values check when the edition names none
# (grading.toml's [conventions.part2] pgd_settings says why these).
SETTINGS = ((0.1, 0.025, 10), (0.2, 0.05, 5), (0.03, 0.05, 3), (0.05, 0.02, 4))


def settings_of(cfg: Any) -> list[tuple[float, float, int]]:
    return [(float(e), float(a), int(n)) for e, a, n in cfg.convention("part2.pgd_settings", SETTINGS)]


def _args_text(eps: float, alpha: float, num_iter: int) -> str:
    return f"{{ALPHA: {alpha:g}, EPSILON: {eps:g}, NUM_ITER: {num_iter}}}"


def _result(report: dict[str, Any], call: str, shape: torch.Size) -> torch.Tensor:
    return H.require_tensor(report["out"], call, shape)


@check("part2.adversarial_attack.pgd_attack.ball")
@tags(PGD)
@graded
@given(example=pgd_settings())
def test_pgd_ball(part2, example):
    """Property: the result has the data's shape and every pixel lies within epsilon of the
    ORIGINAL data (max |out - data| <= epsilon + 1e-6), whatever epsilon, alpha (0.25 to 2
    epsilon), num_iter (1 to 6) and image shape; on a seeded linear classifier.

    Tolerance 1e-6: float32 rounding of data + clip(x - data, -epsilon, epsilon).
    """
    shape, eps, alpha, num_iter, seed = example.values
    x, y = images(shape, seed), labels(shape[0], seed + 1)
    call = f"pgd_attack(model, data, target, nn.CrossEntropyLoss(), {_args_text(eps, alpha, num_iter)}) for {example.text}"
    r = part2.driver(f"{DRV}.pgd_linear_probe", x, y, seed, eps, alpha, num_iter)
    out = _result(r, call, x.shape)
    dist = (out.double() - x.double()).abs()
    excess = H.ball_excess(out, x, eps)
    if excess.max().item() > BALL_ATOL:
        i = int(excess.reshape(-1).argmax())
        # Name a mistake only when this one example singles it out (with one step, say, no
        # projection and projecting around the current iterate are the same); the value check
        # tells them apart on several settings.
        model = make_linear(shape[1], shape[2], shape[3], seed)
        matching = {name for name in mistakes.PGD_ATTACK for clamp in H.space().valid_range
                    if H.fraction_close(out, mistakes.pgd_mistake_output(model, x, y, eps, alpha, num_iter, name, clamp),
                                        MATCH_ATOL) > 0.999}
        named = matching.pop() if len(matching) == 1 else None
        fail(f"{call}: pixel {i} moved by {dist.reshape(-1)[i].item():.4g} from the original data "
             f"({x.reshape(-1)[i].item():.4g} -> {out.reshape(-1)[i].item():.4g}); expected every pixel within "
             f"epsilon = {eps:g} of the ORIGINAL data (project after each step)", named)


def _diagnose(model: nn.Module, failures: list[tuple[tuple[float, float, int], torch.Tensor]], x: torch.Tensor,
              y: torch.Tensor) -> str | None:
    """The mistake whose output matches the student's on every failing setting.

    Settings are tried cheapest first (fewest iterations), so most candidates are ruled out
    after one short run; a match is exact up to float noise (99.9% of pixels within 1e-5).
    """
    ordered = sorted(failures, key=lambda f: f[0][2])
    for name in mistakes.PGD_ATTACK:
        for clamp in H.space().valid_range:
            if all(H.fraction_close(out, mistakes.pgd_mistake_output(model, x, y, e, a, n, name, clamp), MATCH_ATOL)
                   > 0.999 for (e, a, n), out in ordered):
                return name
    return None


@check("part2.adversarial_attack.pgd_attack.values")
@tags(PGD)
def test_pgd_values(part2, ref2, threshold, cfg):
    """On 64 test images and the grader's trained model, for the edition's (epsilon, alpha,
    num_iter) settings: the result equals PGD (no random start; kept in the valid range in an
    accepted way, or not) on at least ``part2.pgd.min_match_fraction`` of the pixels (within 1e-5: float32 rounding
    can flip the sign of a near-zero gradient for a few pixels). A result that differs is
    failed if it matches a known mistake; otherwise (e.g. a random start) it must stay in the
    epsilon-ball and raise the mean cross-entropy at least ``part2.pgd.min_loss_gain_fraction``
    of the way from the clean loss to the reference's (calibrated in grading.toml).
    """
    min_fraction = float(threshold("part2.pgd.min_match_fraction"))
    min_gain = float(threshold("part2.pgd.min_loss_gain_fraction"))
    x, y = H.test_images(ref2("data"), 200, 64)
    model = H.grader_model(ref2("models"))
    handle = part2.driver(f"{DRV}.make_model", H.grader_state())
    differing = []  # (setting, output, call, agreement, reference)
    for eps, alpha, n in settings_of(cfg):
        call = (f"pgd_attack(model, data, target, nn.CrossEntropyLoss(), {_args_text(eps, alpha, n)}) on 64 "
                f"{H.images_text()} with the grader's trained model")
        out = _result(part2.driver(f"{DRV}.pgd_probe", handle, x, y, eps, alpha, n), call, x.shape)
        by_form = {form: mistakes.pgd_variant(model, x, y, eps, alpha, n, clamp=form) for form in H.space().valid_range}
        forms = list(by_form.values())
        reference = by_form.get("valid", forms[0])
        agreement = max(H.fraction_close(out, f, MATCH_ATOL) for f in forms)
        if agreement < min_fraction:
            differing.append(((eps, alpha, n), out, call, agreement, reference))
    if not differing:
        return
    named = _diagnose(model, [(s_, out) for s_, out, *_ in differing], x, y)
    (eps, alpha, n), out, call, agreement, reference = differing[0]
    more = f" ({len(differing) - 1} more setting(s) differ too)" if len(differing) > 1 else ""
    if named:
        fail(f"{call}: the result differs from PGD ({100 * agreement:.1f}% of pixels agree with it){more}", named)
    for (eps, alpha, n), out, call, agreement, reference in differing:
        dist = H.linf(out, x)
        if H.ball_excess(out, x, eps).max().item() > BALL_ATOL:
            fail(f"{call}: a pixel moved by {dist:.4g} from the original data; expected every pixel within "
                 f"epsilon = {eps:g} of it{more}")
        clean, got, want = H.mean_loss(model, x, y), H.mean_loss(model, out, y), H.mean_loss(model, reference, y)
        if (got - clean) < min_gain * (want - clean):
            fail(f"{call}: the result differs from PGD without random start ({100 * agreement:.1f}% of pixels agree) "
                 f"and is a weaker attack: it raises the mean cross-entropy from {clean:.4g} to {got:.4g}, where PGD "
                 f"reaches {want:.4g} (a random start is fine, but must reach at least {min_gain:.0%} of that increase)"
                 f"{more}")


@check("part2.adversarial_attack.pgd_attack.detached")
@tags(PGD)
def test_pgd_detached(part2, ref2):
    """The result carries no autograd history (``grad_fn`` None: the training loop concatenates
    it with the batch), has the data's shape and dtype, and ``data`` itself is not modified (the
    probe keeps a copy and compares after the call).

    A fresh leaf that still ``requires_grad`` (``x.detach().requires_grad_()`` returned from the
    last step, common in the UvA template's style) is accepted: it has no history to leak, and
    training on ``cat([x, x_adv])`` computes the same parameter gradients.
    """
    x, y = H.test_images(ref2("data"), 300, 8)
    handle = part2.driver(f"{DRV}.make_model", H.grader_state())
    call = "pgd_attack(model, data, target, nn.CrossEntropyLoss(), {ALPHA: 0.025, EPSILON: 0.1, NUM_ITER: 3}) on 8 test images"
    r = part2.driver(f"{DRV}.pgd_probe", handle, x, y, 0.1, 0.025, 3)
    _result(r, call, x.shape)
    if r["grad_fn"] is not None:
        fail(f"{call}: the result has grad_fn {r['grad_fn']}; expected a detached result without autograd history "
             "(return perturbed.detach()), so that the attack's graph does not leak into training")
    if r["dtype"] != "torch.float32":
        fail(f"{call}: the result has dtype {r['dtype']}; expected float32 like the data")
    if r["data_changed"]:
        fail(f"{call} modified `data` in place; expected the caller's images untouched (start from data.clone())")


@check("part2.adversarial_attack.pgd_attack.stronger_than_fgsm")
@tags(PGD)
def test_pgd_stronger_than_fgsm(part2, ref2, threshold):
    """Property: on the grader's trained model, the accuracy under the student's PGD is at most
    the accuracy under FGSM at the same epsilon (plus ``part2.pgd.fgsm_slack``), with every
    result inside the epsilon-ball. Settings and calibration in grading.toml.
    """
    eps, alpha, n = threshold("part2.pgd.strength_attack")
    eps, alpha = H.space().epsilon(eps), H.space().epsilon(alpha)
    start, count = threshold("part2.pgd.strength_images")
    slack = float(threshold("part2.pgd.fgsm_slack"))
    x, y = H.test_images(ref2("data"), start, count)
    model = H.grader_model(ref2("models"))
    handle = part2.driver(f"{DRV}.make_model", H.grader_state())
    call = (f"pgd_attack with {_args_text(eps, alpha, n)} on {count} {H.images_text()} with the grader's "
            "trained model")
    adv = H.require_tensor(part2.driver(f"{DRV}.pgd_on_model", handle, x, y, eps, alpha, n), call, x.shape)
    if H.ball_excess(adv, x, eps).max().item() > BALL_ATOL:
        fail(f"{call}: a pixel moved by {H.linf(adv, x):.4g}, more than epsilon = {eps:g}")
    fgsm = H.fgsm(x, H.input_gradient(model, x, y), eps)
    acc_pgd, acc_fgsm = H.accuracy(model, adv, y), H.accuracy(model, fgsm, y)
    if acc_pgd > acc_fgsm + slack:
        fail(f"{call}: accuracy under your PGD is {acc_pgd:.3f}, but under FGSM with the same epsilon it is "
             f"{acc_fgsm:.3f}; expected PGD (several projected steps) to be at least as strong as FGSM (one step)")


@check("part2.adversarial_attack.pgd_attack.smoke.accuracy_drop")
@tags(PGD)
def test_pgd_accuracy_drop(part2, ref2, threshold, figures):
    """On the grader's standard-trained model, PGD (epsilon 0.1, 10 steps of 0.025) lowers the
    accuracy on 500 FashionMNIST test images by at least ``part2.attacks.pgd_min_drop``
    (calibrated: see grading.toml), every result inside the epsilon-ball (tolerance 1e-6)."""
    eps, alpha, n = threshold("part2.attacks.smoke_pgd")
    eps, alpha = H.space().epsilon(eps), H.space().epsilon(alpha)
    min_drop = float(threshold("part2.attacks.pgd_min_drop"))
    start, count = threshold("part2.attacks.smoke_pgd_images")
    x, y = H.test_images(ref2("data"), start, count)
    model = H.grader_model(ref2("models"))
    handle = part2.driver(f"{DRV}.make_model", H.grader_state())
    call = f"pgd_attack with {_args_text(eps, alpha, n)} on {count} {H.images_text()} with the grader's trained model"
    adv = H.require_tensor(part2.driver(f"{DRV}.pgd_on_model", handle, x, y, eps, alpha, n), call, x.shape)
    if H.ball_excess(adv, x, eps).max().item() > BALL_ATOL:
        fail(f"{call}: a pixel moved by {H.linf(adv, x):.4g}, more than epsilon = {eps:g}")
    clean, attacked = H.accuracy(model, x, y), H.accuracy(model, adv, y)
    H.attack_figure(figures, f"Your PGD on the grader's model (accuracy {clean:.3f} -> {attacked:.3f})", model, x, adv,
                    y, eps)
    if clean - attacked < min_drop:
        reference = H.pgd(model, x, y, eps, alpha, n)
        fail(f"{call}: the accuracy went from {clean:.3f} (clean) to {attacked:.3f} under your attack, a drop of "
             f"{clean - attacked:.3f}; expected a drop of at least {min_drop:.2f} (PGD brings it to "
             f"{H.accuracy(model, reference, y):.3f})")
