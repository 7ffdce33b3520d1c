"""Known mistakes of the IFT6135 problem 2 and 3 functions, recognised by their outputs.

Each table maps a mistake's description to the value that mistake would have produced on the
same inputs; a check that failed names the one the student's value matches (relative 1e-4).
"""
from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor


def _match(got: float, candidates: dict[str, Callable[[], float]], rtol: float = 1e-4) -> str | None:
    for text, value in candidates.items():
        try:
            v = float(value())
        except Exception:
            continue
        if abs(got - v) <= rtol * max(1.0, abs(v)):
            return text
    return None


def penalty(got: float, grads: Tensor) -> str | None:
    """lp_reg's value against mistakes on the per-example input gradients ``grads`` [B, ...]."""
    g = grads.double().reshape(grads.shape[0], -1)
    n = g.norm(dim=1)
    return _match(got, {
        "the two-sided penalty (||grad|| - 1)^2 of WGAN-GP instead of max(0, ||grad|| - 1)^2 (Petzka's one-sided LP)":
            lambda: ((n - 1) ** 2).mean(),
        "max(0, ||grad|| - 1) without the square": lambda: (n - 1).clamp(min=0).mean(),
        "the squared norm ||grad||^2 in place of the norm": lambda: ((g ** 2).sum(1) - 1).clamp(min=0).pow(2).mean(),
        "a sum over the batch instead of the mean": lambda: ((n - 1).clamp(min=0) ** 2).sum(),
        "the norm taken over the batch dimension (dim=0) instead of per example":
            lambda: ((g.norm(dim=0) - 1).clamp(min=0) ** 2).mean(),
        "the norm of the gradient over only one dimension (dim=1 of an image) instead of all of an example's":
            lambda: ((grads.double().norm(dim=1) - 1).clamp(min=0) ** 2).mean() if grads.dim() > 2 else float("nan"),
    })


def wasserstein(got: float, fp: Tensor, fq: Tensor) -> str | None:
    """vf_wasserstein_distance's value against mistakes, from the critic's outputs on p and q."""
    return _match(got, {
        "sums over the batch instead of means": lambda: fp.sum() - fq.sum(),
        "the critic's outputs added instead of subtracted": lambda: fp.mean() + fq.mean(),
        "the critic applied to p only": lambda: fp.mean(),
    })


def hellinger(got: float, vx: Tensor, vy: Tensor) -> str | None:
    """vf_squared_hellinger's value against mistakes, from the critic's outputs V on x and y."""
    return _match(got, {
        "the activation g_f(v) = 1 - exp(-v) left out (T = V)": lambda: vx.mean() - (vy / (1 - vy)).mean(),
        "f*(T) = T / (1 - T) applied to V instead of T = 1 - exp(-V)": lambda: (1 - torch.exp(-vx)).mean() - (vy / (1 - vy)).mean(),
        "x and y swapped (the divergence is not symmetric in its bound)":
            lambda: (1 - torch.exp(-vy)).mean() - (torch.exp(vx) - 1).mean(),
        "the conjugate's sign flipped": lambda: (1 - torch.exp(-vx)).mean() + (torch.exp(vy) - 1).mean(),
    })


def simsiam_loss(got: float, sims: dict[str, float]) -> str | None:
    """SimSiam.loss's value against mistakes, from the mean similarities of each pairing."""
    return _match(got, {
        "the similarity, not its negative (the loss must decrease as the views agree)":
            lambda: 0.5 * (sims["p1z2"] + sims["p2z1"]),
        "each prediction compared with its own view's target (p1 with z1) instead of the other view's":
            lambda: -0.5 * (sims["p1z1"] + sims["p2z2"]),
        "the two terms summed without the 0.5 weights": lambda: -(sims["p1z2"] + sims["p2z1"]),
        "only one of the two symmetric terms": lambda: -sims["p1z2"],
    })
