"""Checks of ``test_attack`` (Q2.1): robust accuracy on a fixed loader, and the examples it keeps.

``test_attack(model, loader, attack, args)`` attacks every correctly classified example
and returns ``(#correct before AND after the attack / #all examples, adv_examples)``.

To grade the evaluation loop on its own, the module's ``fgsm_attack`` and ``pgd_attack``
are replaced during the call by a fixed stand-in perturbation
(``drivers_part2.pattern_perturb(x, args[EPSILON])``), so the accuracy does not depend on
the student's attacks and the grader knows the exact answer. A ``test_attack`` that does
not call them (computes its attack inline) is compared with the true attacks instead.
The loader holds 40 FashionMNIST test images (in the edition's input space), 10 of them
misclassified by the grader's model, chosen away from prediction ties so that batch size
cannot change a prediction. Attack budgets are pixel units (divided by the mean std for
normalised inputs).
"""
from __future__ import annotations

from functools import lru_cache
from typing import Any

import torch
import torch.nn as nn

from autograder.checks.part2 import helpers as H
from autograder.checks.part2 import mistakes
from autograder.checks.part2.drivers_part2 import pattern_perturb
from autograder.registry import check, fail, tags

TEST_ATTACK = "part2.adversarial_attack.test_attack"
DRV = H.DRIVERS
FGSM_PIXELS = {"epsilon": 0.2}
PGD_PIXELS = {"alpha": 0.05, "epsilon": 0.25, "num_iter": 3}
ACC_ATOL = 1e-6  # the accuracy is a ratio of integers: anything else is a different count
MARGIN = 1e-2  # top-2 logit gap required of every chosen example, clean and perturbed


def _args(attack: str) -> dict[str, Any]:
    """The attack's arguments in the input space's units."""
    pixels = FGSM_PIXELS if attack == "fgsm" else PGD_PIXELS
    return {k: (v if k == "num_iter" else H.space().epsilon(v)) for k, v in pixels.items()}


