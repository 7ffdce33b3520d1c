"""Checks of ``fgsm_loss`` (Q2.2): the objective's value, its parameter gradients, the return forms.

``fgsm_loss(model, criterion, x, y, {ALPHA: a, EPSILON: e})`` must return
``a * J(x) + (1 - a) * J(x_fgsm)`` (and the clean predictions), where ``J`` is the given
criterion and ``x_fgsm = fgsm_attack(x, dJ/dx, e)`` is held fixed: after the training
loop's ``zero_grad()``, ``loss.backward()`` must leave exactly the gradient of that
objective in the parameters.

To grade ``fgsm_loss`` on its own, the module's ``fgsm_attack`` is replaced during the
call by a stand-in (``drivers_part2.rms_gradient_step``: ``x + e * g / rms(g)``), so a
mistake in the student's ``fgsm_attack`` costs nothing here; the grader computes the
expected objective with the same stand-in. A ``fgsm_loss`` that computes its adversarial
example without calling ``fgsm_attack`` is compared with the true FGSM example (clamped
or not) instead. Model: the grader's trained SmallNet; data: 32 FashionMNIST test images
(in the edition's input space).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn as nn

from autograder.checks.part2 import helpers as H
from autograder.checks.part2 import mistakes
from autograder.checks.part2.drivers_part2 import rms_gradient_step
from autograder.registry import check, fail, tags

LOSS = "part2.adversarial_attack.fgsm_loss"
DRV = H.DRIVERS
CASES = ((0.5, 0.1), (0.3, 0.2), (0.8, 0.05))  # (alpha, epsilon): alpha != 1/2 separates the weights
# Loss values are batch means of ~1 computed in float32 by possibly different orders of
# operations: relative differences stay below 1e-5; 1e-4 (plus 1e-5 absolute) is generous.
VALUE_RTOL, VALUE_ATOL = 1e-4, 1e-5
GRAD_RTOL = 1e-3  # relative L2 error of the whole parameter gradient (float32 backward, ~1e-6 typical)


@dataclass
class Case:
    """One call of the student's fgsm_loss and everything the grader expects from it."""

    alpha: float
    eps: float
    call: str
    report: dict[str, Any]
    x: torch.Tensor
    y: torch.Tensor
    # candidate adversarial examples (name -> tensor): the stand-in's, or FGSM clamped / not
    adversarial: dict[str, torch.Tensor] = field(default_factory=dict)
    note: str = ""


def _batch(ref2: Any) -> tuple[torch.Tensor, torch.Tensor]:
    return H.test_images(ref2("data"), 100, 32)


def _run(part2: Any, ref2: Any, handle: Any, model: nn.Module, alpha: float, eps: float,
         return_preds: bool | None) -> Case:
    x, y = _batch(ref2)
    form = "" if return_preds is None else f", return_preds={return_preds}"
    call = (f"fgsm_loss(model, nn.CrossEntropyLoss(), inputs, labels, {{ALPHA: {alpha}, EPSILON: {eps}}}{form}) "
            f"on 32 {H.images_text()} with the grader's trained model")
    report = part2.driver(f"{DRV}.fgsm_loss_probe", handle, x, y, alpha, eps, return_preds)
    case = Case(alpha, eps, call, report, x, y)
    g = H.input_gradient(model, x, y)
    calls = report["calls"]
    if calls:
        c = calls[0]
        problems = []
        if len(calls) != 1:
            problems.append(f"fgsm_attack was called {len(calls)} times (expected once)")
        if not isinstance(c["image"], torch.Tensor) or c["image"].shape != x.shape or not torch.equal(c["image"], x):
            problems.append("fgsm_attack was not given the clean inputs as `image`")
        if abs(c["epsilon"] - eps) > 1e-12:
            problems.append(f"fgsm_attack was given epsilon = {c['epsilon']:g} instead of defense_args[EPSILON] = {eps:g}")
        dg = c["data_grad"]
        if isinstance(dg, torch.Tensor) and dg.shape == g.shape:
            ok, scale, _ = H.proportional(dg.double().reshape(-1), g.double().reshape(-1), 1e-3)
            if not ok:
                sign = " (its sign is reversed)" if scale < 0 else ""
                problems.append("the data_grad given to fgsm_attack is not the gradient of criterion(model(inputs), "
                                f"labels) with respect to inputs{sign}")
        else:
            problems.append(f"fgsm_attack was given data_grad = {H.describe(dg)}")
        case.note = "; ".join(problems)
        case.adversarial["the output of the grader's stand-in for fgsm_attack (x + epsilon * grad / rms(grad), used "
                         "in place of your fgsm_attack so that fgsm_loss is graded on its own)"] = rms_gradient_step(x, g, eps)
    else:
        plain, *kept = H.space().forms(x + eps * g.sign())
        for form, example in zip([f for f in H.space().valid_range if f != "none"], kept):
            case.adversarial[f"the FGSM example x + epsilon * sign(grad) kept valid ({form} clamp)"] = example
        case.adversarial["the FGSM example x + epsilon * sign(grad)"] = plain
    return case


