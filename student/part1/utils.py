"""Helpers used by the VAE trainers: reparameterisation, KL term, bits per dimension, manifold plot.

Graded file. Implement the four functions below; their docstrings are the contract
(shapes, dtypes, maths). ``torch.distributions`` is not allowed in this assignment:
write the formulas with plain tensor operations.
"""
from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor


def sample_reparameterize(mean: Tensor, std: Tensor) -> Tensor:
    """Draw z ~ N(mean, std^2) with the reparameterisation trick.

    The randomness is moved into a parameter-free noise tensor,
    ``eps ~ N(0, I)`` (from ``torch.randn`` / ``torch.randn_like``), and the sample is
    the deterministic, differentiable map ``z = mean + std * eps``. Gradients
    therefore flow to both ``mean`` and ``std``.

    Args:
        mean: float tensor of any shape, the means of independent Gaussians.
        std: float tensor of the same shape, their standard deviations (``>= 0``;
            note: the *standard deviation*, not its logarithm).

    Returns:
        z: float tensor with the shape of ``mean``; one sample per element.
    """
    assert not (std < 0).any().item(), (
        "sample_reparameterize got a negative std: did you pass log_std instead of std = exp(log_std)?"
    )
    raise NotImplementedError('sample_reparameterize (Q1.7) is not implemented yet: write your code here, in part1/utils.py.')


def KLD(mean: Tensor, log_std: Tensor) -> Tensor:
    """KL divergence from N(mean, sigma^2) to the standard normal prior, summed over the last dim.

    With ``sigma = exp(log_std)``, for each independent coordinate

        KL(N(mu, sigma^2) || N(0, 1)) = 0.5 * (sigma^2 + mu^2 - 1 - log sigma^2)
                                      = 0.5 * (exp(2*log_std) + mean^2 - 1 - 2*log_std)

    and the coordinates along the LAST dimension (the latent dimension) are summed.
    The result is >= 0 and equals 0 exactly when ``mean == 0`` and ``log_std == 0``.

    Args:
        mean: float tensor ``[..., D]`` (any number of leading dims, e.g. ``[B, z_dim]``).
        log_std: float tensor of the same shape, the log standard deviations.

    Returns:
        float tensor ``[...]``: one dimension fewer than the inputs (``[B]`` for ``[B, D]``).
    """
    raise NotImplementedError('KLD (Q1.7) is not implemented yet: write your code here, in part1/utils.py.')


def elbo_to_bpd(elbo: Tensor, img_shape: torch.Size | tuple[int, ...]) -> Tensor:
    """Convert a negative ELBO in nats per image into bits per dimension (bpd).

    ``elbo`` here is the *loss* ``L_rec + L_reg`` (a negative log-likelihood bound,
    measured in nats, summed over all pixels of one image). Dividing by ``ln 2``
    (i.e. multiplying by ``log2(e)``) turns nats into bits, and dividing by the number
    of dimensions of one image, ``C * H * W``, makes it per dimension:

        bpd = elbo * log2(e) / (C * H * W)

    Args:
        elbo: float tensor ``[B]`` (any shape works: the map is element-wise).
        img_shape: the batch's image shape ``[B, C, H, W]``; only ``C, H, W`` are used.

    Returns:
        float tensor shaped like ``elbo``.
    """
    raise NotImplementedError('elbo_to_bpd (Q1.7) is not implemented yet: write your code here, in part1/utils.py.')


@torch.no_grad()
def visualize_manifold(decoder: torch.nn.Module, grid_size: int = 20) -> Tensor:
    """Picture the decoder's output over a 2-D latent space as one grid of images.

    Latent points: let ``q_i = Phi^{-1}((i + 0.5) / grid_size)`` for ``i = 0..grid_size-1``
    be standard-normal quantiles (``scipy.stats.norm.ppf``), so that every point sits
    in the middle of an equal-probability cell of the prior. The image in grid row ``r``
    and column ``c`` is decoded from ``z = (q_r, q_c)``; images are ordered row by row.

    Each image shows the decoder's *expected* pixel value rather than a random sample:
    with ``p_k`` the softmax over the 16 logits of a pixel, the value is
    ``E[x] / 15 = sum_k k * p_k / 15``, a float in ``[0, 1]``.

    Args:
        decoder: a ``CNNDecoder`` with ``z_dim == 2`` (it exposes ``decoder.device``);
            maps ``[N, 2]`` latents to logits ``[N, 16, 28, 28]``.
        grid_size: number of images along each axis (``grid_size**2`` images in total).

    Returns:
        the float tensor returned by ``torchvision.utils.make_grid(images, nrow=grid_size)``
        (shape ``[3, H, W]``, values in ``[0, 1]``) where ``images`` is
        ``[grid_size**2, 1, 28, 28]``.
    """
    # Imported here rather than at the top: importing utils stays light (~130 MB and
    # ~2 s less for every script and test that only needs the other functions).
    from scipy.stats import norm
    from torchvision.utils import make_grid

    raise NotImplementedError('visualize_manifold (Q1.10) is not implemented yet: write your code here, in part1/utils.py.')
