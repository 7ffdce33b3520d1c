"""Checks of ``fgsm_attack`` (Q2.1): values, the epsilon-ball, untouched inputs, and the attack's effect.

``fgsm_attack(image, data_grad, epsilon)`` must return ``image + epsilon * sign(data_grad)``;
keeping the result in the valid range is allowed, every way the edition accepts
(``[conventions.part2] valid_range``: this handout clamps to [0, 1]; the UvA template's
normalised images may be clamped through denormalize, clamped to [0, 1], or not at all).
Inputs are real FashionMNIST test images (in the edition's input space) with the grader's
model's input gradients, plus generated images (a share of pixels exactly at the range's
ends, where clamping matters) and generated gradients (a share exactly 0, where the sign is 0
and the pixel must not move).
"""
from __future__ import annotations

import torch
from hypothesis import given

from autograder.checks.part2 import helpers as H
from autograder.checks.part2 import mistakes
from autograder.checks.part2.strategies import fgsm_inputs, gradients, graded, images
from autograder.registry import check, fail, tags

FGSM = "part2.adversarial_attack.fgsm_attack"
DRV = H.DRIVERS
# float32 rounding of image + epsilon * sign: |image| <= 1 and epsilon <= 0.5 give errors of a
# few ulps of 1 (1.2e-7 each); 1e-6 accepts every order of operations and rejects any real mistake.
ATOL = 1e-6


def _judge(got: object, x: torch.Tensor, g: torch.Tensor, eps: float, call: str) -> None:
    got = H.require_tensor(got, call, x.shape)
    forms = H.space().forms(x.double() + eps * g.double().sign())  # unclamped first, then each accepted clamp
    errors = [(got.double() - f).abs().max().item() if x.numel() else 0.0 for f in forms]
    if min(errors) <= ATOL:
        return
    best = forms[errors.index(min(errors))]
    i = int((got.double() - best).abs().reshape(-1).argmax())
    xi, gi, oi = x.reshape(-1)[i].item(), g.reshape(-1)[i].item(), got.reshape(-1)[i].item()
    others = ", ".join(f"{f.reshape(-1)[i].item():.6g}" for f in forms[1:])
    fail(f"{call}: element {i} has image {xi:.6g}, data_grad {gi:.6g} and came back as {oi:.6g}; expected "
         f"image + epsilon * sign(data_grad) = {forms[0].reshape(-1)[i].item():.6g}"
         + (f" (or kept in the valid range: {others})" if others else "")
         + f"; largest difference {min(errors):.3g}",
         mistakes.diagnose_fgsm(got, x, g, eps, ATOL))


@check("part2.adversarial_attack.fgsm_attack.values")
@tags(FGSM)
def test_fgsm_values(part2, ref2):
    """Equals ``image + epsilon * sign(data_grad)``, or it kept in the valid range in a way the
    edition accepts, within 1e-6.

    Cases: 16 real test images with the grader's model's input gradients at epsilon 0.1 and
    0.03; generated [4, 3, 5, 7] images with 20% saturated pixels and 20% zero gradients at
    epsilon 0.3; and the default epsilon (0.25, argument omitted). Tolerance: float32
    rounding of the sum (a few ulps of the values, at most ~2.1 in normalised units).
    """
    x, y = H.test_images(ref2("data"), 0, 16)
    model = H.grader_model(ref2("models"))
    g = H.input_gradient(model, x, y)
    for eps in (0.1, 0.03):
        got = part2.call("adversarial_attack.fgsm_attack", x, g, eps)
        _judge(got, x, g, eps, f"fgsm_attack(image, data_grad, epsilon={eps}) on 16 {H.images_text()} "
                               "with the gradient of the grader's model")
    xs, gs = images((4, 3, 5, 7), 11), gradients((4, 3, 5, 7), 12)
    got = part2.call("adversarial_attack.fgsm_attack", xs, gs, 0.3)
    _judge(got, xs, gs, 0.3, "fgsm_attack(image, data_grad, epsilon=0.3) for a generated [4, 3, 5, 7] image "
                             "(20% of pixels exactly 0 or 1, 20% zero gradients)")
    got = part2.call("adversarial_attack.fgsm_attack", xs, gs)
    _judge(got, xs, gs, 0.25, "fgsm_attack(image, data_grad) with epsilon omitted (the default is 0.25) for a "
                              "generated [4, 3, 5, 7] image")


