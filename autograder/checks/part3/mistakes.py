"""Known mistakes of the part 3 functions, recognised by their outputs.

Each table maps a mistake's description to what that mistake would have produced on the same
inputs (float64); a check that failed names the one the student's result matches (relative 1e-4).
"""
from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor

from autograder.checks.part1.vae_support import kld_per_image, rec_per_image


def _match(got: Tensor, candidates: dict[str, Callable[[], Tensor]], rtol: float = 1e-4) -> str | None:
    got = got.double()
    for text, value in candidates.items():
        try:
            v = torch.as_tensor(value()).double()
        except Exception:
            continue
        if v.shape == got.shape and bool(((got - v).abs() <= rtol * v.abs().clamp(min=1.0)).all()):
            return text
    return None


def _kl(m1: Tensor, l1: Tensor, m2: Tensor, l2: Tensor) -> Tensor:
    """KL(q1 || q2) per element."""
    return l2 - l1 + (torch.exp(2 * l1) + (m1 - m2) ** 2) / (2 * torch.exp(2 * l2)) - 0.5


def symmetric_kl(got: Tensor, m1: Tensor, l1: Tensor, m2: Tensor, l2: Tensor) -> str | None:
    m1, l1, m2, l2 = (t.double() for t in (m1, l1, m2, l2))
    ab, ba = _kl(m1, l1, m2, l2), _kl(m2, l2, m1, l1)
    half = (lambda t: 0.5 * t)
    return _match(got, {
        "only KL(q1 || q2): the symmetric divergence adds KL(q2 || q1)": lambda: ab.sum(1),
        "only KL(q2 || q1): the symmetric divergence adds KL(q1 || q2)": lambda: ba.sum(1),
        "the average of the two KL divergences instead of their sum": lambda: half(ab + ba).sum(1),
        "log_std used as the log-variance (exp(log_std) where exp(2 * log_std) is the variance)":
            lambda: (_kl(m1, l1 / 2, m2, l2 / 2) + _kl(m2, l2 / 2, m1, l1 / 2)).sum(1),
        "a mean over the latent dimensions instead of a sum": lambda: (ab + ba).mean(1),
        "the constant -1 per dimension left out": lambda: (ab + ba + 1).sum(1),
    })


def beta_loss(got: Tensor, x: Tensor, logits: Tensor, mean: Tensor, log_std: Tensor, beta: float) -> str | None:
    levels = (x.double() * 15).round().long()
    floor = (x * 15).long()  # float32 products, as a student's code computes them
    rec = rec_per_image(logits, levels)
    m, ls = mean.double(), log_std.double()
    kl = kld_per_image(m, ls)
    return _match(got.reshape(-1), {
        "beta weights the reconstruction term instead of the KL term": lambda: (beta * rec + kl).mean().reshape(1),
        "beta left out (the plain negative ELBO)": lambda: (rec + kl).mean().reshape(1),
        "a sum over the batch instead of the mean": lambda: (rec + beta * kl).sum().reshape(1),
        "the KL term without its factor 1/2": lambda: (rec + beta * 2 * kl).mean().reshape(1),
        "the reconstruction term averaged over the pixels instead of summed":
            lambda: (rec / levels[0].numel() + beta * kl).mean().reshape(1),
        "the levels truncated with (x * 15).long() instead of rounded (to_levels): k/15 * 15 can be just below k":
            lambda: (rec_per_image(logits, floor) + beta * kl).mean().reshape(1),
        "log_std used as the log-variance in the KL term":
            lambda: (rec + beta * 0.5 * (torch.exp(ls) + m ** 2 - 1 - ls).sum(1)).mean().reshape(1),
    })
