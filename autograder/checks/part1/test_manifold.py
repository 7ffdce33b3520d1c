"""Checks of ``utils.visualize_manifold`` (Q1.10) on a decoder with known logits.

The worker builds :class:`drivers_part1_vae.KnownDecoder` (``z_dim = 2``; its logits
are a fixed function of z, ``0.3 * k * (a*z0 + b*z1)`` per pixel and level k) and
records every latent the student's function decodes. The grader computes the
expected grid itself: z on the standard-normal quantiles at (i + 0.5)/grid_size
(``scipy.stats.norm.ppf``), softmax, expected level / 15, ``make_grid(nrow=grid_size)``.
Transposed or flipped layouts of the latent grid, any padding and pad value, and one or
three channels are accepted (the original assignment fixed none of them); the
quantiles, the expected values and one tile per latent, row by row, are required.
"""
from __future__ import annotations

import math

import numpy as np
import torch

from autograder.checks.part1 import mistakes
from autograder.checks.part1 import vae_support as vs
from autograder.registry import check, fail, tags

MANIFOLD = "part1.utils.visualize_manifold"
SIZES = (5, 20)


def _run(part1, grid_size: int) -> tuple[dict, str]:
    call = f"visualize_manifold(decoder, grid_size={grid_size}) with the grader's known decoder (z_dim = 2)"
    return part1.driver(f"{vs.DRIVER}.manifold_known", grid_size), call


def _make_grid_shape(n: int, nrow: int, padding: int = 2) -> tuple[int, int, int]:
    cols = min(nrow, n)
    rows = math.ceil(n / cols)
    return (3, rows * (28 + padding) + padding, cols * (28 + padding) + padding)


def _shape_mistake(shape: tuple[int, ...], g: int) -> str | None:
    if shape in ((g * g, 1, 28, 28), (g * g, 28, 28), (g * g, 3, 28, 28)):
        return "the images were returned, not the grid: return make_grid(images, nrow=grid_size)"
    if shape == _make_grid_shape(g * g, 8):
        return "make_grid called without nrow=grid_size (it puts 8 images per row by default)"
    return None


def _tiling_text(g: int) -> str:
    return (f"an image grid of {g} x {g} tiles of 28 x 28 (e.g. make_grid(images, nrow={g}), of shape "
            f"{list(vs.grid_shape(g))}; any padding, 1 or 3 channels)")


@check("part1.manifold.shape")
@tags(MANIFOLD)
def test_manifold_shape(part1):
    """The result is an image grid of grid_size x grid_size tiles of 28x28 (g = 5 and 20).

    make_grid's [3, 30*g + 2, 30*g + 2] is the usual form; any padding, pad value and 1 or 3
    identical channels are accepted (the assignment fixes none of them).
    """
    for g in SIZES:
        r, call = _run(part1, g)
        grid = r["grid"]
        if not isinstance(grid, torch.Tensor):
            fail(f"{call} returned {r['type']}; expected {_tiling_text(g)}")
        if not vs.grid_tiles(grid.double() if not grid.is_floating_point() else grid, g):
            fail(f"{call} returned {vs.describe(grid)}; expected {_tiling_text(g)} for {g * g} images [1, 28, 28]",
                 _shape_mistake(tuple(grid.shape), g))
        if not grid.is_floating_point():
            fail(f"{call} returned {vs.describe(grid)}; expected a float grid of expected pixel values in [0, 1]")
        z = r["z"]
        if z.shape[0] != g * g:
            fail(f"{call}: the decoder was given {z.shape[0]} latents in total; expected grid_size**2 = {g * g}")


def _diagnose(r: dict, grid: torch.Tensor, g: int) -> tuple[str | None, str]:
    """(named mistake, a line about the latents used) for a grid that matched no orientation."""
    z = r["z"].double()
    q = vs.quantiles(g)
    used = ""
    if z.shape == (g * g, 2):
        axis = np.unique(np.round(z[:, 0].numpy(), 6))
        used = f" The latents decoded on the first axis were {vs.values_text(axis)}; expected the quantiles {vs.values_text(q)}."
        named = mistakes.diagnose_manifold_latents(axis, g) or mistakes.diagnose_manifold_latents(
            np.unique(np.round(z[:, 1].numpy(), 6)), g)
        if named:
            return named, used
        if tuple(grid.shape) == vs.grid_shape(g):
            return mistakes.diagnose_manifold_grid(grid, vs.known_logits_of(z.float()), g), used
    return None, used


@check("part1.manifold.values")
@tags(MANIFOLD)
def test_manifold_values(part1, figures):
    """The grid's tiles equal the grader's: quantile latents, expected pixel value sum_k k*softmax_k/15.

    Checked for grid_size 5 and 20. Tolerance 1e-4 absolute on values in [0, 1]: float32
    softmax and latents (float32 vs float64 quantiles) move a value by < 1e-6; the
    smallest named mistake (dividing by 16 instead of 15) moves them by up to 0.06.
    """
    for g in SIZES:
        r, call = _run(part1, g)
        grid = r["grid"]
        if not isinstance(grid, torch.Tensor) or not vs.grid_tiles(grid, g):
            fail(f"{call} returned {vs.describe(grid) if isinstance(grid, torch.Tensor) else r['type']}; "
                 f"expected {_tiling_text(g)}, so its values cannot be compared",
                 _shape_mistake(tuple(grid.shape), g) if isinstance(grid, torch.Tensor) else None)
        matched, _, want = vs.match_orientation(grid, g, vs.known_logits_of, atol=1e-4)
        if g == min(SIZES) and grid.dim() == 3 and want.dim() == 3:
            figures.images(f"Your manifold beside the expected one (grid {g} x {g}, the grader's known decoder)",
                           [("yours", grid[None].float().clamp(0, 1)), ("expected", want[None].float().clamp(0, 1))])
        if matched:
            continue
        named, used = _diagnose(r, grid, g)
        if tuple(grid.shape) == tuple(want.shape):
            err = (grid.double() - want).abs().nan_to_num(float("inf"))
            c, y, x = (int(i) for i in np.unravel_index(int(err.argmax()), tuple(err.shape)))
            where = (f"largest difference at channel {c}, row {y}, column {x}: got {grid[c, y, x].item():.4g}, "
                     f"expected {want[c, y, x].item():.4g}")
        else:
            where = vs.grid_difference(grid, want)
        fail(f"{call}: the grid differs from the expected one ({where}; yours: {vs.stats_line(grid)}; "
             f"expected: {vs.stats_line(want)}).{used} Each image shows the expected level sum_k k*softmax_k/15 of "
             f"z = (q_r, q_c), q_i = norm.ppf((i + 0.5)/{g}).", named)
