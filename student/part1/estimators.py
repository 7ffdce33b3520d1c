"""Log-likelihoods, KL divergences and the importance-weighted likelihood estimate.

Graded file. Conventions used throughout:

* ``B`` is the batch size, ``D`` the number of dimensions of one example (pixels or
  latent coordinates), ``S``/``K`` a number of Monte-Carlo / importance samples.
* Every function that takes ``[B, D]`` tensors returns ``[B]``: one value per example,
  summed over its dimensions (tensors with more trailing dims, e.g. ``[B, C, H, W]``,
  are summed over everything but the batch dim).
* Gaussians are diagonal and parameterised by their mean ``mu`` and their
  *log-variance* ``logvar = log sigma^2``.
* ``torch.distributions`` is not allowed: write the densities out.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor

LOG_2PI = math.log(2 * math.pi)


def log_likelihood_bernoulli(mu: Tensor, target: Tensor) -> Tensor:
    """Log-likelihood of binary (or [0,1]-valued) data under independent Bernoullis.

        log p(x | mu) = sum_d [ x_d * log(mu_d) + (1 - x_d) * log(1 - mu_d) ]

    Args:
        mu: float tensor ``[B, D]``, Bernoulli means (probabilities) strictly inside (0, 1).
        target: float tensor ``[B, D]``, the observed values ``x`` in ``[0, 1]``.

    Returns:
        float tensor ``[B]``.
    """
    raise NotImplementedError('log_likelihood_bernoulli (Q1.11) is not implemented yet: write your code here, in part1/estimators.py.')


def log_likelihood_normal(mu: Tensor, logvar: Tensor, z: Tensor) -> Tensor:
    """Log-density of ``z`` under a diagonal Gaussian N(mu, diag(exp(logvar))).

        log N(z | mu, sigma^2) = sum_d [ -0.5 * log(2*pi) - 0.5 * logvar_d
                                         - 0.5 * (z_d - mu_d)^2 / exp(logvar_d) ]

    (the ``-0.5*log(2*pi)`` constant is included for every dimension).

    Args:
        mu: float tensor ``[B, D]``, the means.
        logvar: float tensor ``[B, D]``, the log-variances.
        z: float tensor ``[B, D]``, the points to evaluate.

    Returns:
        float tensor ``[B]``.
    """
    raise NotImplementedError('log_likelihood_normal (Q1.11) is not implemented yet: write your code here, in part1/estimators.py.')


def log_mean_exp(y: Tensor) -> Tensor:
    """``log(mean(exp(y)))`` over the last dimension, computed without overflow.

    With ``m = max_k y_k`` (per row),

        log (1/K) sum_k exp(y_k) = m + log (1/K) sum_k exp(y_k - m)

    Every exponent is then ``<= 0`` and the largest one is exactly 0, so the sum is
    in ``[1, K]``: no overflow for huge ``y`` (e.g. ``1e4``) and no ``log(0)`` for very
    negative ``y`` (e.g. ``-1e4``). The result is shift-equivariant:
    ``log_mean_exp(y + c) = log_mean_exp(y) + c``.

    Args:
        y: float tensor ``[B, K]`` (any leading dims allowed).

    Returns:
        float tensor ``[B]`` (the input shape without its last dim).
    """
    raise NotImplementedError('log_mean_exp (Q1.11) is not implemented yet: write your code here, in part1/estimators.py.')


def kl_gaussian_gaussian_analytic(mu_q: Tensor, logvar_q: Tensor, mu_p: Tensor, logvar_p: Tensor) -> Tensor:
    """Closed-form KL(q || p) between two diagonal Gaussians q = N(mu_q, var_q), p = N(mu_p, var_p).

        KL = sum_d 0.5 * [ logvar_p - logvar_q + (exp(logvar_q) + (mu_q - mu_p)^2) / exp(logvar_p) - 1 ]

    It is ``>= 0``, and 0 exactly when the two Gaussians coincide.

    Args:
        mu_q, logvar_q: float tensors ``[B, D]``, mean and log-variance of q.
        mu_p, logvar_p: float tensors ``[B, D]``, mean and log-variance of p.

    Returns:
        float tensor ``[B]``.
    """
    raise NotImplementedError('kl_gaussian_gaussian_analytic (Q1.11) is not implemented yet: write your code here, in part1/estimators.py.')


def kl_gaussian_gaussian_mc(
    mu_q: Tensor, logvar_q: Tensor, mu_p: Tensor, logvar_p: Tensor, num_samples: int = 1
) -> Tensor:
    """Monte-Carlo estimate of KL(q || p) between two diagonal Gaussians.

    Draw ``z_s ~ q`` for ``s = 1..S`` (reparameterised: ``z = mu_q + exp(0.5*logvar_q) * eps``,
    ``eps ~ N(0, I)`` from ``torch.randn``) and average the log-density ratio:

        KL(q || p) ~= (1/S) * sum_s [ log q(z_s) - log p(z_s) ]

    where ``log q`` and ``log p`` are full diagonal-Gaussian log-densities summed over D.
    The estimate is unbiased; its variance shrinks like ``1/S``.

    Args:
        mu_q, logvar_q, mu_p, logvar_p: float tensors, either ``[B, D]`` (then each is
            repeated to ``[B, num_samples, D]``) or already ``[B, S, D]`` (one set of
            parameters per sample; ``num_samples`` is then ignored unless ``S == 1``).
        num_samples: ``S`` when the inputs are ``[B, D]``.

    Returns:
        float tensor ``[B]``.
    """
    raise NotImplementedError('kl_gaussian_gaussian_mc (Q1.11) is not implemented yet: write your code here, in part1/estimators.py.')


def importance_weighted_log_likelihood(log_px_given_z: Tensor, log_pz: Tensor, log_qz_given_x: Tensor) -> Tensor:
    """Importance-sampling estimate of log p(x) from K samples z_k ~ q(z|x).

        log p(x) ~= log (1/K) sum_k [ p(x|z_k) p(z_k) / q(z_k|x) ]
                  = log_mean_exp_k( log p(x|z_k) + log p(z_k) - log q(z_k|x) )

    For K = 1 this is the (single-sample) ELBO; it tightens towards log p(x) as K grows.
    Use :func:`log_mean_exp` so that large log-weights do not overflow.

    Args:
        log_px_given_z: float tensor ``[B, K]``, log p(x | z_k).
        log_pz: float tensor ``[B, K]``, log p(z_k) under the prior.
        log_qz_given_x: float tensor ``[B, K]``, log q(z_k | x) under the encoder.

    Returns:
        float tensor ``[B]``.
    """
    raise NotImplementedError('importance_weighted_log_likelihood (Q1.11) is not implemented yet: write your code here, in part1/estimators.py.')


