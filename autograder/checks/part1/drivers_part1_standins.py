"""Stand-ins for part 1's graded functions (worker side): one mistake, one deduction.

While a check grades one function, the worker replaces the graded functions it calls
(``depends`` in grading.toml) by the stand-ins here (``drivers_common.use_standins``), so a
``VAE.forward`` check never pays for a missing ``KLD``, a wrong ``elbo_to_bpd`` or an
unfinished ``CNNEncoder``. The function stand-ins compute exactly what their docstrings in
the handout state (the maths is given there; these add nothing a student does not have).
The encoder and decoder stand-ins are small MLPs, not the CNNs of question 1.8: they make
the smoke training judge the student's ``VAE.forward`` with a model the grader knows.

A stand-in runs only while it is installed (``drivers_common.standin``): a reference to one
kept by student code fails when called from the student's own function's checks.
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn

from drivers_common import standin

LOG2E = math.log2(math.e)
LOG_2PI = math.log(2 * math.pi)
IMG_PIXELS = 28 * 28


@standin("utils.sample_reparameterize")
def sample_reparameterize(mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """``mean + std * eps`` with ``eps ~ N(0, I)`` from ``torch.randn_like``; refuses a negative std."""
    if bool((std < 0).any()):
        raise AssertionError("sample_reparameterize got a negative std: pass std = exp(log_std), not log_std")
    return mean + std * torch.randn_like(std)


@standin("utils.KLD")
def KLD(mean: torch.Tensor, log_std: torch.Tensor) -> torch.Tensor:
    """KL(N(mean, exp(log_std)^2) || N(0, I)) summed over the last dimension."""
    return 0.5 * (torch.exp(2 * log_std) + mean**2 - 1 - 2 * log_std).sum(dim=-1)


@standin("utils.elbo_to_bpd")
def elbo_to_bpd(elbo: torch.Tensor, img_shape: torch.Size | tuple[int, ...]) -> torch.Tensor:
    """``elbo * log2(e) / prod(img_shape[1:])``."""
    return elbo * LOG2E / math.prod(int(d) for d in tuple(img_shape)[1:])


@standin("estimators.log_mean_exp")
def log_mean_exp(y: torch.Tensor) -> torch.Tensor:
    """``log(mean(exp(y)))`` over the last dimension, stable for any magnitude."""
    return torch.logsumexp(y, dim=-1) - math.log(y.shape[-1])


@standin("estimators.log_likelihood_normal")
def log_likelihood_normal(mu: torch.Tensor, logvar: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """Diagonal Gaussian log-density of ``z`` summed over the last dimension (with the 2 pi constant)."""
    return (-0.5 * (LOG_2PI + logvar + (z - mu).pow(2) * torch.exp(-logvar))).sum(dim=-1)


@standin("estimators.log_likelihood_bernoulli")
def log_likelihood_bernoulli(mu: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Bernoulli log-likelihood of ``target`` under probabilities ``mu``, summed over the last dimension."""
    return (target * torch.log(mu) + (1 - target) * torch.log1p(-mu)).sum(dim=-1)


# ---------------------------------------------------------------------------- encoder / decoder
HIDDEN = 256


@standin("cnn_encoder_decoder.CNNEncoder")
class CNNEncoder(nn.Module):
    """The grader's encoder in place of yours: an MLP on the 4-bit pixels scaled to [-1, 1]."""

    def __init__(self, num_input_channels: int = 1, num_filters: int = 32, z_dim: int = 20) -> None:
        super().__init__()
        self.z_dim = z_dim
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(num_input_channels * IMG_PIXELS, HIDDEN), nn.GELU(),
                                 nn.Linear(HIDDEN, 2 * z_dim))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.net(x.float() * (2.0 / 15.0) - 1.0)
        mean, log_std = h.chunk(2, dim=-1)
        return mean, log_std


@standin("cnn_encoder_decoder.CNNDecoder")
class CNNDecoder(nn.Module):
    """The grader's decoder in place of yours: an MLP from z to 16 logits per pixel."""

    def __init__(self, num_input_channels: int = 16, num_filters: int = 32, z_dim: int = 20) -> None:
        super().__init__()
        self.channels = num_input_channels
        self.net = nn.Sequential(nn.Linear(z_dim, HIDDEN), nn.GELU(), nn.Linear(HIDDEN, num_input_channels * IMG_PIXELS))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z).reshape(z.shape[0], self.channels, 28, 28)

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device


# Key: "module.name" as the worker imports it -> the stand-in.
STANDINS = {
    "utils.sample_reparameterize": sample_reparameterize,
    "utils.KLD": KLD,
    "utils.elbo_to_bpd": elbo_to_bpd,
    "estimators.log_mean_exp": log_mean_exp,
    "estimators.log_likelihood_normal": log_likelihood_normal,
    "estimators.log_likelihood_bernoulli": log_likelihood_bernoulli,
    "cnn_encoder_decoder.CNNEncoder": CNNEncoder,
    "cnn_encoder_decoder.CNNDecoder": CNNDecoder,
}
