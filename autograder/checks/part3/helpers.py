"""Trusted-side support for the part 3 checks: the grader's VAE, its data, and the measures.

Runs in the grading process only. The grader's VAE is the handout's ``models.VAE`` (through
``ref3("models")``) with the weights in ``assets/mlpvae_fashionmnist.pt`` (trained by
``tools/train_grader_vae.py``; loaded with ``weights_only=True``). The same weights are sent to
the worker, which builds the same class from the staged ``models.py``. The images are
FashionMNIST test images on the 16 levels, read with part 1's data module.
"""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from types import ModuleType
from typing import Any, Callable

import torch
from torch import Tensor

from autograder.checks import probing, reference
from autograder.checks.part1.helpers_funcs import describe, preview  # noqa: F401  (message helpers)
from autograder.checks.part1.vae_support import rec_per_image
from autograder.registry import fail

ASSET = Path(__file__).resolve().parent / "assets" / "mlpvae_fashionmnist.pt"
DRV = "drivers_part3"


def probe(session: Any, driver: str, *args: Any, call: str, slow_ok: bool = False) -> dict[str, Any]:
    """Run one of ``drivers_part3``'s drivers (see :func:`autograder.checks.probing.probe`)."""
    return probing.probe(session, f"{DRV}.{driver}", *args, call=call, slow_ok=slow_ok)


# ----------------------------------------------------------------------------- model and data
@lru_cache(maxsize=1)
def _asset() -> dict[str, Any]:
    return torch.load(ASSET, map_location="cpu", weights_only=True)


def asset() -> dict[str, Any]:
    """The grader VAE's sizes and weights (fresh copies: callers may send or modify them)."""
    a = _asset()
    return {"z_dim": int(a["z_dim"]), "hidden": int(a["hidden"]),
            "state": {k: v.float().clone() for k, v in a["state"].items()}}


def grader_vae(models: ModuleType, state: dict[str, Tensor] | None = None) -> torch.nn.Module:
    """The handout's VAE with the asset's weights (or ``state``), eval mode."""
    a = asset()
    model = models.VAE(a["z_dim"], a["hidden"])
    model.load_state_dict(a["state"] if state is None else state)
    return model.eval()


def images(data: ModuleType, count: int, start: int = 0, split: str = "test") -> tuple[Tensor, Tensor]:
    """``count`` FashionMNIST images of ``split`` from ``start``: [N, 1, 28, 28] on the 16 levels in [0, 1], labels."""
    raw, labels = data.load_split("fashionmnist", split, limit=start + count)
    reference.drop_caches(data)  # the whole official split stays cached otherwise
    x = data.to_4bit(raw[start:start + count]).float().div(data.NUM_LEVELS - 1)[:, None]
    return x.contiguous(), labels[start:start + count].clone()


def pairs(labels: Tensor, seed: int) -> Tensor:
    """For each image, the index of a target image of another class (seeded)."""
    g = torch.Generator().manual_seed(seed)
    n = len(labels)
    target = torch.empty(n, dtype=torch.long)
    for i in range(n):
        for j in torch.randperm(n, generator=g).tolist():
            if labels[j] != labels[i]:
                target[i] = j
                break
    return target


# ----------------------------------------------------------------------------- measures
def skl(m1: Tensor, l1: Tensor, m2: Tensor, l2: Tensor) -> Tensor:
    """Symmetric KL of diagonal Gaussians per example, in float64 (the grader's own measure)."""
    m1, l1, m2, l2 = (t.double() for t in (m1, l1, m2, l2))
    v1, v2, d2 = torch.exp(2 * l1), torch.exp(2 * l2), (m1 - m2) ** 2
    out = 0.5 * (v1 + d2) / v2 + 0.5 * (v2 + d2) / v1 - 1
    return out.reshape(out.shape[0], -1).sum(1)


