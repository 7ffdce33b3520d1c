"""Smoke trainings of the defences (Q2.2, Q2.3) on real FashionMNIST, judged by the grader.

The student's ``train`` fine-tunes the grader's standard-trained SmallNet for a short budget
(``[thresholds.part2.smoke]``: a few thousand training images, one epoch) with the FGSM
defence (the student's ``fgsm_loss`` and ``fgsm_attack``) or the PGD defence (the student's
PGD branch and ``pgd_attack``), inside the worker, on the GPU when there is one. The
trained weights come back as a dict of tensors. The grader then measures, in the trusted
process and with the REFERENCE attack, the accuracy under that attack on held-out test
images, and compares it with standard training (the reference ``train`` with the same
start, data, order and budget; computed once by ``python -m autograder prepare``, see
smoke.py). A working defence gains tens of points; the thresholds are calibrated on the
reference over seeds and against broken variants (grading.toml).
"""
from __future__ import annotations

from typing import Any

import torch
import torch.nn as nn

from autograder.checks.part2 import helpers as H
from autograder.checks.part2.smoke import baseline, robust_accuracy, settings, smoke_data
from autograder.registry import check, fail, tags

DRV = H.DRIVERS


def train_student(part2: Any, ref2: Any, s: dict[str, Any], strategy: str, args: dict[str, Any],
                  call: str) -> nn.Module:
    """Run the student's ``train`` in the worker and load the weights it returns into the grader's SmallNet."""
    xtr, ytr, xva, yva, _, _ = smoke_data(ref2("data"), s)
    r = part2.driver(f"{DRV}.smoke_train", H.grader_state(), xtr, ytr, xva, yva, strategy, dict(args),
                     int(s["batch_size"]), int(s["epochs"]), int(s["seed"]), seed=int(s["seed"]))
    state = r.get("state") if isinstance(r, dict) else None
    reference = H.grader_state()
    if not isinstance(state, dict) or set(state) != set(reference) or any(
            not isinstance(state[k], torch.Tensor) or state[k].shape != reference[k].shape for k in reference):
        fail(f"{call}: the trained model's weights could not be read back (they do not fit the SmallNet they started from)")
    if any(not bool(torch.isfinite(v).all()) for v in state.values()):
        fail(f"{call}: training made some weights inf/nan (the loss exploded); expected a finite model")
    return H.grader_model(ref2("models"), state)


def _judge(part2: Any, ref2: Any, threshold: Any, strategy: str) -> None:
    s = settings(threshold)
    args = dict(s["fgsm_defense"] if strategy == "fgsm" else s["pgd_defense"])
    min_gain = float(s["fgsm_min_gain"] if strategy == "fgsm" else s["pgd_min_gain"])
    n, count = int(s["train_images"]), int(s["test_images"][1])
    call = (f"train(model, trainloader, validloader, num_epochs={s['epochs']}, defense_strategy={strategy!r}, "
            f"defense_args={args}) fine-tuning the grader's trained SmallNet on {n} FashionMNIST training images")
    model = train_student(part2, ref2, s, strategy, args, call)
    _, _, _, _, xte, yte = smoke_data(ref2("data"), s)
    got = robust_accuracy(ref2("adversarial_attack"), model, xte, yte, strategy, s)
    base = baseline(ref2, s, strategy)
    attack = (f"FGSM (epsilon {s['eval_fgsm_epsilon']})" if strategy == "fgsm"
              else "PGD (epsilon {}, alpha {}, {} steps)".format(*s["eval_pgd"]))
    if got - base < min_gain:
        fail(f"{call}: accuracy under {attack} on {count} test images is {got:.3f} after your training and {base:.3f} "
             f"after standard training with the same budget (clean accuracy {H.accuracy(model, xte, yte):.3f}); "
             f"expected the defence to gain at least {min_gain:.2f} (the reference gains about 0.3)")


@check("part2.adversarial_attack.fgsm_loss.smoke.robust_gain")
@tags("part2.adversarial_attack.fgsm_loss", "part2.adversarial_attack.fgsm_attack", "part2.utils.train")
def test_fgsm_training_gain(part2, ref2, threshold):
    """FGSM-loss training raises the accuracy under FGSM over standard training by at least
    ``part2.smoke.fgsm_min_gain`` (calibrated over 5 seeds and broken variants: grading.toml)."""
    _judge(part2, ref2, threshold, "fgsm")


@check("part2.utils.train.smoke.pgd_robust_gain")
@tags("part2.utils.train", "part2.adversarial_attack.pgd_attack")
def test_pgd_training_gain(part2, ref2, threshold):
    """PGD-batch training raises the accuracy under PGD over standard training by at least
    ``part2.smoke.pgd_min_gain`` (calibrated over 5 seeds and broken variants: grading.toml)."""
    _judge(part2, ref2, threshold, "pgd")
