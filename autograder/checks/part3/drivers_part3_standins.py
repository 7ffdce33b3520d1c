"""Stand-ins for part 3's graded functions (worker side): one mistake, one deduction.

While a check grades latent_attack or targeted_latent_attack, their ``symmetric_kl`` is this
one; while it grades hmc_defence, its ``hmc_step`` is this one. Each computes what the handout's
docstring states.
"""
from __future__ import annotations

from typing import Callable

import torch

from drivers_common import standin


@standin("latent_attacks.symmetric_kl")
def symmetric_kl(mean1: torch.Tensor, log_std1: torch.Tensor, mean2: torch.Tensor, log_std2: torch.Tensor) -> torch.Tensor:
    """KL(q1 || q2) + KL(q2 || q1) of diagonal Gaussians, summed over all but the batch dimension."""
    var1, var2 = torch.exp(2 * log_std1), torch.exp(2 * log_std2)
    d2 = (mean1 - mean2) ** 2
    out = 0.5 * (var1 + d2) / var2 + 0.5 * (var2 + d2) / var1 - 1
    return out.reshape(out.shape[0], -1).sum(dim=1)


@standin("hmc.hmc_step")
def hmc_step(z: torch.Tensor, log_target: Callable[[torch.Tensor], torch.Tensor], step_size: float,
             n_leapfrog: int) -> torch.Tensor:
    """One HMC transition per chain (leapfrog, Metropolis)."""
    def value_and_grad(q: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        q = q.detach().requires_grad_(True)
        value = log_target(q)
        (grad,) = torch.autograd.grad(value.sum(), q)
        return value.detach(), grad

    z = z.detach()
    p0 = torch.randn_like(z)
    v0, grad = value_and_grad(z)
    q, p = z, p0 + 0.5 * step_size * grad
    for i in range(int(n_leapfrog)):
        q = q + step_size * p
        v, grad = value_and_grad(q)
        p = p + (step_size if i < n_leapfrog - 1 else 0.5 * step_size) * grad
    log_ratio = (v - 0.5 * (p ** 2).sum(dim=1)) - (v0 - 0.5 * (p0 ** 2).sum(dim=1))
    accept = torch.rand_like(v0).log() < log_ratio
    return torch.where(accept[:, None], q, z).detach()


# Key: "module.name" as the worker imports it -> the stand-in.
STANDINS = {
    "latent_attacks.symmetric_kl": symmetric_kl,
    "hmc.hmc_step": hmc_step,
}
