"""The measurements of part 3's smoke checks (3.2.2, 3.3.2, 3.5.2, 3.6.3), grader side: the
checks and ``tools/calibrate_part3.py`` measure with these same functions, so the calibrated
thresholds in grading.toml mean what the checks compute."""
from __future__ import annotations

from types import ModuleType
from typing import Any

import torch
from torch import Tensor

from autograder.checks.part1.vae_support import kld_per_image
from autograder.checks.part3 import helpers as H


def latent_strength(vae: torch.nn.Module, x: Tensor, adv: Tensor, epsilon: float, seed: int) -> tuple[float, float]:
    """(median SKL[q(z|adv), q(z|x)], the same for random sign noise of radius epsilon)."""
    clean = H.posterior(vae, x)
    attacked = float(H.skl(*H.posterior(vae, adv), *clean).median())
    noise = float(H.skl(*H.posterior(vae, H.sign_noise(x, epsilon, seed)), *clean).median())
    return attacked, noise


def defence_setup(vae: torch.nn.Module, x: Tensor, s: dict[str, Any]) -> tuple[Tensor, Tensor, Tensor]:
    """(images attacked by the grader's latent attack, z0 ~ q(z|x_adv), z ~ q(z|x)), seeded."""
    x_adv = H.pgd_on_skl(vae.encoder, x, None, float(s["epsilon"]), float(s["alpha"]), int(s["num_iter"]), seed=int(s["seed"]))
    g = torch.Generator().manual_seed(int(s["seed"]))
    mean_a, log_std_a = H.posterior(vae, x_adv)
    mean_c, log_std_c = H.posterior(vae, x)
    z0 = mean_a + torch.exp(log_std_a) * torch.randn(mean_a.shape, generator=g)
    z_clean = mean_c + torch.exp(log_std_c) * torch.randn(mean_c.shape, generator=g)
    return x_adv, z0, z_clean


def recovery(vae: torch.nn.Module, models: ModuleType, x: Tensor, z0: Tensor, z_t: Tensor,
             z_clean: Tensor) -> tuple[float, float, float, float]:
    """(-log p(x|z) at z0, after the defence, at the clean posterior; the fraction of the attack's
    cost recovered), means over the images in nats."""
    before, after, clean = (float(H.nll(vae.decoder, x, z.float(), models.to_levels).mean()) for z in (z0, z_t, z_clean))
    return before, after, clean, (before - after) / max(before - clean, 1e-9)


def beta_measure(vae: torch.nn.Module, models: ModuleType, held: Tensor, target: Tensor, s: dict[str, Any]) -> dict[str, float]:
    """Held-out negative ELBO and KL (nats per image) of a VAE trained in 3.6.3, and the
    grader's targeted attack's success rate on it."""
    g = torch.Generator().manual_seed(int(s["seed"]))
    mean, log_std = H.posterior(vae, held)
    z = mean + torch.exp(log_std) * torch.randn(mean.shape, generator=g)
    rec = float(H.nll(vae.decoder, held, z, models.to_levels).mean())
    kl = float(kld_per_image(mean, log_std).mean())
    adv = H.pgd_on_skl(vae.encoder, held, target, float(s["epsilon"]), float(s["alpha"]), int(s["num_iter"]))
    return {"elbo": rec + kl, "kl": kl, "success": H.success_rate(vae, adv, held, target)}
