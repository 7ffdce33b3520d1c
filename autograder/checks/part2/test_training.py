"""Smoke trainings of the defences (Q2.2, Q2.3) on real FashionMNIST, judged by the grader.

The grader's standard-trained SmallNet is fine-tuned for a short budget
(``[thresholds.part2.smoke]``: a few thousand training images, one epoch) with the FGSM
defence (the student's ``fgsm_loss`` in the handout's training loop, the grader's
``fgsm_attack``: check 2.2.5 grades ``fgsm_loss``) or the PGD defence (the student's ``train``
with its PGD branch, the grader's ``pgd_attack``: check 2.3.7 grades ``train``), inside the
worker, on the GPU when there is one. The
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
                  call: str, loop: str = "student") -> nn.Module:
    """Run a training in the worker (the student's ``train``, or the handout's loop around the
    student's ``fgsm_loss``) and load the weights it returns into the grader's SmallNet."""
    xtr, ytr, xva, yva, _, _ = smoke_data(ref2("data"), s)
    r = part2.driver(f"{DRV}.smoke_train", H.grader_state(), xtr, ytr, xva, yva, strategy, dict(args),
                     int(s["batch_size"]), int(s["epochs"]), int(s["seed"]), loop, s["recipe"], seed=int(s["seed"]),
                     slow_ok=True)
    state = r.get("state") if isinstance(r, dict) else None
    reference = H.grader_state()
    if not isinstance(state, dict) or set(state) != set(reference) or any(
            not isinstance(state[k], torch.Tensor) or state[k].shape != reference[k].shape for k in reference):
        fail(f"{call}: the trained model's weights could not be read back (they do not fit the SmallNet they started from)")
    if any(not bool(torch.isfinite(v).all()) for v in state.values()):
        fail(f"{call}: training made some weights inf/nan (the loss exploded); expected a finite model")
    return H.grader_model(ref2("models"), state)


def _judge(part2: Any, ref2: Any, threshold: Any, cfg: Any, strategy: str, figures: Any) -> None:
    s = settings(threshold, cfg.conventions.get("part2", {}))
    args = dict(s["fgsm_defense"] if strategy == "fgsm" else s["pgd_defense"])
    min_gain = float(s["fgsm_min_gain"] if strategy == "fgsm" else s["pgd_min_gain"])
    n, count = int(s["train_images"]), int(s["test_images"][1])
    if strategy == "fgsm":  # grades fgsm_loss: the handout's loop, so train's own bugs cost only train's checks
        call = (f"the handout's training loop with your fgsm_loss (defense_args={args}), fine-tuning the grader's "
                f"trained SmallNet for {s['epochs']} epoch(s) on {n} {H.images_text('training')}")
    else:
        call = (f"train(model, trainloader, validloader, num_epochs={s['epochs']}, defense_strategy={strategy!r}, "
                f"defense_args={args}) fine-tuning the grader's trained SmallNet on {n} {H.images_text('training')}")
    model = train_student(part2, ref2, s, strategy, args, call, "harness" if strategy == "fgsm" else "student")
    _, _, _, _, xte, yte = smoke_data(ref2("data"), s)
    got = robust_accuracy(model, xte, yte, strategy, s)
    base = baseline(ref2, s, strategy)
    attack = (f"FGSM (epsilon {s['eval_fgsm_epsilon']})" if strategy == "fgsm"
              else "PGD (epsilon {}, alpha {}, {} steps)".format(*s["eval_pgd"]))
    clean_acc = H.accuracy(model, xte, yte)
    figures.bars(f"Accuracy after your {strategy.upper()} defence training vs standard training",
                 {"clean, your training": clean_acc, f"under {strategy.upper()}, standard training": base,
                  f"under {strategy.upper()}, your training": got},
                 f"{count} test images; the defence must gain at least {min_gain:.2f} under the attack")
    if got - base < min_gain:
        fail(f"{call}: accuracy under {attack} on {count} test images is {got:.3f} after your training and {base:.3f} "
             f"after standard training with the same budget (clean accuracy {clean_acc:.3f}); "
             f"expected the defence to gain at least {min_gain:.2f}")


@check("part2.adversarial_attack.fgsm_loss.smoke.robust_gain")
@tags("part2.adversarial_attack.fgsm_loss")
def test_fgsm_training_gain(part2, ref2, threshold, cfg, figures):
    """FGSM-loss training raises the accuracy under FGSM over standard training by at least
    ``part2.smoke.fgsm_min_gain`` (calibrated over 5 seeds and broken variants: grading.toml)."""
    _judge(part2, ref2, threshold, cfg, "fgsm", figures)


@check("part2.utils.train.smoke.pgd_robust_gain")
@tags("part2.utils.train")
def test_pgd_training_gain(part2, ref2, threshold, cfg, figures):
    """PGD-batch training raises the accuracy under PGD over standard training by at least
    ``part2.smoke.pgd_min_gain`` (calibrated over 5 seeds and broken variants: grading.toml)."""
    _judge(part2, ref2, threshold, cfg, "pgd", figures)
