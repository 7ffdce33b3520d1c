"""Hypothesis strategies for the part-2 property checks, named for the data they make.

As in part 1, tensors are not drawn element by element: a strategy draws a shape, a
few scalars and a seed, and builds the tensors from a seeded ``torch.Generator``, so an
example is short to describe and exactly reproducible. Images are float32 pixels in [0, 1]
with a share exactly 0 or 1 (FashionMNIST has many), where clamping matters, in the
edition's input space (normalised, [B, 3, H, W], for the UvA template: :func:`fit_shape`).

``graded`` is the settings decorator every property check uses: the derandomised
profile of ``autograder/checks/conftest.py``, no shrinking (each example is a call into
the worker, the first failing one is readable) and one reported failure.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from hypothesis import Phase, settings
from hypothesis import strategies as st
from torch import Tensor

from autograder.checks.part2 import drivers_part2

graded = settings(phases=(Phase.explicit, Phase.generate), report_multiple_bugs=False)

SEEDS = st.integers(min_value=0, max_value=2**31 - 1)


def fit_shape(shape: tuple[int, ...]) -> tuple[int, ...]:
    """``shape`` made one the input space takes: normalised inputs have its channels, [B, C, H, W]."""
    space = drivers_part2.space()
    if not space.normalised:
        return tuple(shape)
    if len(shape) == 2:
        return (shape[0], space.channels, 1, shape[1])
    return (shape[0], space.channels, *shape[2:])


def images(shape: tuple[int, ...], seed: int, saturated: float = 0.2) -> Tensor:
    """float32 images of ``shape``: pixels in [0, 1], a ``saturated`` share exactly 0 or 1, in the
    input space's units (``shape`` must fit it: :func:`fit_shape`)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(shape, generator=g)
    u = torch.rand(shape, generator=g)
    x = torch.where(u < saturated / 2, torch.zeros_like(x), x)
    x = torch.where(u > 1 - saturated / 2, torch.ones_like(x), x)
    return drivers_part2.space().normalise(x) if len(shape) > 2 else x


def gradients(shape: tuple[int, ...], seed: int, zeros: float = 0.2) -> Tensor:
    """float32 'gradients' of ``shape``: normal values of mixed magnitude, a ``zeros`` share exactly 0."""
    g = torch.Generator().manual_seed(seed)
    grad = torch.randn(shape, generator=g) * torch.exp(torch.randn(shape, generator=g) * 2)
    return torch.where(torch.rand(shape, generator=g) < zeros, torch.zeros_like(grad), grad)


def labels(n: int, seed: int, classes: int = 10) -> Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, classes, (n,), generator=g)


@dataclass(frozen=True)
class Example:
    """A generated input: its values and a one-line description for messages."""

    values: tuple[Any, ...]
    text: str

    def __repr__(self) -> str:  # hypothesis prints the falsifying example with repr
        return self.text


def image_shapes(max_batch: int = 6) -> st.SearchStrategy[tuple[int, int, int, int]]:
    """``[B, C, H, W]``: B in 1..max_batch, C in {1, 3}, H, W in 2..12 (28x28 sometimes)."""
    small = st.tuples(st.integers(1, max_batch), st.sampled_from([1, 3]), st.integers(2, 12), st.integers(2, 12))
    mnist = st.tuples(st.integers(1, max_batch), st.just(1), st.just(28), st.just(28))
    return st.one_of(small, mnist)


@st.composite
def fgsm_inputs(draw: Any) -> Example:
    """``(image, data_grad, epsilon)``: image in [0, 1] (20% saturated), 20% zero gradients, epsilon in [0, 0.5]."""
    shape = fit_shape(draw(st.one_of(image_shapes(), st.tuples(st.integers(1, 6), st.integers(1, 40)))))
    eps = draw(st.sampled_from([0.0, 0.01, 0.03, 0.1, 0.25, 0.3, 0.5]))
    seed = draw(SEEDS)
    x, g = images(tuple(shape), seed), gradients(tuple(shape), seed + 1)
    where = "normalised pixels" if drivers_part2.space().normalised else "in [0, 1]"
    return Example((x, g, eps), f"image of shape {list(shape)} {where} (20% of pixels exactly 0 or 1), "
                                f"data_grad with 20% exact zeros, epsilon {eps} (seed {seed})")


@st.composite
def pgd_settings(draw: Any) -> Example:
    """``(shape, epsilon, alpha, num_iter, seed)`` for PGD on a linear classifier; steps often overshoot the ball."""
    shape = fit_shape(draw(image_shapes()))
    eps = draw(st.sampled_from([0.01, 0.03, 0.05, 0.1, 0.2, 0.3]))
    alpha = draw(st.sampled_from([0.25, 0.5, 1.0, 2.0])) * eps
    num_iter = draw(st.integers(1, 6))
    seed = draw(SEEDS)
    return Example((tuple(shape), eps, alpha, num_iter, seed),
                   f"data of shape {list(shape)} (pixels 20% saturated), epsilon {eps:g}, alpha {alpha:g}, "
                   f"num_iter {num_iter} on a linear classifier (seed {seed})")