@check("part2.adversarial_attack.fgsm_attack.ball")
@tags(FGSM)
@graded
@given(example=fgsm_inputs())
def test_fgsm_ball(part2, example):
    """Property: the result has the image's shape, lies in the epsilon-ball around it
    (max |out - image| <= epsilon; or, where the edition accepts clamping to [0, 1] in
    normalised units, the clamp of a point of the ball), and pixels whose gradient is exactly 0
    do not move (beyond what that clamp does).

    Generated shapes (2-D and 4-D, up to 6 x 3 x 28 x 28; [B, 3, H, W] for normalised inputs)
    and epsilons in [0, 0.5]. Tolerance 1e-6: float32 rounding of image + epsilon * sign (and
    of the clamp).
    """
    x, g, eps = example.values
    call = f"fgsm_attack(image, data_grad, {eps}) for {example.text}"
    got = H.require_tensor(part2.call("adversarial_attack.fgsm_attack", x, g, eps), call, x.shape)
    dist = (got.double() - x.double()).abs()
    excess = H.ball_excess(got, x, eps)
    if x.numel() and excess.max().item() > ATOL:
        i = int(excess.reshape(-1).argmax())
        fail(f"{call}: element {i} moved by {dist.reshape(-1)[i].item():.6g} (image {x.reshape(-1)[i].item():.6g} -> "
             f"{got.reshape(-1)[i].item():.6g}); expected every pixel within epsilon = {eps} of the image",
             mistakes.diagnose_fgsm(got, x, g, eps, ATOL))
    still = g == 0
    moved = torch.stack([(got.double() - f).abs() for f in H.space().forms(x.double())]).min(0).values
    if bool(still.any()) and moved[still].max().item() > ATOL:
        i = int(torch.where(still.reshape(-1), moved.reshape(-1), torch.zeros_like(moved.reshape(-1))).argmax())
        fail(f"{call}: element {i} has data_grad exactly 0 but moved from {x.reshape(-1)[i].item():.6g} to "
             f"{got.reshape(-1)[i].item():.6g}; expected it unchanged (sign(0) = 0)",
             mistakes.diagnose_fgsm(got, x, g, eps, ATOL))


@check("part2.adversarial_attack.fgsm_attack.inputs_untouched")
@tags(FGSM)
def test_fgsm_inputs_untouched(part2, ref2):
    """``image`` and ``data_grad`` are left unchanged (no in-place update such as ``image += ...``).

    The probe keeps copies of both inputs in the worker and compares them after the call.
    """
    x, y = H.test_images(ref2("data"), 16, 8)
    g = H.input_gradient(H.grader_model(ref2("models")), x, y)
    r = part2.driver(f"{DRV}.fgsm_attack_probe", x, g, 0.1)
    call = "fgsm_attack(image, data_grad, 0.1) on 8 FashionMNIST test images"
    # Judged here from the tensors sent back, not from the worker's booleans: student code can
    # patch torch.equal inside the worker (tests/test_attacks.py::monkeypatch_comparisons).
    after_x, after_g = r.get("image_after"), r.get("grad_after")
    image_changed = r["image_changed"] or not (isinstance(after_x, torch.Tensor) and torch.equal(after_x, x))
    grad_changed = r["grad_changed"] or not (isinstance(after_g, torch.Tensor) and torch.equal(after_g, g))
    if image_changed:
        fail(f"{call} modified `image` in place (its values changed during the call); expected a new tensor "
             "and the caller's image untouched (e.g. write `perturbed = image + ...`, not `image += ...` or "
             "`image.add_(...)`)")
    if grad_changed:
        fail(f"{call} modified `data_grad` in place (e.g. data_grad.sign_()); expected it untouched")
    # Untouched inputs earn nothing on their own: a function returning anything (even a
    # constant) would (tests/test_attacks.py found it); the result must be right as well.
    _judge(r["out"], x, g, 0.1, call)


@check("part2.adversarial_attack.fgsm_attack.smoke.accuracy_drop")
@tags(FGSM)
def test_fgsm_accuracy_drop(part2, ref2, threshold, figures):
    """On the grader's standard-trained model, FGSM at epsilon 0.1 (pixel units; divided by the
    mean std for normalised inputs) lowers the accuracy on 1,000 FashionMNIST test images by at
    least ``part2.attacks.fgsm_min_drop`` (calibrated: see grading.toml), with every adversarial
    image inside the epsilon-ball (tolerance 1e-6).

    The input gradient is computed by the grader's harness; only ``fgsm_attack`` is the student's.
    """
    eps = H.space().epsilon(float(threshold("part2.attacks.smoke_epsilon")))
    min_drop = float(threshold("part2.attacks.fgsm_min_drop"))
    start, n = threshold("part2.attacks.smoke_images")
    x, y = H.test_images(ref2("data"), start, n)
    model = H.grader_model(ref2("models"))
    handle = part2.driver(f"{DRV}.make_model", H.grader_state())
    call = f"fgsm_attack(images, dCE/dx, {eps}) on {n} {H.images_text()} with the grader's trained model"
    adv = H.require_tensor(part2.driver(f"{DRV}.fgsm_on_model", handle, x, y, eps), call, x.shape)
    if H.ball_excess(adv, x, eps).max().item() > ATOL:
        fail(f"{call}: a pixel moved by {H.linf(adv, x):.4g}, more than epsilon = {eps}")
    clean, attacked = H.accuracy(model, x, y), H.accuracy(model, adv, y)
    H.attack_figure(figures, f"Your FGSM on the grader's model (accuracy {clean:.3f} -> {attacked:.3f})", model, x, adv,
                    y, eps)
    if clean - attacked < min_drop:
        reference = H.fgsm(x, H.input_gradient(model, x, y), eps)
        fail(f"{call}: the accuracy went from {clean:.3f} (clean) to {attacked:.3f} under your attack, a drop of "
             f"{clean - attacked:.3f}; expected a drop of at least {min_drop:.2f} (FGSM brings it to "
             f"{H.accuracy(model, reference, y):.3f})")
