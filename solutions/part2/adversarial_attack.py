"""Adversarial attacks (FGSM, PGD), the FGSM training objective and attack evaluation.

Graded file. Conventions used throughout:

* images are float tensors ``[B, C, H, W]`` with pixel values in [0, 1] (the models
  normalise internally), labels are ``long`` tensors ``[B]``;
* attack budgets are in pixel units: an adversarial example ``x'`` of ``x`` is valid
  when ``max |x' - x| <= epsilon`` (the L-infinity ball) and ``0 <= x' <= 1``;
* ``criterion`` is a classification loss such as ``nn.CrossEntropyLoss()`` taking
  ``(logits [B, K], labels [B])``;
* the hyper-parameter dictionaries are keyed by the constants of ``globals.py``
  (``ALPHA``, ``EPSILON``, ``NUM_ITER``).
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn as nn

from globals import ALPHA, EPSILON, FGSM, NUM_ITER, PGD


def fgsm_attack(image: torch.Tensor, data_grad: torch.Tensor, epsilon: float = 0.25) -> torch.Tensor:
    """Fast Gradient Sign Method: one step of size ``epsilon`` along the sign of the gradient.

    Args:
        image: clean images, float ``[B, C, H, W]`` in [0, 1].
        data_grad: gradient of the loss with respect to ``image``, same shape.
        epsilon: L-infinity size of the perturbation (pixel units).

    Returns:
        ``clamp(image + epsilon * sign(data_grad), 0, 1)``, same shape and dtype as ``image``.
        Every pixel moves by exactly ``epsilon`` (or 0 where the gradient is 0), then the
        result is clipped back to the valid pixel range, so it stays inside the epsilon-ball.
    """
    # BEGIN SOLUTION Q2.1
    perturbed_image = image + epsilon * data_grad.sign()
    perturbed_image = perturbed_image.clamp(0.0, 1.0)
    # END SOLUTION
    return perturbed_image


def fgsm_loss(
    model: nn.Module,
    criterion: nn.Module,
    inputs: torch.Tensor,
    labels: torch.Tensor,
    defense_args: dict[str, float],
    return_preds: bool = True,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """FGSM adversarial-training objective (Goodfellow et al., 2015).

    ``loss = alpha * J(x, y) + (1 - alpha) * J(x_fgsm, y)`` where ``J(x, y) = criterion(model(x), y)``,
    ``alpha = defense_args[ALPHA]``, ``epsilon = defense_args[EPSILON]`` and
    ``x_fgsm = fgsm_attack(x, dJ(x, y)/dx, epsilon)``.

    ``x_fgsm`` is treated as a constant: calling ``loss.backward()`` must give the model's
    parameters the gradient of the objective above with ``x_fgsm`` fixed, and nothing else
    (computing ``x_fgsm`` must not leave gradients in the parameters' ``.grad``). ``inputs``
    must not be modified.

    Args:
        model: classifier mapping ``[B, C, H, W]`` images in [0, 1] to logits ``[B, K]``.
        criterion: loss on ``(logits, labels)``, e.g. ``nn.CrossEntropyLoss()``.
        inputs: float ``[B, C, H, W]`` in [0, 1]. labels: long ``[B]``.
        defense_args: ``{ALPHA: mixing weight in [0, 1], EPSILON: FGSM step size}``.
        return_preds: also return the predictions of the clean forward pass.

    Returns:
        ``(loss, preds)`` with ``loss`` a scalar tensor attached to the model's parameters and
        ``preds`` the long ``[B]`` argmax of ``model(inputs)``; or ``loss`` alone.
    """
    alpha = defense_args[ALPHA]
    epsilon = defense_args[EPSILON]
    # Your code must set `loss` and `original_outputs` (the logits of the clean pass).
    # BEGIN SOLUTION Q2.2
    # A private copy of the inputs that tracks gradients, so the caller's tensor is untouched.
    x = inputs.detach().clone().requires_grad_(True)
    original_outputs = model(x)
    clean_loss = criterion(original_outputs, labels)
    # autograd.grad returns dJ/dx without accumulating anything into the parameters' .grad;
    # the graph is kept because clean_loss is part of the final objective.
    (data_grad,) = torch.autograd.grad(clean_loss, x, retain_graph=True)
    x_fgsm = fgsm_attack(x.detach(), data_grad, epsilon).detach()  # constant for the update
    adversarial_loss = criterion(model(x_fgsm), labels)
    loss = alpha * clean_loss + (1 - alpha) * adversarial_loss
    # END SOLUTION
    if return_preds:
        _, preds = torch.max(original_outputs, 1)
        return loss, preds
    return loss


def pgd_attack(
    model: nn.Module,
    data: torch.Tensor,
    target: torch.Tensor,
    criterion: nn.Module,
    args: dict[str, Any],
) -> torch.Tensor:
    """Projected Gradient Descent attack (Madry et al., 2018), L-infinity version.

    Starting from ``x_0 = data`` (no random start), repeat ``num_iter`` times::

        x_{t+1} = clamp(P_eps(x_t + alpha * sign(grad_x criterion(model(x_t), target))), 0, 1)

    where ``P_eps`` projects onto the L-infinity ball of radius ``epsilon`` around the
    ORIGINAL ``data`` (clip ``x - data`` to ``[-epsilon, epsilon]``), and the clamp keeps
    pixels in [0, 1].

    Args:
        model: classifier mapping ``[B, C, H, W]`` images in [0, 1] to logits ``[B, K]``.
        data: clean images, float ``[B, C, H, W]`` in [0, 1]; not modified.
        target: true labels, long ``[B]``.
        criterion: loss on ``(logits, labels)`` to maximise.
        args: ``{ALPHA: step size, EPSILON: ball radius, NUM_ITER: number of steps}``.

    Returns:
        The adversarial images: detached (no autograd history), same shape/dtype/device as
        ``data``, inside the epsilon-ball around ``data`` and inside [0, 1]. The model's
        parameter gradients (``.grad``) are left as they were.
    """
    alpha = args[ALPHA]
    epsilon = args[EPSILON]
    num_iter = args[NUM_ITER]
    # BEGIN SOLUTION Q2.3
    original = data.detach()
    perturbed = original.clone()
    for _ in range(num_iter):
        # A fresh leaf each step, so no history accumulates across iterations.
        perturbed = perturbed.detach().requires_grad_(True)
        loss = criterion(model(perturbed), target)
        (grad,) = torch.autograd.grad(loss, perturbed)
        with torch.no_grad():
            perturbed = perturbed + alpha * grad.sign()
            perturbed = original + (perturbed - original).clamp(-epsilon, epsilon)
            perturbed = perturbed.clamp(0.0, 1.0)
    perturbed_data = perturbed.detach()
    # END SOLUTION
    return perturbed_data


def _model_device(model: nn.Module) -> torch.device:
    """Device of the model's first parameter or buffer (CPU for a model with neither)."""
    for tensor in list(model.parameters()) + list(model.buffers()):
        return tensor.device
    return torch.device("cpu")


def test_attack(
    model: nn.Module,
    test_loader: torch.utils.data.DataLoader,
    attack_function: str,
    attack_args: dict[str, Any],
) -> tuple[float, list[tuple[int, int, np.ndarray, np.ndarray]]]:
    """Robust accuracy of ``model`` under an FGSM or PGD attack.

    The model is put in eval mode. For every batch ``(data, target)`` of ``test_loader``
    (any batch size): classify the clean images; examples already misclassified are not
    attacked (they count as errors); the correctly classified ones are attacked with the
    loss ``nn.CrossEntropyLoss()`` and re-classified:

    * ``attack_function == FGSM``: gradient of the loss with respect to the images, then
      ``fgsm_attack(images, gradient, attack_args[EPSILON])``;
    * ``attack_function == PGD``: ``pgd_attack(model, images, labels, loss, attack_args)``.

    Accuracy formula (the UvA template's, there with batch size 1)::

        accuracy = #(examples correctly classified before AND after the attack)
                   / #(all examples in test_loader)

    i.e. the usual "robust accuracy", a number in [0, 1] that is at most the clean accuracy.

    Returns:
        ``(accuracy, adv_examples)``; ``adv_examples`` holds up to 5 successful attacks (in
        loader order) as tuples ``(init_pred: int, final_pred: int, original: ndarray [C,H,W],
        adversarial: ndarray [C,H,W])``, images as float32 in [0, 1].
    """
    if attack_function not in (FGSM, PGD):
        raise ValueError(f"unknown attack {attack_function!r}: expected {FGSM!r} or {PGD!r}")
    device = _model_device(model)
    model.eval()
    criterion = nn.CrossEntropyLoss()
    correct, total = 0, 0
    adv_examples: list[tuple[int, int, np.ndarray, np.ndarray]] = []
    for data, target in test_loader:
        data, target = data.to(device), target.to(device)
        total += target.numel()
        with torch.no_grad():
            init_pred = model(data).argmax(1)
        keep = init_pred == target  # only attack what the model gets right
        if not keep.any():
            continue
        data, target, init_pred = data[keep], target[keep], init_pred[keep]

        # Your code must set `perturbed_data`, the adversarial version of `data`.
        if attack_function == FGSM:
            # BEGIN SOLUTION Q2.1
            images = data.clone().requires_grad_(True)
            loss = criterion(model(images), target)
            (data_grad,) = torch.autograd.grad(loss, images)
            perturbed_data = fgsm_attack(data, data_grad, attack_args[EPSILON])
            # END SOLUTION
        else:
            # BEGIN SOLUTION Q2.1
            perturbed_data = pgd_attack(model, data, target, criterion, attack_args)
            # END SOLUTION

        with torch.no_grad():
            final_pred = model(perturbed_data).argmax(1)
        survived = final_pred == target
        correct += int(survived.sum())
        for i in torch.nonzero(~survived).flatten().tolist():
            if len(adv_examples) >= 5:
                break
            adv_examples.append((
                int(init_pred[i]),
                int(final_pred[i]),
                data[i].detach().cpu().float().numpy(),
                perturbed_data[i].detach().cpu().float().numpy(),
            ))

    final_acc = correct / total if total else 0.0
    print(f"Attack {attack_function}, args {attack_args}: accuracy = {correct} / {total} = {final_acc:.4f}")
    return final_acc, adv_examples
