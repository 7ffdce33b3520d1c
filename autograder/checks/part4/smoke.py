"""The two smoke trainings of the IFT6135 checks, grader side: their data and how their result
is measured (checks 2.1.4 and 3.1.3 of the ift6135 edition; ``tools/calibrate_ift6135.py`` measures the same way).

The trainings themselves run in the worker (``drivers_part4.wgan_smoke`` / ``simsiam_smoke``)
from initial weights the grader makes here; what comes back is a state dict, loaded into the
grader's own copy of the model and measured in this process.
"""
from __future__ import annotations

from types import ModuleType
from typing import Any

import torch
import torch.nn.functional as F

from autograder.checks import reference


def wgan_pools(s: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor, torch.Generator]:
    """Pools of samples of N(0, I) and N((shift, 0), I) for the training, and the generator that
    then draws the evaluation samples."""
    g = torch.Generator().manual_seed(int(s["seed"]))
    pool = int(s["pool"])
    offset = torch.tensor([float(s["shift"]), 0.0])
    return torch.randn(pool, 2, generator=g), torch.randn(pool, 2, generator=g) + offset, g


def wgan_setup(s: dict[str, Any], critic_class: Any) -> tuple[torch.nn.Module, tuple, torch.Generator]:
    """The critic before training (seeded), the arguments of ``drivers_part4.wgan_smoke`` (its
    initial weights, the pools and the settings) and the generator of the evaluation samples."""
    p, q, g = wgan_pools(s)
    seed = int(s["seed"])
    torch.manual_seed(seed)
    critic = critic_class(2)
    start = {k: v.clone() for k, v in critic.state_dict().items()}
    return critic, (start, p, q, int(s["steps"]), int(s["batch"]), float(s["lr"]), float(s["lam"]), seed), g


def wgan_measure(critic: torch.nn.Module, s: dict[str, Any], g: torch.Generator) -> tuple[float, float]:
    """(the critic's W1 estimate on fresh samples, its mean input-gradient norm at interpolates)."""
    n = int(s["eval_samples"])
    offset = torch.tensor([float(s["shift"]), 0.0])
    p, q = torch.randn(n, 2, generator=g), torch.randn(n, 2, generator=g) + offset
    t = torch.rand(n, 1, generator=g)
    xh = (t * p + (1 - t) * q).requires_grad_(True)
    (grad,) = torch.autograd.grad(critic(xh).sum(), xh)
    with torch.no_grad():
        estimate = float(critic(p).mean() - critic(q).mean())
    return estimate, float(grad.norm(dim=1).mean())


def simsiam_images(data: ModuleType, s: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
    """(training images, held-out images) of FashionMNIST's training split, float in [0, 1]."""
    start, count = (int(v) for v in s["eval_images"])
    images = torch.from_numpy(data.load_split_uint8("fashionmnist", "train", limit=start + count)[0]).float() / 255
    reference.drop_caches(data)  # the whole official split stays cached otherwise (~50 MB)
    return images[:int(s["train_images"])].clone(), images[start:start + count].clone()


def simsiam_setup(s: dict[str, Any], q3_model: Any, train: torch.Tensor) -> tuple[torch.nn.Module, tuple]:
    """The encoder before training (seeded; the grader's copy) and the arguments of
    ``drivers_part4.simsiam_smoke``: the images, the settings and the initial encoder and predictor."""
    dim, pred_dim, hidden, seed = int(s["dim"]), int(s["pred_dim"]), int(s["hidden"]), int(s["seed"])
    torch.manual_seed(seed)
    encoder, predictor = q3_model.mlp_encoder(dim, hidden=hidden), q3_model.mlp_predictor(dim, pred_dim)
    return encoder, (train, dim, pred_dim, hidden, int(s["steps"]), int(s["batch"]), float(s["lr"]), seed,
                     encoder.state_dict(), predictor.state_dict())


def collapse_std(encoder: torch.nn.Module, images: torch.Tensor, dim: int) -> float:
    """SimSiam's collapse measure: the per-dimension std of the l2-normalised encodings, times
    sqrt(dim) (about 1 when the encodings spread over the sphere, 0 when they collapse)."""
    encoder.eval()
    with torch.no_grad():
        z = F.normalize(encoder(images), dim=1)
    return float(z.std(0).mean()) * dim ** 0.5
