"""Checks of ``utils.train``'s defence branches (Q2.2 FGSM branch, Q2.3 PGD branch), one short epoch.

The probe runs the student's ``train`` for one epoch on 16 FashionMNIST training images in
two unshuffled batches of 8 and records, at each optimizer step, the parameters and the
gradients the optimizer is about to use. The grader recomputes the gradient of the loss
the branch should have built at those same parameters and compares.

``pgd_attack`` is replaced during the run by a stand-in (``drivers_part2.pattern_perturb``),
so the PGD branch is graded on its own: its "adversarial examples" are
``pattern_perturb(x, epsilon)``. The FGSM branch trains on the student's ``fgsm_loss`` (that
check is tagged with it too), with the ``fgsm_attack`` inside replaced by the stand-in
``rms_gradient_step`` as in the fgsm_loss checks. Adam makes the same step for any positive
multiple of the loss (a sum instead of a mean, or the two halves added), so the recorded
gradient must equal the expected one up to a positive factor.
"""
from __future__ import annotations

from typing import Any

import torch
import torch.nn as nn

from autograder.checks.part2 import helpers as H
from autograder.checks.part2 import mistakes
from autograder.checks.part2.drivers_part2 import pattern_perturb, rms_gradient_step
from autograder.registry import check, fail, tags

TRAIN = "part2.utils.train"
DRV = H.DRIVERS
BATCH, STEPS = 8, 2
FGSM_ARGS = {"alpha": 0.5, "epsilon": 0.1}
PGD_ARGS = {"alpha": 0.01, "epsilon": 0.1, "num_iter": 3}
# Relative L2 error after the best positive rescaling; float32 gradients of the same loss built
# in another order (one batch of 2B or two batches of B) differ by ~1e-6.
GRAD_RTOL = 1e-3


def _data(ref2: Any) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    images, labels = H.split_head(ref2("data"), "train", max(BATCH * STEPS, 1008))
    x, y = H.inputs(images[:BATCH * STEPS]), labels[:BATCH * STEPS].clone()
    xv, yv = H.inputs(images[1000:1008]), labels[1000:1008].clone()
    return x, y, xv, yv


def _probe(part2: Any, ref2: Any, strategy: str, args: dict[str, Any]) -> tuple[dict[str, Any], str]:
    x, y, xv, yv = _data(ref2)
    call = (f"train(model, trainloader, validloader, num_epochs=1, defense_strategy={strategy!r}, defense_args={args}) "
            f"on {len(y)} {H.images_text('training')} in {STEPS} unshuffled batches of {BATCH}")
    return part2.driver(f"{DRV}.train_probe", H.grader_state(), x, y, xv, yv, strategy, args, BATCH, STEPS), call


def _model_at(ref2: Any, params: dict[str, torch.Tensor]) -> nn.Module:
    state = H.grader_state()
    state.update({k: v for k, v in params.items() if k in state})
    model = H.grader_model(ref2("models"), state)
    return model


def _require_steps(r: dict[str, Any], call: str, named_error: str | None = None) -> None:
    if r["error"]:
        seen = f" (forward passes so far saw batch sizes {r['forwards'][:8]})" if r["forwards"] else ""
        fail(f"{call} raised {r['error']}{seen}", named_error)
    if len(r["steps"]) < STEPS:
        fail(f"{call} made {len(r['steps'])} optimizer step(s); expected one per training batch ({STEPS})")


def _compare(ref2: Any, r: dict[str, Any], call: str, batch_loss: Any, what: str,
             candidates: dict[str, Any] | None = None) -> None:
    """Each recorded step's gradient is a positive multiple of the gradient of ``batch_loss(model, k)``
    (or of one of them, when ``batch_loss`` is a list of accepted losses)."""
    for k, step in enumerate(r["steps"][:STEPS]):
        model = _model_at(ref2, step["params"])
        params = dict(model.named_parameters())
        names = list(params)
        if any(step["grads"].get(n) is None for n in names):
            fail(f"{call}: at optimizer step {k + 1} some parameters had no gradient "
                 f"({[n for n in names if step['grads'].get(n) is None]}); expected the gradient of {what}")
        got = H.flat(step["grads"], names, params)
        err = float("inf")
        for accepted in (batch_loss if isinstance(batch_loss, list) else [batch_loss]):
            want = H.flat(H.parameter_gradients(model, accepted(model, k)), names, params)
            ok, _, e = H.proportional(got, want, GRAD_RTOL)
            err = min(err, e)
            if ok:
                break
        if ok:
            continue
        named = None
        for name, wrong in (candidates or {}).items():
            w = H.flat(H.parameter_gradients(model, wrong(model, k)), names, params)
            if H.proportional(got, w, GRAD_RTOL)[0]:
                named = name
                break
        fail(f"{call}: the gradient used by optimizer step {k + 1} is not that of {what} (relative error {err:.3g} "
             f"after the best positive rescaling; forward passes saw batch sizes {r['forwards'][:8]})", named)


