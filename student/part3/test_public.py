"""Public tests for part 3 (attacks on the VAE, HMC, beta-VAE). Run from this folder's parent with

    pytest part3/test_public.py

A test of a function you have not written yet is SKIPPED (with the reason), not failed. The
grader checks more (on a trained VAE, the leapfrog's trajectory, the acceptance statistics,
short trainings).
"""
from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import beta_vae  # noqa: E402
import hmc  # noqa: E402
import latent_attacks  # noqa: E402
from models import VAE  # noqa: E402


def call(function, *args, **kwargs):
    """Call a student function; skip the test if it still raises NotImplementedError."""
    try:
        return function(*args, **kwargs)
    except NotImplementedError as error:
        pytest.skip(str(error))


def test_symmetric_kl_of_two_unit_gaussians():
    mean1, mean2 = torch.zeros(3, 4), torch.ones(3, 4)
    zeros = torch.zeros(3, 4)
    got = call(latent_attacks.symmetric_kl, mean1, zeros, mean2, zeros)
    assert got.shape == (3,)
    torch.testing.assert_close(got, torch.full((3,), 4.0))  # 2 * (1/2) per dimension, 4 dimensions
    same = call(latent_attacks.symmetric_kl, mean1, zeros, mean1, zeros)
    torch.testing.assert_close(same, torch.zeros(3))


@pytest.mark.parametrize("name", ["latent_attack", "targeted_latent_attack"])
def test_attacks_stay_in_the_ball(name):
    torch.manual_seed(0)
    vae = VAE().eval()
    x = torch.randint(0, 16, (4, 1, 28, 28)).float() / 15
    before = x.clone()
    args = (vae.encoder, x) + ((x.flip(0),) if name.startswith("targeted") else ()) + (0.05, 0.01, 5)
    adv = call(getattr(latent_attacks, name), *args)
    assert adv.shape == x.shape and not adv.requires_grad
    assert (adv - x).abs().max() <= 0.05 + 1e-6 and adv.min() >= 0 and adv.max() <= 1
    assert torch.equal(x, before)


def test_hmc_step_with_tiny_steps_accepts_almost_everything():
    torch.manual_seed(0)
    z = torch.randn(500, 2)
    new = call(hmc.hmc_step, z, lambda q: -0.5 * (q ** 2).sum(1), 1e-3, 5)
    assert new.shape == z.shape and not new.requires_grad
    assert (new != z).any(1).float().mean() > 0.95


def test_hmc_samples_a_gaussian():
    torch.manual_seed(0)
    z = torch.randn(2000, 2) + 3
    for _ in range(30):
        z = call(hmc.hmc_step, z, lambda q: -0.5 * (q ** 2).sum(1), 0.3, 5)
    assert z.mean(0).abs().max() < 0.15 and (z.var(0) - 1).abs().max() < 0.15


def test_hmc_defence_returns_codes():
    torch.manual_seed(0)
    vae = VAE().eval()
    x = torch.rand(3, 1, 28, 28)
    z = call(hmc.hmc_defence, vae.decoder, x, torch.randn(3, 8), 2, 0.01, 3)
    assert z.shape == (3, 8) and torch.isfinite(z).all()


def test_beta_vae_loss_of_a_prior_posterior_is_the_reconstruction():
    x = torch.randint(0, 16, (2, 1, 28, 28)).float() / 15
    logits = torch.zeros(2, 16, 28, 28)  # uniform over 16 levels: 784 ln 16 nats per image
    loss = call(beta_vae.beta_vae_loss, x, logits, torch.zeros(2, 8), torch.zeros(2, 8), 4.0)
    assert abs(float(loss) - 784 * torch.log(torch.tensor(16.0)).item()) < 1e-2