def _losses(model: nn.Module, case: Case, x_adv: torch.Tensor) -> tuple[float, float]:
    with torch.no_grad():
        return (float(nn.functional.cross_entropy(model(case.x), case.y)),
                float(nn.functional.cross_entropy(model(x_adv), case.y)))


def _model(part2: Any, ref2: Any) -> tuple[Any, nn.Module]:
    return part2.driver(f"{DRV}.make_model", H.grader_state()), H.grader_model(ref2("models"))


def _loss_value(case: Case) -> float:
    r = case.report
    if r["kind"] not in ("tuple", "list") or r["length"] != 2:
        fail(f"{case.call} returned a {r['kind']}" + (f" of {r['length']} items" if r["length"] is not None else "")
             + "; expected the tuple (loss, preds) (return_preds defaults to True)")
    loss = r["loss"]
    if not isinstance(loss, torch.Tensor) or loss.numel() != 1:
        fail(f"{case.call} returned loss = {H.describe(loss)}; expected a scalar tensor")
    return float(loss.reshape(()).item())


@check("part2.adversarial_attack.fgsm_loss.value")
@tags(LOSS)
def test_fgsm_loss_value(part2, ref2):
    """The loss equals ``alpha * J(x) + (1 - alpha) * J(x_fgsm)`` for (alpha, epsilon) in
    (0.5, 0.1), (0.3, 0.2), (0.8, 0.05), within rtol 1e-4 / atol 1e-5 (float32 batch means).
    """
    handle, model = _model(part2, ref2)
    for alpha, eps in CASES:
        case = _run(part2, ref2, handle, model, alpha, eps, None)
        got = _loss_value(case)
        values = {}
        for name, x_adv in case.adversarial.items():
            c, a = _losses(model, case, x_adv)
            values[name] = (alpha * c + (1 - alpha) * a, c, a)
            if abs(got - values[name][0]) <= VALUE_ATOL + VALUE_RTOL * abs(values[name][0]):
                break
        else:
            name, (want, c, a) = next(iter(values.items()))
            named = None
            for mname, wrong in mistakes.FGSM_LOSS.items():
                w = wrong(c, a, alpha)
                if abs(got - w) <= VALUE_ATOL + VALUE_RTOL * abs(w):
                    named = mname
                    break
            extra = f" Also: {case.note}." if case.note else ""
            fail(f"{case.call} returned loss {got:.6g}; expected alpha * J(x) + (1 - alpha) * J(x_fgsm) = "
                 f"{alpha} * {c:.6g} + {1 - alpha:.2g} * {a:.6g} = {want:.6g}, with x_fgsm = {name}.{extra}", named)


