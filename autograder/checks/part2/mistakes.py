"""The catalogue of known part-2 mistakes, one table per student function (trusted side only).

A check first compares the student's output with the reference (and with every
correct form, e.g. clamped or not); only when that fails does it ask this module
whether the wrong output matches a known mistake, and then names it ("Likely
mistake: ..."). Names are phrased for the student: what was computed, and what was
expected.

- ``FGSM_ATTACK``: wrong ``fgsm_attack(image, data_grad, epsilon)`` outputs.
- :func:`pgd_variant` computes PGD with one thing changed; ``PGD_ATTACK`` names the
  changes that are mistakes.
- ``FGSM_LOSS``: wrong combinations of the clean loss ``c`` and adversarial loss ``a``
  (values), with the gradient each one gives (``FGSM_LOSS_GRADIENT``).
- ``TEST_ATTACK``: wrong accuracy formulas, from the per-example outcomes.
- ``TRAIN_PGD``: wrong training batches for the PGD defence.

This module may hold correct code (it never reaches the worker); drivers may not.
"""
from __future__ import annotations

from typing import Any, Callable

import torch
import torch.nn as nn
from torch import Tensor

from autograder.checks.part2 import drivers_part2

# ----------------------------------------------------------------------------- fgsm_attack
FGSM_ATTACK: dict[str, Callable[[Tensor, Tensor, float], Tensor]] = {
    "the gradient itself was used instead of its sign (image + epsilon * data_grad); "
    "FGSM steps by exactly epsilon along sign(data_grad)":
        lambda x, g, e: x + e * g,
    "the sign is reversed (image - epsilon * sign(data_grad)): that step lowers the loss instead of raising it":
        lambda x, g, e: x - e * g.sign(),
    "epsilon doubled (a step of 2 * epsilon)":
        lambda x, g, e: x + 2 * e * g.sign(),
    "epsilon halved (a step of epsilon / 2)":
        lambda x, g, e: x + 0.5 * e * g.sign(),
    "epsilon ignored (a step of 1 along sign(data_grad))":
        lambda x, g, e: x + g.sign(),
    "only the perturbation epsilon * sign(data_grad) was returned, not the perturbed image":
        lambda x, g, e: e * g.sign(),
}


def diagnose_fgsm(got: Tensor, x: Tensor, g: Tensor, eps: float, atol: float) -> str | None:
    """The FGSM mistake whose output (kept valid in any accepted way, or not) matches ``got``."""
    space = drivers_part2.space()
    for name, wrong in FGSM_ATTACK.items():
        w = wrong(x.double(), g.double(), eps)
        for form in space.forms(w):
            if form.shape == got.shape and bool(((got.double() - form).abs() <= atol).all()):
                return name
    return None


# ----------------------------------------------------------------------------- pgd_attack
def pgd_variant(model: nn.Module, x: Tensor, y: Tensor, eps: float, alpha: float, num_iter: int, *,
                step: str = "sign", project: str = "original", clamp: bool | str = True, radius: float | None = None,
                step_size: float | None = None) -> Tensor:
    """L-infinity PGD from ``x`` (no random start) with one ingredient changeable.

    clamp: how each iterate is kept valid, one of the input space's forms ("valid", "unit",
    "none"; True = "valid", False = "none").

    step: "sign" (correct), "grad" (raw gradient), "neg" (minus the sign), "accumulated"
    (sign of the gradients summed over the iterations, as when ``x.grad`` is never zeroed).
    project: "original" (correct: onto the ball around ``x``), "current" (around the
    iterate before the step), "none". ``radius`` / ``step_size`` override epsilon / alpha.
    """
    form = ("valid" if clamp else "none") if isinstance(clamp, bool) else clamp
    space = drivers_part2.space()
    radius = eps if radius is None else radius
    step_size = alpha if step_size is None else step_size
    original = x.detach()
    cur = original.clone()
    total = torch.zeros_like(original)
    for _ in range(num_iter):
        leaf = cur.detach().requires_grad_(True)
        (g,) = torch.autograd.grad(nn.functional.cross_entropy(model(leaf), y), leaf)
        with torch.no_grad():
            total = total + g
            direction = {"sign": g.sign(), "grad": g, "neg": -g.sign(), "accumulated": total.sign()}[step]
            nxt = cur + step_size * direction
            if project == "original":
                nxt = original + (nxt - original).clamp(-radius, radius)
            elif project == "current":
                nxt = cur + (nxt - cur).clamp(-radius, radius)
            cur = space.clamp(nxt, form)
    return cur.detach()


