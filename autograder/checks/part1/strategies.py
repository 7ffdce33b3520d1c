"""Hypothesis strategies for the part-1 function checks, named for the data they make.

Tensors are not drawn element by element (slow, and shrinking a float tensor says
little): a strategy draws a *shape* and a *seed* and builds the tensor from a seeded
``torch.Generator``, so an example is small to describe ("shape (3, 4, 7), seed 12")
and exactly reproducible. Every tensor is float32, as the student's code sees it in
training; the grader computes its expectations in float64 from the same values.

``graded`` is the settings decorator every property check uses: the derandomised
profile of ``autograder/checks/conftest.py`` plus two choices that keep a failing
submission cheap and its message clear: no shrinking (each example is a call into
the worker; the first failing example is already a readable one) and one reported
failure (several distinct ones would arrive as an ExceptionGroup).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from hypothesis import Phase, settings
from hypothesis import strategies as st
from torch import Tensor

graded = settings(phases=(Phase.explicit, Phase.generate), report_multiple_bugs=False)

SEEDS = st.integers(min_value=0, max_value=2**31 - 1)

# Realistic ranges. log_std of a VAE encoder rarely leaves [-3, 2] (std 0.05 .. 7.4);
# beyond it exp(2*log_std) dominates every other term and hides mistakes in them.
LOG_STD_RANGE = (-3.0, 2.0)
MEAN_RANGE = (-4.0, 4.0)
LOGVAR_RANGE = (-4.0, 3.0)


def uniform(shape: tuple[int, ...], low: float, high: float, seed: int) -> Tensor:
    """float32 tensor of ``shape`` with values uniform in [low, high), from ``seed``."""
    g = torch.Generator().manual_seed(seed)
    return torch.rand(shape, generator=g, dtype=torch.float64).mul(high - low).add(low).float()


@dataclass(frozen=True)
class Example:
    """A generated input: its tensors and a one-line description for messages."""

    tensors: tuple[Any, ...]
    text: str

    def __repr__(self) -> str:  # hypothesis prints the falsifying example with repr
        return self.text


def latent_shapes(min_dims: int = 1, max_dims: int = 4, max_side: int = 5, max_last: int = 16) -> st.SearchStrategy[tuple[int, ...]]:
    """Shapes ``[..., D]``: up to ``max_dims`` dims, leading sides in 1..max_side, D in 1..max_last."""
    return st.integers(min_dims, max_dims).flatmap(
        lambda n: st.tuples(*[st.integers(1, max_side)] * (n - 1), st.integers(1, max_last)))


@st.composite
def gaussian_params(draw: Any, shapes: st.SearchStrategy[tuple[int, ...]] | None = None) -> Example:
    """``(mean, log_std)`` of a diagonal Gaussian, same shape; log_std in LOG_STD_RANGE."""
    shape = draw(shapes if shapes is not None else latent_shapes())
    seed = draw(SEEDS)
    mean = uniform(shape, *MEAN_RANGE, seed)
    log_std = uniform(shape, *LOG_STD_RANGE, seed + 1)
    return Example((mean, log_std), f"mean, log_std of shape {tuple(shape)} (uniform in {MEAN_RANGE}, {LOG_STD_RANGE}; seed {seed})")


@st.composite
def elbo_batches(draw: Any) -> Example:
    """``(elbo [B], img_shape [B, C, H, W])`` with C in {1, 3, 16} and H, W in 4..64 (rarely 28x28)."""
    b = draw(st.integers(1, 9))
    c = draw(st.sampled_from([1, 3, 16]))
    h = draw(st.integers(4, 64))
    w = draw(st.integers(4, 64))
    seed = draw(SEEDS)
    elbo = uniform((b,), 0.0, 5000.0, seed)
    return Example((elbo, [b, c, h, w]), f"elbo of shape [{b}] (uniform in [0, 5000], seed {seed}), img_shape {[b, c, h, w]}")


@st.composite
def bernoulli_data(draw: Any) -> Example:
    """``(mu, target)`` of shape [B, D]: mu in [1e-3, 1-1e-3]; target binary or in [0, 1]."""
    b, d = draw(st.integers(1, 8)), draw(st.integers(1, 50))
    seed = draw(SEEDS)
    binary = draw(st.booleans())
    mu = uniform((b, d), 1e-3, 1 - 1e-3, seed)
    target = uniform((b, d), 0.0, 1.0, seed + 1)
    if binary:
        target = (target > 0.5).float()
    kind = "binary" if binary else "in [0, 1]"
    return Example((mu, target), f"mu, target of shape [{b}, {d}] (mu in [1e-3, 1-1e-3], target {kind}; seed {seed})")


@st.composite
def normal_points(draw: Any) -> Example:
    """``(mu, logvar, z)`` of shape [B, D]: mu, z in MEAN_RANGE, logvar in LOGVAR_RANGE."""
    b, d = draw(st.integers(1, 8)), draw(st.integers(1, 32))
    seed = draw(SEEDS)
    mu = uniform((b, d), *MEAN_RANGE, seed)
    logvar = uniform((b, d), *LOGVAR_RANGE, seed + 1)
    z = uniform((b, d), *MEAN_RANGE, seed + 2)
    return Example((mu, logvar, z), f"mu, logvar, z of shape [{b}, {d}] (logvar in {LOGVAR_RANGE}; seed {seed})")


@st.composite
def gaussian_pairs(draw: Any) -> Example:
    """``(mu_q, logvar_q, mu_p, logvar_p)`` of shape [B, D] for two diagonal Gaussians."""
    b, d = draw(st.integers(1, 8)), draw(st.integers(1, 32))
    seed = draw(SEEDS)
    t = (uniform((b, d), *MEAN_RANGE, seed), uniform((b, d), *LOGVAR_RANGE, seed + 1),
         uniform((b, d), *MEAN_RANGE, seed + 2), uniform((b, d), *LOGVAR_RANGE, seed + 3))
    return Example(t, f"mu_q, logvar_q, mu_p, logvar_p of shape [{b}, {d}] (logvar in {LOGVAR_RANGE}; seed {seed})")


@st.composite
def log_weight_rows(draw: Any, low: float = -20.0, high: float = 20.0, max_k: int = 50) -> Example:
    """``y [B, K]`` with values uniform in [low, high): log-weights for log_mean_exp."""
    b, k = draw(st.integers(1, 8)), draw(st.integers(1, max_k))
    seed = draw(SEEDS)
    return Example((uniform((b, k), low, high, seed),), f"y of shape [{b}, {k}] (uniform in [{low:g}, {high:g}], seed {seed})")


@st.composite
def importance_terms(draw: Any) -> Example:
    """``(log p(x|z), log p(z), log q(z|x))``, each [B, K], at the magnitudes of a 784-pixel VAE."""
    b, k = draw(st.integers(1, 8)), draw(st.integers(1, 64))
    seed = draw(SEEDS)
    t = (uniform((b, k), -900.0, -50.0, seed), uniform((b, k), -40.0, -2.0, seed + 1),
         uniform((b, k), -40.0, 15.0, seed + 2))
    return Example(t, f"log_px_given_z, log_pz, log_qz_given_x of shape [{b}, {k}] "
                      f"(uniform in [-900, -50], [-40, -2], [-40, 15]; seed {seed})")


@st.composite
def shifts(draw: Any) -> float:
    """Offsets c for shift-equivariance, spanning +-1e4 (exactly representable in float32)."""
    return float(draw(st.sampled_from([-1e4, -2500.0, -100.0, 0.0, 37.5, 1000.0, 1e4])))