@check("part2.adversarial_attack.fgsm_loss.gradients")
@tags(LOSS)
def test_fgsm_loss_gradients(part2, ref2):
    """After ``model.zero_grad()``, ``loss.backward()`` gives every parameter the gradient of
    ``alpha * J(x) + (1 - alpha) * J(x_fgsm)`` with x_fgsm held fixed (same three cases).

    Tolerance: relative L2 error 1e-3 over all parameters together (float32 backward passes
    in a different order differ by ~1e-6; every listed mistake is off by > 10%).
    """
    handle, model = _model(part2, ref2)
    params = dict(model.named_parameters())
    names = list(params)
    for alpha, eps in CASES:
        case = _run(part2, ref2, handle, model, alpha, eps, None)
        r = case.report
        if not r["loss_requires_grad"]:
            fail(f"{case.call}: the returned loss does not require grad, so loss.backward() cannot train the model "
                 "(was it computed under torch.no_grad(), detached, or turned into a number with .item()?)")
        if r["backward_error"]:
            fail(f"{case.call}: loss.backward() failed: {r['backward_error']}. If fgsm_loss calls backward() itself to "
                 "get the input gradient, pass retain_graph=True or use torch.autograd.grad(loss, x, retain_graph=True)")
        got = H.flat(r["grads"] or {}, names, params)
        if not r["grads"] or any(r["grads"].get(n) is None for n in names):
            missing = [n for n in names if not r["grads"] or r["grads"].get(n) is None]
            fail(f"{case.call}: after loss.backward() the parameters {missing} have no gradient; expected the gradient "
                 "of the objective for every parameter")
        best = None
        for name, x_adv in case.adversarial.items():
            clean = nn.functional.cross_entropy(model(case.x), case.y)
            adv = nn.functional.cross_entropy(model(x_adv.detach()), case.y)
            gc = H.flat(H.parameter_gradients(model, clean), names, params)
            ga = H.flat(H.parameter_gradients(model, adv), names, params)
            want = alpha * gc + (1 - alpha) * ga
            err = float((got - want).norm() / want.norm())
            if err <= GRAD_RTOL:
                break
            if best is None:
                best = (name, want, gc, ga, err)
        else:
            name, want, gc, ga, err = best
            named = None
            for mname, wrong in mistakes.FGSM_LOSS_GRADIENT.items():
                w = wrong(gc, ga, alpha)
                if float((got - w).norm()) <= GRAD_RTOL * float(w.norm()):
                    named = mname
                    break
            extra = f" Also: {case.note}." if case.note else ""
            fail(f"{case.call}: after zero_grad() and loss.backward(), the parameters' gradient differs from the gradient "
                 f"of alpha * J(x) + (1 - alpha) * J(x_fgsm) held fixed, x_fgsm = {name}: relative error {err:.3g} "
                 f"(norm {float(got.norm()):.4g}, expected {float(want.norm()):.4g}).{extra}", named)


@check("part2.adversarial_attack.fgsm_loss.forms")
@tags(LOSS)
def test_fgsm_loss_forms(part2, ref2):
    """``return_preds=True`` gives ``(loss, preds)`` with preds the argmax of the CLEAN forward
    pass (long [B]); ``return_preds=False`` gives the same loss alone; ``inputs`` is not modified.

    epsilon 0.2 moves enough predictions that the adversarial pass's would differ.
    Loss tolerance as in the value check (rtol 1e-4).
    """
    handle, model = _model(part2, ref2)
    alpha, eps = 0.3, 0.2
    with_preds = _run(part2, ref2, handle, model, alpha, eps, True)
    loss_true = _loss_value(with_preds)
    preds = with_preds.report["preds"]
    n = len(with_preds.y)
    if not isinstance(preds, torch.Tensor) or preds.numel() != n:
        fail(f"{with_preds.call} returned preds = {H.describe(preds)}; expected a long tensor of shape [{n}] "
             "(the predicted class of each clean input)")
    if preds.is_floating_point() or preds.dtype == torch.bool:
        fail(f"{with_preds.call} returned preds of dtype {preds.dtype}; expected class indices (long), "
             "e.g. outputs.argmax(1)")
    preds = preds.reshape(-1).long()
    clean = H.predictions(model, with_preds.x)
    if not torch.equal(preds, clean):
        named = None
        for x_adv in with_preds.adversarial.values():
            adv_preds = H.predictions(model, x_adv)
            if torch.equal(preds, adv_preds) and not torch.equal(adv_preds, clean):
                named = "preds of the adversarial pass: preds must come from the clean forward pass model(inputs)"
        k = int((preds != clean).nonzero()[0])
        fail(f"{with_preds.call}: preds[{k}] = {int(preds[k])} but the model predicts {int(clean[k])} for clean input "
             f"{k}; expected preds = argmax of model(inputs) ({int((preds != clean).sum())} of {n} differ)", named)
    without = _run(part2, ref2, handle, model, alpha, eps, False)
    r = without.report
    if r["kind"] in ("tuple", "list") or not isinstance(r["loss"], torch.Tensor) or r["loss"].numel() != 1:
        fail(f"{without.call} returned {r['kind']}" + (f" of {r['length']} items" if r["length"] else "")
             + "; expected the loss alone (a scalar tensor) when return_preds is False")
    got = H.as_float(r["loss"], without.call + " (the loss)")
    if abs(got - loss_true) > VALUE_ATOL + VALUE_RTOL * abs(loss_true):
        fail(f"{without.call} returned loss {got:.6g}, but {loss_true:.6g} with return_preds=True; expected the same loss")
    for case in (with_preds, without):
        if case.report["inputs_changed"]:
            fail(f"{case.call} modified `inputs` in place; expected the caller's batch untouched (work on a copy, "
                 "e.g. x = inputs.clone().detach().requires_grad_(True))")
