"""Stand-ins for part 2's graded functions (worker side): one mistake, one deduction.

While a check grades one function, the worker replaces the graded functions it calls
(``depends`` in grading.toml) by these (``drivers_common.use_standins``): a ``pgd_attack`` that calls the
student's ``fgsm_attack``, or the PGD branch of ``train`` in the smoke training, then never
pays for a bug in the function it calls. Each computes what the handout's docstring states.
A stand-in runs only while it is installed (``drivers_common.standin``).
"""
from __future__ import annotations

from typing import Any

import torch
import torch.nn as nn

from drivers_common import standin

ALPHA, EPSILON, NUM_ITER = "alpha", "epsilon", "num_iter"  # the keys of globals.py (instructor-owned)


@standin("adversarial_attack.fgsm_attack")
def fgsm_attack(image: torch.Tensor, data_grad: torch.Tensor, epsilon: float = 0.25) -> torch.Tensor:
    """``image + epsilon * sign(data_grad)`` clamped to the valid range (of the edition's input space)."""
    import drivers_part2

    return drivers_part2.space().clamp(image + epsilon * data_grad.sign())


@standin("adversarial_attack.fgsm_loss")
def fgsm_loss(model: nn.Module, criterion: nn.Module, inputs: torch.Tensor, labels: torch.Tensor,
              defense_args: dict[str, float], return_preds: bool = True) -> Any:
    """``alpha * J(x) + (1 - alpha) * J(x_fgsm)``, ``x_fgsm`` from the module's ``fgsm_attack`` and held fixed."""
    import adversarial_attack  # looked up at call time: the check may watch fgsm_attack

    x = inputs.detach().clone().requires_grad_(True)
    outputs = model(x)
    clean = criterion(outputs, labels)
    (grad,) = torch.autograd.grad(clean, x, retain_graph=True)
    x_fgsm = adversarial_attack.fgsm_attack(x.detach(), grad, defense_args[EPSILON]).detach()
    alpha = defense_args[ALPHA]
    loss = alpha * clean + (1 - alpha) * criterion(model(x_fgsm), labels)
    return (loss, outputs.argmax(1)) if return_preds else loss


@standin("adversarial_attack.pgd_attack")
def pgd_attack(model: nn.Module, data: torch.Tensor, target: torch.Tensor, criterion: nn.Module,
               args: dict[str, Any]) -> torch.Tensor:
    """``num_iter`` sign steps of size ``alpha``, each projected onto the epsilon-ball and the valid range; detached."""
    import drivers_part2

    valid = drivers_part2.space().clamp
    original = data.detach()
    x = original.clone()
    for _ in range(int(args[NUM_ITER])):
        x = x.detach().requires_grad_(True)
        (grad,) = torch.autograd.grad(criterion(model(x), target), x)
        with torch.no_grad():
            x = x + args[ALPHA] * grad.sign()
            x = valid(original + (x - original).clamp(-args[EPSILON], args[EPSILON]))
    return x.detach()


# Key: "module.name" as the worker imports it -> the stand-in.
STANDINS = {
    "adversarial_attack.fgsm_attack": fgsm_attack,
    "adversarial_attack.fgsm_loss": fgsm_loss,
    "adversarial_attack.pgd_attack": pgd_attack,
}
