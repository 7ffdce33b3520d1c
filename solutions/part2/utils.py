"""Training loop with optional adversarial defences, and clean-accuracy evaluation.

Graded file (only the PGD branch of ``train`` is yours to write). Data loading lives in
``data.py`` and the models in ``models.py``; both are instructor-owned.
"""
from __future__ import annotations

import copy
import time
from typing import Any

import torch
import torch.nn as nn
import torch.optim as optim

from adversarial_attack import fgsm_loss, pgd_attack
from globals import FGSM, PGD, STANDARD


def _model_device(model: nn.Module) -> torch.device:
    """Device of the model's first parameter or buffer (CPU for a model with neither)."""
    for tensor in list(model.parameters()) + list(model.buffers()):
        return tensor.device
    return torch.device("cpu")


def train(
    model: nn.Module,
    trainloader: torch.utils.data.DataLoader,
    validloader: torch.utils.data.DataLoader,
    num_epochs: int = 25,
    defense_strategy: str = STANDARD,
    defense_args: dict[str, Any] = {},  # noqa: B006 - the template's signature; never mutated
    *,
    lr: float = 1e-3,
    verbose: bool = True,
    return_history: bool = False,
) -> nn.Module | tuple[nn.Module, list[dict[str, float]]]:
    """Train ``model`` with cross-entropy and the chosen defence; keep the best epoch on validation.

    Each epoch has a training phase (Adam, learning rate ``lr``) and a validation phase
    (clean accuracy on ``validloader``). The returned model carries the weights of the
    epoch with the highest validation accuracy (the first such epoch on ties). The
    training batches are moved to the model's device.

    Training objective per batch ``(x [B,C,H,W] in [0,1], y [B])``, by ``defense_strategy``:

    * ``STANDARD``: ``CE(model(x), y)``.
    * ``FGSM``: ``fgsm_loss(model, CE, x, y, defense_args)``, i.e.
      ``alpha * CE(x) + (1 - alpha) * CE(x_fgsm)`` (see ``adversarial_attack.fgsm_loss``).
    * ``PGD``: build ``x_pgd = pgd_attack(model, x, y, CE, defense_args)`` and take the step on
      the concatenated batch ``cat([x, x_pgd])`` with labels ``cat([y, y])`` (2B examples),
      loss ``CE`` averaged over the 2B examples. The training statistics then count 2B
      examples per batch.

    Args:
        model: classifier on images in [0, 1]; trained in place.
        trainloader, validloader: loaders of ``(images, labels)`` batches.
        num_epochs: number of passes over ``trainloader``.
        defense_strategy: ``STANDARD``, ``FGSM`` or ``PGD`` (``globals.py``).
        defense_args: hyper-parameters of the defence (``{ALPHA, EPSILON}`` for FGSM,
            ``{ALPHA, EPSILON, NUM_ITER}`` for PGD); unused for STANDARD.
        lr: Adam learning rate. verbose: print one line per phase.
        return_history: also return per-epoch statistics.

    Returns:
        The model (best validation weights loaded) or ``(model, history)`` where history is a
        list of ``{"epoch", "train_loss", "train_acc", "val_loss", "val_acc"}`` dicts.
    """
    if defense_strategy not in (STANDARD, FGSM, PGD):
        raise ValueError(f"unknown defense_strategy {defense_strategy!r}: expected {STANDARD!r}, {FGSM!r} or {PGD!r}")
    device = _model_device(model)
    since = time.time()
    criterion = nn.CrossEntropyLoss()
    optimizer = optim.Adam(model.parameters(), lr=lr)
    best_model_wts = copy.deepcopy(model.state_dict())
    best_acc = -1.0
    history: list[dict[str, float]] = []

    for epoch in range(num_epochs):
        record: dict[str, float] = {"epoch": epoch}
        for phase in ("train", "val"):
            training = phase == "train"
            model.train(training)
            dataloader = trainloader if training else validloader
            running_loss, running_corrects, seen = 0.0, 0, 0
            for inputs, labels in dataloader:
                inputs, labels = inputs.to(device), labels.to(device)
                if not training:
                    with torch.no_grad():
                        outputs = model(inputs)
                        loss = criterion(outputs, labels)
                        preds = outputs.argmax(1)
                elif defense_strategy == STANDARD:
                    outputs = model(inputs)
                    loss = criterion(outputs, labels)
                    preds = outputs.argmax(1)
                elif defense_strategy == FGSM:
                    loss, preds = fgsm_loss(model, criterion, inputs, labels, defense_args=defense_args, return_preds=True)
                else:  # PGD
                    # Set `loss` (to minimise), `preds` and `labels` for the batch actually trained on.
                    # BEGIN SOLUTION Q2.3
                    adversarial = pgd_attack(model, inputs, labels, criterion, defense_args)
                    inputs = torch.cat([inputs, adversarial])
                    labels = torch.cat([labels, labels])  # an adversarial example keeps its label
                    outputs = model(inputs)
                    loss = criterion(outputs, labels)
                    preds = outputs.argmax(1)
                    # END SOLUTION

                if training:
                    optimizer.zero_grad()
                    loss.backward()
                    optimizer.step()

                running_loss += loss.item() * labels.numel()
                running_corrects += int((preds == labels).sum())
                seen += labels.numel()

            epoch_loss = running_loss / max(seen, 1)
            epoch_acc = running_corrects / max(seen, 1)
            prefix = "train" if training else "val"
            record[f"{prefix}_loss"], record[f"{prefix}_acc"] = epoch_loss, epoch_acc
            if verbose:
                print(f"epoch {epoch + 1}/{num_epochs} {phase:5s} loss {epoch_loss:.4f} acc {epoch_acc:.4f}")
            if not training and epoch_acc > best_acc:
                best_acc = epoch_acc
                best_model_wts = copy.deepcopy(model.state_dict())
        history.append(record)

    if verbose:
        print(f"training ({defense_strategy}) took {time.time() - since:.1f}s; best val acc {max(best_acc, 0.0):.4f}")
    model.load_state_dict(best_model_wts)
    return (model, history) if return_history else model


def test(model: nn.Module, testloader: torch.utils.data.DataLoader) -> float:
    """Clean accuracy of ``model`` (eval mode) on ``testloader``: #correct / #examples."""
    device = _model_device(model)
    model.eval()
    correct, total = 0, 0
    with torch.no_grad():
        for images, labels in testloader:
            images, labels = images.to(device), labels.to(device)
            correct += int((model(images).argmax(1) == labels).sum())
            total += labels.numel()
    return correct / total if total else 0.0