def _batch(ref2: Any, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    x, y, _, _ = _data(ref2)
    return x[k * BATCH:(k + 1) * BATCH], y[k * BATCH:(k + 1) * BATCH]


def _same(a: Any, b: torch.Tensor) -> bool:
    return isinstance(a, torch.Tensor) and a.shape == b.shape and torch.equal(a.to(b.dtype), b)


def _same_args(got: Any, want: dict[str, Any]) -> bool:
    return isinstance(got, dict) and all(isinstance(got.get(k), (int, float)) and abs(float(got[k]) - v) <= 1e-12
                                         for k, v in want.items())


@check("part2.utils.train.standard_and_fgsm")
@tags(TRAIN)
def test_train_standard_and_fgsm(part2, ref2):
    """STANDARD steps on CE(model(x), y); FGSM calls fgsm_loss(model, criterion, x, y, defense_args)
    once per batch and steps on its objective alpha * CE(x) + (1 - alpha) * CE(x_fgsm) (x_fgsm
    from the stand-in attack, or the true FGSM example when fgsm_loss does not call fgsm_attack).
    Gradients compared up to a positive factor (Adam), relative tolerance 1e-3."""
    # FGSM first: a missing fgsm_loss then fails before the loop prints anything.
    r, call = _probe(part2, ref2, "fgsm", FGSM_ARGS)
    _require_steps(r, call)
    if len(r["fgsm_calls"]) < STEPS:
        fail(f"{call}: fgsm_loss was called {len(r['fgsm_calls'])} time(s); expected once per training batch "
             "(the FGSM defence trains on fgsm_loss(model, criterion, inputs, labels, defense_args))")
    for k, c in enumerate(r["fgsm_calls"][:STEPS]):
        x, y = _batch(ref2, k)
        if not (_same(c["inputs"], x) and _same(c["labels"], y) and _same_args(c["args"], FGSM_ARGS) and c["same_model"]):
            fail(f"{call}: call {k + 1} of fgsm_loss did not get (the model, the batch's images, its labels, "
                 f"defense_args = {FGSM_ARGS})")
    alpha, eps = FGSM_ARGS["alpha"], FGSM_ARGS["epsilon"]

    def objective(attack: Any) -> Any:
        def loss(model: nn.Module, k: int) -> torch.Tensor:
            x, y = _batch(ref2, k)
            x_adv = attack(x, H.input_gradient(model, x, y)).detach()
            return alpha * nn.functional.cross_entropy(model(x), y) + (1 - alpha) * nn.functional.cross_entropy(
                model(x_adv), y)
        return loss

    if r["attack_calls"]:  # fgsm_loss called fgsm_attack: the stand-in's example
        accepted = [objective(lambda x, g: rms_gradient_step(x, g, eps))]
    else:  # FGSM written inline: the true FGSM example, clamped or not
        kept = [form for form in H.space().valid_range if form != "none"]
        accepted = [objective(lambda x, g: x + eps * g.sign())] + [
            objective(lambda x, g, form=form: H.space().clamp(x + eps * g.sign(), form)) for form in kept]
    _compare(ref2, r, call, accepted, "fgsm_loss's objective alpha * CE(x) + (1 - alpha) * CE(x_fgsm)")

    r, call = _probe(part2, ref2, "standard", {})
    _require_steps(r, call)
    if r["pgd_calls"] or r["fgsm_calls"]:
        fail(f"{call}: standard training called {'pgd_attack' if r['pgd_calls'] else 'fgsm_loss'}; expected plain "
             "cross-entropy on the clean batch")

    def clean(model: nn.Module, k: int) -> torch.Tensor:
        x, y = _batch(ref2, k)
        return nn.functional.cross_entropy(model(x), y)

    _compare(ref2, r, call, clean, "the cross-entropy of the clean batch")


@check("part2.utils.train.pgd_batch")
@tags(TRAIN)
def test_train_pgd_batch(part2, ref2):
    """PGD defence: each step trains on the batch grown by its PGD copies, ``cat([x, x_pgd])``
    with labels ``cat([y, y])`` (cross-entropy over the 2B examples), where
    ``x_pgd = pgd_attack(model, x, y, criterion, defense_args)`` (a stand-in here). Gradients
    compared up to a positive factor (Adam), relative tolerance 1e-3."""
    r, call = _probe(part2, ref2, "pgd", PGD_ARGS)
    doubled = any(s == 2 * BATCH for s in r["forwards"])
    if r["error"] and not r["steps"]:
        low = r["error"].lower()
        named = mistakes.LABELS_NOT_DUPLICATED if doubled and ("batch_size" in low or "size" in low) else None
        _require_steps(r, call, named)
    _require_steps(r, call)
    if len(r["pgd_calls"]) < STEPS:
        fail(f"{call}: pgd_attack was called {len(r['pgd_calls'])} time(s); expected once per training batch, "
             "pgd_attack(model, inputs, labels, criterion, defense_args), to build that batch's adversarial examples")
    for k, c in enumerate(r["pgd_calls"][:STEPS]):
        x, y = _batch(ref2, k)
        if not (_same(c["data"], x) and _same(c["target"], y)):
            fail(f"{call}: call {k + 1} of pgd_attack did not get the batch's images and labels "
                 f"(got data {H.describe(c['data'])}, target {H.describe(c['target'])})")
        if not _same_args(c["args"], PGD_ARGS):
            fail(f"{call}: pgd_attack was called with args {c['args']!r}; expected defense_args = {PGD_ARGS}")
        if not c["same_model"]:
            fail(f"{call}: pgd_attack was called with another model than the one being trained")

    def grown(model: nn.Module, k: int) -> torch.Tensor:
        x, y = _batch(ref2, k)
        return nn.functional.cross_entropy(model(torch.cat([x, pattern_perturb(x, PGD_ARGS["epsilon"])])),
                                           torch.cat([y, y]))

    candidates = {}
    for name, wrong in mistakes.TRAIN_PGD.items():
        def loss(model: nn.Module, k: int, wrong: Any = wrong) -> torch.Tensor:
            x, y = _batch(ref2, k)
            inputs, targets = wrong(x, pattern_perturb(x, PGD_ARGS["epsilon"]), y)
            return nn.functional.cross_entropy(model(inputs), targets)
        candidates[name] = loss
    _compare(ref2, r, call, grown, "the cross-entropy over cat([x, x_pgd]) with labels cat([y, y])", candidates)