@lru_cache(maxsize=2)
def _examples(data: Any, models: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """40 test images (from index 500 on): the first 30 the model gets right, the first 10 it gets wrong."""
    x, y = H.test_images(data, 500, 1000)
    model = H.grader_model(models)
    with torch.no_grad():
        views = [model(x)] + [model(pattern_perturb(x, _args(a)["epsilon"])) for a in ("fgsm", "pgd")]
    clear = torch.ones(len(y), dtype=torch.bool)
    for logits in views:
        top = logits.topk(2, dim=1).values
        clear &= (top[:, 0] - top[:, 1]) > MARGIN
    right = views[0].argmax(1) == y
    keep = torch.cat([torch.nonzero(clear & right).flatten()[:30], torch.nonzero(clear & ~right).flatten()[:10]])
    keep = keep.sort().values
    return x[keep].clone(), y[keep].clone()


def _signature(x: torch.Tensor) -> bytes:
    return x.detach().float().contiguous().numpy().tobytes()


def _run(part2: Any, ref2: Any, attack: str, batch_size: int, every: int = 1) -> dict[str, Any]:
    """Call the student's test_attack; return the expectations next to what came back."""
    x, y = _examples(ref2("data"), ref2("models"))
    x, y = x[::every], y[::every]  # every 2nd example still mixes right, wrong, flipped and fixed ones
    model = H.grader_model(ref2("models"))
    args = _args(attack)
    name = "FGSM" if attack == "fgsm" else "PGD"
    call = (f"test_attack(model, loader, {name}, {args}) on a loader of {len(y)} {H.images_text()} "
            f"(batch size {batch_size}; {int((H.predictions(model, x) != y).sum())} of them misclassified by the model)")
    handle = part2.driver(f"{DRV}.make_model", H.grader_state())
    r = part2.driver(f"{DRV}.test_attack_probe", handle, x, y, batch_size, attack, args)
    result = r["result"]
    if not isinstance(result, (list, tuple)) or len(result) != 2:
        fail(f"{call} returned {H.describe(result)}; expected the tuple (accuracy, adv_examples)")
    calls = r["calls"]
    init = H.predictions(model, x) == y
    if calls:
        adv = pattern_perturb(x, args["epsilon"])
        how = f"your {attack}_attack replaced by a fixed stand-in perturbation"
    elif attack == "fgsm":
        how = "FGSM"
        adv = torch.cat([H.fgsm(x[i:i + 1], H.input_gradient(model, x[i:i + 1], y[i:i + 1]), args["epsilon"])
                         for i in range(len(y))])
    else:
        adv = torch.cat([H.pgd(model, x[i:i + 1], y[i:i + 1], args["epsilon"], args["alpha"], args["num_iter"])
                         for i in range(len(y))])
        how = "PGD"
    final = H.predictions(model, adv) == y
    return {"call": call, "x": x, "y": y, "model": model, "args": args, "calls": calls, "init": init, "final": final,
            "adv": adv, "how": how, "accuracy": result[0], "examples": result[1], "attack": attack}


def _minus_true_logit_gradient(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """d(-logit_y)/dx: the gradient of F.nll_loss applied to raw logits (as some templates write it)."""
    leaf = x.detach().clone().unsqueeze(0).requires_grad_(True)
    (g,) = torch.autograd.grad(-model(leaf)[0, int(y)], leaf)
    return g.double().reshape(-1)


def _check_calls(run: dict[str, Any]) -> None:
    """The stand-in calls got the right arguments: epsilon / args, and for FGSM the input gradient."""
    x, y, model, call = run["x"], run["y"], run["model"], run["call"]
    index = {_signature(x[i]): i for i in range(len(y))}
    attacked: set[int] = set()
    for c in run["calls"]:
        image = c["image"]
        if not isinstance(image, torch.Tensor) or image.dim() != 4 or image.shape[1:] != x.shape[1:]:
            fail(f"{call}: the attack was called with images {H.describe(image)}; expected a batch "
                 f"[B, {', '.join(map(str, x.shape[1:]))}] taken from the loader")
        rows = [index.get(_signature(image[k])) for k in range(image.shape[0])]
        if run["attack"] == "fgsm":
            if not isinstance(c["epsilon"], (int, float)) or abs(float(c["epsilon"]) - run["args"]["epsilon"]) > 1e-12:
                fail(f"{call}: fgsm_attack was called with epsilon = {c['epsilon']!r}; expected attack_args[EPSILON] = "
                     f"{run['args']['epsilon']}")
            g = c["data_grad"]
            if not isinstance(g, torch.Tensor) or g.shape != image.shape:
                fail(f"{call}: fgsm_attack was called with data_grad = {H.describe(g)}; expected the gradient of the "
                     "loss with respect to the images (same shape as the images); did the images require grad?")
            for k, i in enumerate(rows):
                if i is None or not bool(run["init"][i]):
                    continue
                want = H.input_gradient(model, x[i:i + 1], y[i:i + 1]).double().reshape(-1)
                ok, scale, _ = H.proportional(g[k].double().reshape(-1), want, 1e-3)
                if not ok:  # the template's F.nll_loss on raw logits (-logit of the true class) is accepted too
                    ok = H.proportional(g[k].double().reshape(-1), _minus_true_logit_gradient(model, x[i], y[i]), 1e-3)[0]
                if not ok:
                    fail(f"{call}: for test example {i} fgsm_attack was given a data_grad that is not the gradient of the "
                         "cross-entropy loss with respect to the image" + (" (its sign is reversed)" if scale < 0 else ""))
        else:
            args = c["args"]
            if not isinstance(args, dict) or any(
                    not isinstance(args.get(k), (int, float)) or abs(float(args[k]) - v) > 1e-12
                    for k, v in run["args"].items()):
                fail(f"{call}: pgd_attack was called with args = {args!r}; expected attack_args = {run['args']}")
            if not c["same_model"]:
                fail(f"{call}: pgd_attack was called with another model than the one given to test_attack")
            target = c["target"]
            want = torch.tensor([y[i] if i is not None else -1 for i in rows])
            if not isinstance(target, torch.Tensor) or target.reshape(-1).shape != want.shape or not torch.equal(
                    target.reshape(-1).long(), want):
                fail(f"{call}: pgd_attack was called with target = {H.describe(target)}; expected the true labels of "
                     "the images it attacks")
        attacked.update(i for i in rows if i is not None)
    missed = [i for i in range(len(y)) if bool(run["init"][i]) and i not in attacked]
    if missed:
        fail(f"{call}: test example {missed[0]} is classified correctly but was never attacked "
             f"({len(missed)} such examples); expected every correctly classified example to be attacked")


def _check_accuracy(run: dict[str, Any]) -> None:
    call = run["call"]
    got = H.as_float(run["accuracy"], call + " (the accuracy)")
    init, final = run["init"], run["final"]
    want = float((init & final).double().mean())
    if abs(got - want) > ACC_ATOL:
        n, right = len(init), int(init.sum())
        fail(f"{call} returned accuracy {got:.6g}; expected {want:.6g} = {int((init & final).sum())} / {n}: of the {n} "
             f"examples the model classifies {right} correctly, and {int((init & final).sum())} of those still are "
             f"after the attack ({run['how']})", mistakes.diagnose_test_attack(got, init, final, ACC_ATOL))


@check("part2.adversarial_attack.test_attack.fgsm")
@tags(TEST_ATTACK)
def test_test_attack_fgsm(part2, ref2):
    """With FGSM and batch size 1 (the template's loader): the accuracy equals the grader's own
    count (exactly: a ratio of integers), the correctly classified examples are attacked with
    epsilon = attack_args[EPSILON] and the gradient of the cross-entropy with respect to the
    images (any positive scale; compared to 1e-3 relative; the gradient of F.nll_loss on raw
    logits, which some templates use, is accepted too)."""
    run = _run(part2, ref2, "fgsm", 1)
    if run["calls"]:
        _check_calls(run)
    _check_accuracy(run)


@check("part2.adversarial_attack.test_attack.pgd")
@tags(TEST_ATTACK)
def test_test_attack_pgd(part2, ref2):
    """With PGD and batch size 1: the accuracy equals the grader's own count; pgd_attack gets the
    model, the images, their true labels and attack_args."""
    run = _run(part2, ref2, "pgd", 1)
    if run["calls"]:
        _check_calls(run)
    _check_accuracy(run)


@check("part2.adversarial_attack.test_attack.batches")
@tags(TEST_ATTACK)
def test_test_attack_batches(part2, ref2):
    """Any batch size: the same counts with a loader of 20 of the images (every second one) in
    batches of 8 (8, 8, 4), for FGSM and PGD."""
    for attack in ("fgsm", "pgd"):
        run = _run(part2, ref2, attack, 8, every=2)
        if run["calls"]:
            _check_calls(run)
        _check_accuracy(run)


def _as_int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, torch.Tensor) and value.numel() == 1 and not value.is_floating_point():
        return int(value.reshape(()).item())
    try:
        import numpy as np

        if isinstance(value, np.ndarray) and value.size == 1 and value.dtype.kind in "iu":
            return int(value.reshape(()))
    except ImportError:  # pragma: no cover
        pass
    return None


def _as_image(value: Any) -> torch.Tensor | None:
    if isinstance(value, torch.Tensor):
        return value.detach().float()
    try:
        import numpy as np

        if isinstance(value, np.ndarray) and value.dtype.kind == "f":
            return torch.from_numpy(np.array(value, dtype=np.float32))
    except ImportError:  # pragma: no cover
        pass
    return None


def _same_image(got: torch.Tensor, want: torch.Tensor, atol: float = 1e-6) -> bool:
    """``got`` is ``want`` (any shape of the same values), or ``want`` denormalised to pixels (the
    template stores ``denormalize(...)`` of the images), within ``atol`` (1e-6 for the values
    themselves; denormalising is float32 arithmetic, a few ulps)."""
    if got.numel() != want.numel():
        return False
    if H.linf(got.reshape(want.shape), want) <= atol:
        return True
    space = H.space()
    return space.normalised and H.linf(got.reshape(want.shape), space.denormalise(want[None])[0]) <= 1e-5


@check("part2.adversarial_attack.test_attack.examples")
@tags(TEST_ATTACK)
def test_test_attack_examples(part2, ref2):
    """``adv_examples`` holds the first min(5, #successful attacks) successful attacks in loader
    order, each ``(init_pred, final_pred, original, adversarial)``: ints with init_pred the true
    label and final_pred the model's (different) prediction on the adversarial image, images with
    the loader image's number of values (any shape: [C, H, W], squeezed or [1, C, H, W]) equal to
    the loader's image and its attacked version (within 1e-6), or both denormalised to pixels
    where the inputs are normalised (the UvA template's ``denormalize``; within 1e-5)."""
    run = _run(part2, ref2, "fgsm", 1)
    call, x, y, model = run["call"], run["x"], run["y"], run["model"]
    examples = run["examples"]
    success = [i for i in range(len(y)) if bool(run["init"][i]) and not bool(run["final"][i])]
    want_n = min(5, len(success))
    if not isinstance(examples, (list, tuple)) or len(examples) != want_n:
        fail(f"{call} returned adv_examples = {H.describe(examples)}; expected a list of {want_n} tuples (up to 5 "
             f"successful attacks; {len(success)} succeeded)")
    shape = list(x.shape[1:])
    for k, (i, entry) in enumerate(zip(success, examples)):
        where = f"{call}: adv_examples[{k}]"
        if not isinstance(entry, (list, tuple)) or len(entry) != 4:
            fail(f"{where} is {H.describe(entry)}; expected a tuple (init_pred, final_pred, original, adversarial)")
        init_pred, final_pred = _as_int(entry[0]), _as_int(entry[1])
        original, adversarial = _as_image(entry[2]), _as_image(entry[3])
        if init_pred is None or final_pred is None:
            fail(f"{where} starts with {H.describe(entry[0])}, {H.describe(entry[1])}; expected two ints (class indices, "
                 "e.g. init_pred.item())")
        if original is None or adversarial is None or original.numel() != x[i].numel() or adversarial.numel() != x[i].numel():
            fail(f"{where} holds images {H.describe(entry[2])}, {H.describe(entry[3])}; expected two float arrays of "
                 f"{x[i].numel()} values (shape {shape})")
        if not _same_image(original, x[i]):
            fail(f"{where}: its original image is not the loader's test example {i}, the {k + 1}-th successful attack "
                 "in loader order", "the examples are not the first successful attacks in loader order"
                 if any(_same_image(original, x[j]) for j in range(len(y))) else None)
        if not _same_image(adversarial, run["adv"][i]):
            fail(f"{where}: its adversarial image is not the attacked version of example {i} "
                 f"(largest difference {H.linf(adversarial.reshape(x[i].shape), run['adv'][i]):.3g})")
        pred = int(H.predictions(model, run["adv"][i:i + 1])[0])
        if init_pred != int(y[i]) or final_pred != pred:
            fail(f"{where} = ({init_pred}, {final_pred}, ...); expected (init_pred, final_pred) = ({int(y[i])}, {pred}): "
                 "the prediction before and after the attack")