# name -> (pgd_variant keyword arguments as a function of (eps, alpha, num_iter))
PGD_ATTACK: dict[str, Callable[[float, float, int], dict[str, Any]]] = {
    "no projection onto the epsilon-ball: after each step, clip x - data to [-epsilon, epsilon]":
        lambda e, a, n: {"project": "none"},
    "projection around the current iterate instead of the ORIGINAL image: the ball is centred on `data`, "
    "so the perturbation accumulated over the steps must stay within epsilon":
        lambda e, a, n: {"project": "current"},
    "step size and radius swapped (steps of epsilon, projection onto a ball of radius alpha)":
        lambda e, a, n: {"step_size": e, "radius": a},
    "the projection radius is alpha instead of epsilon":
        lambda e, a, n: {"radius": a},
    "only one step (num_iter ignored)":
        lambda e, a, n: {"num_iter": 1},
    "the gradient itself was used instead of its sign (x + alpha * grad)":
        lambda e, a, n: {"step": "grad"},
    "the sign is reversed (x - alpha * sign(grad)): the steps lower the loss":
        lambda e, a, n: {"step": "neg"},
    "the input gradient accumulates over the iterations (x.grad never zeroed, or the same leaf reused)":
        lambda e, a, n: {"step": "accumulated"},
}


def pgd_mistake_output(model: nn.Module, x: Tensor, y: Tensor, eps: float, alpha: float, num_iter: int,
                       name: str, clamp: bool | str) -> Tensor:
    kwargs = PGD_ATTACK[name](eps, alpha, num_iter)
    n = kwargs.pop("num_iter", num_iter)
    return pgd_variant(model, x, y, eps, alpha, n, clamp=clamp, **kwargs)


# ----------------------------------------------------------------------------- fgsm_loss
# (clean loss c, adversarial loss a, alpha) -> the wrong objective's value
FGSM_LOSS: dict[str, Callable[[float, float, float], float]] = {
    "the loss weights are swapped: (1 - alpha) * J(x) + alpha * J(x_fgsm) (alpha weighs the CLEAN loss)":
        lambda c, a, al: (1 - al) * c + al * a,
    "only the adversarial loss J(x_fgsm) (the clean term alpha * J(x) is missing)":
        lambda c, a, al: a,
    "only the clean loss J(x) (the adversarial term is missing)":
        lambda c, a, al: c,
    "the two losses are added without the weights (J(x) + J(x_fgsm))":
        lambda c, a, al: c + a,
    "the two losses are averaged, ignoring alpha ((J(x) + J(x_fgsm)) / 2)":
        lambda c, a, al: 0.5 * (c + a),
}

# (gradient of the clean loss gc, of the adversarial loss ga, alpha) -> the wrong objective's gradient
FGSM_LOSS_GRADIENT: dict[str, Callable[[Tensor, Tensor, float], Tensor]] = {
    **{name: (lambda f: (lambda gc, ga, al: f(gc, ga, al)))(f) for name, f in FGSM_LOSS.items()},
    "the clean term is cut from the graph (e.g. .item(), .detach() or torch.no_grad()): its value counts "
    "but no gradient flows from it":
        lambda gc, ga, al: (1 - al) * ga,
    "the adversarial term is cut from the graph (its forward pass ran without gradients): only alpha * J(x) "
    "trains the model":
        lambda gc, ga, al: al * gc,
}


# ----------------------------------------------------------------------------- test_attack
# (initially correct [N] bool, correct after the attack [N] bool) -> the wrong accuracy
TEST_ATTACK: dict[str, Callable[[Tensor, Tensor], float]] = {
    "misclassified examples counted: examples the model gets wrong before the attack must not be attacked "
    "or counted as correct":
        lambda init, final: float(final.double().mean()),
    "divided by the number of attacked (initially correct) examples instead of all examples":
        lambda init, final: float((init & final).double().sum() / max(int(init.sum()), 1)),
    "the clean accuracy was returned: the predictions after the attack were not used":
        lambda init, final: float(init.double().mean()),
    "the attack success rate was returned (examples whose prediction the attack changed), not the accuracy":
        lambda init, final: float((init & ~final).double().mean()),
    "misclassified examples counted as correct":
        lambda init, final: float((~init | final).double().mean()),
}


def diagnose_test_attack(got: float, init: Tensor, final: Tensor, atol: float) -> str | None:
    for name, wrong in TEST_ATTACK.items():
        value = wrong(init, final)
        if abs(got - value) <= atol or abs(got - 100 * value) <= 100 * atol and name.startswith("misclassified"):
            return name
    return None


# ----------------------------------------------------------------------------- train (PGD branch)
# (clean x, adversarial x_adv, labels y) -> (batch, labels) of the wrong training step
TRAIN_PGD: dict[str, Callable[[Tensor, Tensor, Tensor], tuple[Tensor, Tensor]]] = {
    "trained on the adversarial examples only: the PGD examples must be ADDED to the clean batch "
    "(cat([x, x_pgd]) with labels cat([y, y]))":
        lambda x, xa, y: (xa, y),
    "trained on the clean batch only: the PGD examples are never used in the loss":
        lambda x, xa, y: (x, y),
    "labels not duplicated in the batch's order: cat([x, x_pgd]) needs cat([y, y]) "
    "(y.repeat_interleave(2) pairs the wrong labels with the images)":
        lambda x, xa, y: (torch.cat([x, xa]), y.repeat_interleave(2)),
}
LABELS_NOT_DUPLICATED = ("labels not duplicated: the batch grew to cat([x, x_pgd]) (2B images) but the loss got "
                         "the B original labels; use cat([y, y])")