@torch.no_grad()
def posterior(vae: torch.nn.Module, x: Tensor) -> tuple[Tensor, Tensor]:
    mean, log_std = vae.encoder(x)
    return mean, log_std


def sign_noise(x: Tensor, epsilon: float, seed: int) -> Tensor:
    """x + epsilon * random signs, in [0, 1]: the attack's baseline of the same radius."""
    g = torch.Generator().manual_seed(seed)
    return (x + epsilon * (torch.randint(0, 2, x.shape, generator=g).float() * 2 - 1)).clamp(0, 1)


def pgd_on_skl(encoder: Callable[[Tensor], tuple[Tensor, Tensor]], x: Tensor, towards: Tensor | None,
               epsilon: float, alpha: float, num_iter: int, seed: int = 0) -> Tensor:
    """The grader's own latent attack (for the report and the smoke measurements on models the
    student trained): ascend SKL to q(z|x) from a random point of the ball, or (``towards``
    given) descend SKL to q(z|towards) from x."""
    with torch.no_grad():
        ref_mean, ref_log_std = encoder(x if towards is None else towards)
    g = torch.Generator().manual_seed(seed)
    direction = 1.0 if towards is None else -1.0
    x_adv = x.clone() if towards is not None else (x + (torch.rand(x.shape, generator=g) * 2 - 1) * epsilon).clamp(0, 1)
    for _ in range(num_iter):
        x_adv = x_adv.detach().requires_grad_(True)
        mean, log_std = encoder(x_adv)
        (grad,) = torch.autograd.grad(skl(mean, log_std, ref_mean, ref_log_std).sum(), x_adv)
        with torch.no_grad():
            x_adv = (x_adv + direction * alpha * grad.sign())
            x_adv = (x + (x_adv - x).clamp(-epsilon, epsilon)).clamp(0, 1)
    return x_adv.detach()


def success_rate(vae: torch.nn.Module, x_adv: Tensor, source: Tensor, target: Tensor) -> float:
    """Fraction of adversarial images whose reconstruction is nearer the target's reconstruction
    than the source's (Sootla's success criterion, in L2 over pixels)."""
    ra, rs, rt = vae.reconstruct(x_adv), vae.reconstruct(source), vae.reconstruct(target)
    nearer = (ra - rt).flatten(1).norm(dim=1) < (ra - rs).flatten(1).norm(dim=1)
    return float(nearer.float().mean())


@torch.no_grad()
def decoded(vae: torch.nn.Module, z: Tensor) -> Tensor:
    """The decoder's most likely image for each code, in [0, 1] (for the report's pictures)."""
    logits = vae.decoder(z)
    return logits.argmax(1, keepdim=True).float() / (logits.shape[1] - 1)


@torch.no_grad()
def nll(decoder: torch.nn.Module, x: Tensor, z: Tensor, levels: Callable[[Tensor], Tensor]) -> Tensor:
    """-log p(x|z) per image in nats (the categorical likelihood of x's 16 levels), float64."""
    return rec_per_image(decoder(z), levels(x))


def log_target(decoder: torch.nn.Module, x: Tensor, z: Tensor, levels: Callable[[Tensor], Tensor]) -> Tensor:
    """log N(z; 0, I) + log p(x|z) per row, without the normal's constant, in float64."""
    return -0.5 * (z.double() ** 2).sum(1) - nll(decoder, x, z, levels)


def returned_images(got: Any, like: Tensor, call: str) -> Tensor:
    """An attack's result as a finite float tensor of the input's shape."""
    if not isinstance(got, Tensor):
        fail(f"{call} returned {describe(got)}; expected a tensor of the images' shape {list(like.shape)}")
    if tuple(got.shape) != tuple(like.shape):
        fail(f"{call} returned a tensor of shape {list(got.shape)}; expected the images' shape {list(like.shape)}")
    if not got.is_floating_point() or not bool(torch.isfinite(got).all()):
        fail(f"{call} returned {preview(got)}; expected finite floating-point images")
    return got.float()
