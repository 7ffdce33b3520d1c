"""Trusted-side helpers of the VAE and manifold checks (the grading process only).

Everything a VAE check judges is computed here, in float64, from plain data the
worker sent back: the reconstruction loss and KL term from captured encoder and
decoder outputs, the test bpd of a trained model from its encoder/decoder outputs
with the grader's own noise, the expected manifold grid from the known decoder (or
from the student's decoder's logits on the grader's latent grid).
"""
from __future__ import annotations

import math
from functools import lru_cache
from typing import Any, Callable, Iterable

import numpy as np
import torch
from torch import Tensor

from autograder.checks import reference
from autograder.checks.part1 import drivers_part1_vae as drv
from autograder.checks.part1.stat_tests import chi_square_pvalue, ks_normal_pvalue, normal_quantile
from autograder.registry import fail

LOG2E = math.log2(math.e)
PIXELS = 28 * 28
LEVELS = 16
DRIVER = "drivers_part1_vae"
L_REC_AT_ZERO = PIXELS * math.log(LEVELS)  # uniform categorical over 16 levels, summed over 784 pixels


# ============================================================================ values from the worker
def describe(value: Any) -> str:
    if isinstance(value, Tensor):
        return f"a {str(value.dtype).replace('torch.', '')} tensor of shape {list(value.shape)}"
    if isinstance(value, (list, tuple)):
        return f"a {type(value).__name__} of {len(value)}"
    return f"{type(value).__name__} {value!r}"[:160]


def as_scalar(value: Any, what: str, call: str) -> float:
    """A returned loss term as a float; fail unless it is a one-element floating tensor."""
    if not isinstance(value, Tensor):
        fail(f"{call}: {what} is {describe(value)}; expected a scalar (0-dim) float tensor "
             "(a Python number has no gradient, so it cannot be trained on)")
    if value.numel() != 1:
        fail(f"{call}: {what} is {describe(value)}; expected a scalar: the batch mean of the per-image values")
    if not value.is_floating_point():
        fail(f"{call}: {what} is {describe(value)}; expected a floating-point scalar")
    x = float(value.reshape(()))
    if not math.isfinite(x):
        fail(f"{call}: {what} is {x}; expected a finite number")
    return x


def loss_triple(report: dict[str, Any], call: str) -> tuple[float, float, float]:
    """(L_rec, L_reg, bpd) from a traced forward, or fail saying what came back."""
    out = report["returned"]
    if not isinstance(out, (list, tuple)) or len(out) != 3:
        fail(f"{call} returned {report['returned_type']} ({describe(out)}); expected a tuple (L_rec, L_reg, bpd)")
    return tuple(as_scalar(v, name, call) for v, name in zip(out, ("L_rec", "L_reg", "bpd")))  # type: ignore[return-value]


def close(got: float, want: float, rtol: float, atol: float) -> bool:
    return abs(got - want) <= atol + rtol * abs(want)


# ============================================================================ the grader's own losses
def rec_per_image(logits: Tensor, imgs: Tensor) -> Tensor:
    """Categorical cross-entropy of the true 4-bit values, summed over the pixels: ``[B]`` float64."""
    logp = torch.log_softmax(logits.double(), dim=1)
    return -logp.gather(1, imgs.long()).flatten(1).sum(1)


def kld_per_image(mean: Tensor, log_std: Tensor) -> Tensor:
    """KL(N(mean, exp(log_std)^2) || N(0, I)) summed over the latent dims: ``[B]`` float64."""
    m, l = mean.double(), log_std.double()
    return 0.5 * (torch.exp(2 * l) + m**2 - 1 - 2 * l).sum(-1)


def bpd_per_image(nll: Tensor, pixels: int = PIXELS) -> Tensor:
    return nll.double() * LOG2E / pixels


def random_images(n: int, seed: int) -> Tensor:
    """Uniformly random 4-bit images ``[n, 1, 28, 28]`` (long): inputs for the unit checks."""
    return torch.randint(0, LEVELS, (n, 1, 28, 28), generator=torch.Generator().manual_seed(seed))


# ============================================================================ smoke trainings
@lru_cache(maxsize=4)
def smoke_images(data_module: Any, n_train: int, n_test: int) -> tuple[Tensor, Tensor]:
    """Fixed subsets of 4-bit FashionMNIST as uint8 ``[N, 1, 28, 28]``, loaded with the instructor's data.py.

    Training images: the first ``n_train`` of the (fixed) training split; test images:
    the first ``n_test`` of the test split, never seen in training.
    """
    train, _ = data_module.load_split("fashionmnist", "train", download=False, limit=n_train)
    test, _ = data_module.load_split("fashionmnist", "test", download=False, limit=n_test)
    def four_bit(x: Tensor) -> Tensor:
        # 1,024 images at a time: to_4bit's float and long temporaries of all 8,192 at once
        # were ~150 MB, the grading process's largest allocation.
        return torch.cat([data_module.to_4bit(x[i:i + 1024]).to(torch.uint8)
                          for i in range(0, len(x), 1024)]).unsqueeze(1).contiguous()
    subsets = four_bit(train), four_bit(test)
    reference.drop_caches(data_module)  # keep only the subsets
    return subsets


def run_training(session: Any, model: Any, images: Tensor, steps: int, batch_size: int, seed: int,
                 chunk: int = 50) -> dict[str, Any]:
    """Train the worker's model for ``steps`` Adam steps (lr 1e-3) in calls of ``chunk`` steps.

    Each chunk's call seeds the worker's generator with ``seed + i`` (the noise of the
    reparameterisation differs between chunks but the run is reproducible). Stops early
    when a loss is not finite. Returns the driver's last report (losses, device, seconds).
    """
    training = session.driver(f"{DRIVER}.start_training", model, images, batch_size, 1e-3, seed, seed=seed, slow_ok=True)
    report: dict[str, Any] = {"losses": [], "device": "?", "seconds": 0.0}
    done, i = 0, 0
    while done < steps:
        n = min(chunk, steps - done)
        report = session.driver(f"{DRIVER}.train_steps", training, n, seed=seed + 1 + i, slow_ok=True)
        done, i = done + n, i + 1
        if not all(math.isfinite(v) for v in report["losses"]):
            break
    return report


DECODE_CHUNK = 128
# Expected images 32 at a time: a 20x20 grid's logits in float64 weigh 40 MB, the softmax and
# the product as much again each (chunks of 128 still cost ~40 MB at the run's memory peak).
EXPECT_CHUNK = 32


def test_bpd(session: Any, model: Any, images: Tensor, z_dim: int, seed: int, what: str) -> dict[str, float]:
    """Negative ELBO in bits per dimension of ``images`` under the worker's model, computed here.

    The worker only runs ``model.encoder`` and ``model.decoder``; the grader draws the
    latents ``z = mean + exp(log_std) * eps`` with its own generator (one sample per
    image) and computes cross-entropy + KL itself.
    """
    out = session.driver(f"{DRIVER}.encode", model, images)
    mean, log_std = out
    n = images.shape[0]
    for name, t in (("mean", mean), ("log_std", log_std)):
        if not isinstance(t, Tensor) or tuple(t.shape) != (n, z_dim):
            fail(f"{what}: the trained encoder returned {name} as {describe(t)} for {n} test images; "
                 f"expected shape [{n}, {z_dim}]")
        if not bool(torch.isfinite(t).all()):
            fail(f"{what}: the trained encoder returned non-finite {name} values on the test images "
                 "(the training diverged)")
    eps = torch.randn(n, z_dim, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    z = (mean.double() + torch.exp(log_std.double()) * eps).float()
    recs = []
    for lo in range(0, n, DECODE_CHUNK):  # in chunks: the logits of 512 images in float64 weigh ~100 MB
        hi = min(n, lo + DECODE_CHUNK)
        logits = session.driver(f"{DRIVER}.decode", model, z[lo:hi])
        if not isinstance(logits, Tensor) or tuple(logits.shape) != (hi - lo, LEVELS, 28, 28):
            fail(f"{what}: the trained decoder returned {describe(logits)} for {hi - lo} latents; "
                 f"expected [{hi - lo}, 16, 28, 28]")
        if not bool(torch.isfinite(logits).all()):
            fail(f"{what}: the trained decoder returned non-finite logits on the test latents (the training diverged)")
        recs.append(rec_per_image(logits, images[lo:hi].long()))
        del logits
    rec = torch.cat(recs)
    kl = kld_per_image(mean, log_std)
    return {"bpd": float(bpd_per_image(rec + kl).mean()), "rec": float(rec.mean()), "kl": float(kl.mean())}


# ============================================================================ the manifold
def quantiles(grid_size: int) -> np.ndarray:
    """Standard-normal quantiles at the percentiles (i + 0.5) / grid_size."""
    return normal_quantile((np.arange(grid_size) + 0.5) / grid_size)


# Orientations of the latent grid that we accept: the contract fixes row r, column c to
# z = (q_r, q_c), but the original assignment left the layout free, so transposing the
# grid or flipping an axis (q_{n-1-i} = -q_i) shows the same manifold and is accepted.
ORIENTATIONS: tuple[tuple[bool, int, int], ...] = tuple(
    (swap, s0, s1) for swap in (False, True) for s0 in (1, -1) for s1 in (1, -1))


def orientation_text(o: tuple[bool, int, int]) -> str:
    swap, s0, s1 = o
    a, b = ("q_c", "q_r") if swap else ("q_r", "q_c")
    return f"z = ({'-' if s0 < 0 else ''}{a}, {'-' if s1 < 0 else ''}{b})"


def grid_latents(grid_size: int, orientation: tuple[bool, int, int] = (False, 1, 1),
                 q: np.ndarray | None = None) -> Tensor:
    """Latents ``[grid_size**2, 2]`` (float32) in row-major image order for one orientation."""
    q = quantiles(grid_size) if q is None else q
    rows, cols = np.meshgrid(q, q, indexing="ij")
    swap, s0, s1 = orientation
    a, b = (cols, rows) if swap else (rows, cols)
    z = np.stack([s0 * a.reshape(-1), s1 * b.reshape(-1)], axis=1)
    return torch.as_tensor(z, dtype=torch.float32)


def expected_images(logits: Tensor) -> Tensor:
    """Expected pixel value / 15 of categorical logits ``[N, 16, H, W]``: ``[N, 1, H, W]`` float64."""
    levels = torch.arange(LEVELS, dtype=torch.float64).view(1, -1, 1, 1)
    return torch.cat([(torch.softmax(logits[i:i + EXPECT_CHUNK].double(), dim=1) * levels).sum(1, keepdim=True)
                      for i in range(0, max(len(logits), 1), EXPECT_CHUNK)]) / (LEVELS - 1)


def grid_of(images: Tensor, grid_size: int, padding: int = 2, pad_value: float = 0.0) -> Tensor:
    """``torchvision.utils.make_grid(images, nrow=grid_size)``'s layout, without importing torchvision.

    The grading process does not import torchvision: it costs ~90 MB of the container's
    768 MB and ~2 s. 1-channel images become 3 channels; one image comes back unpadded;
    images go row by row, ``grid_size`` per row, with ``padding`` pixels of ``pad_value``
    around each. ``tests/test_part1_vae.py`` proves the equality with make_grid.
    """
    if images.dim() == 3:
        images = images.unsqueeze(0)
    if images.shape[1] == 1:
        images = images.expand(-1, 3, -1, -1)
    n, c, h, w = images.shape
    if n == 1:
        return images[0].clone()
    cols = min(grid_size, n)
    rows = -(-n // cols)
    grid = images.new_full((c, rows * (h + padding) + padding, cols * (w + padding) + padding), pad_value)
    for k in range(n):
        y, x = divmod(k, cols)
        top, left = y * (h + padding) + padding, x * (w + padding) + padding
        grid[:, top:top + h, left:left + w] = images[k]
    return grid


def grid_shape(grid_size: int) -> tuple[int, int, int]:
    """What make_grid returns for grid_size**2 single-channel 28x28 images (padding 2; one image: no padding)."""
    if grid_size == 1:
        return (3, 28, 28)
    side = grid_size * 28 + (grid_size + 1) * 2
    return (3, side, side)


def grid_layouts(side: int, grid_size: int) -> list[tuple[int, int]]:
    """``(padding, offset)`` of every way ``grid_size`` tiles of 28 pixels can fill ``side`` pixels:
    make_grid's (padding around every tile, any width) and padding between the tiles only."""
    g, rest = grid_size, side - 28 * grid_size
    found = []
    if rest >= 0 and rest % (g + 1) == 0:
        found.append((rest // (g + 1), rest // (g + 1)))
    if g > 1 and rest >= 0 and rest % (g - 1) == 0 and (rest // (g - 1), 0) not in found:
        found.append((rest // (g - 1), 0))
    return found


def grid_tiles(grid: Tensor, grid_size: int) -> list[Tensor]:
    """The ``grid_size**2`` tiles ``[N, 28, 28]`` (float64, row-major) of an image grid, one candidate
    per layout that fits its size: any padding and pad value (the assignment fixes neither),
    1 or 3 identical channels, or a plain ``[H, W]`` image. Empty when nothing fits."""
    if not isinstance(grid, Tensor) or not grid.is_floating_point():
        return []
    if grid.dim() == 3 and grid.shape[0] in (1, 3):
        if grid.shape[0] == 3 and not bool(torch.allclose(grid[0], grid[1], atol=1e-6, equal_nan=True) and
                                           torch.allclose(grid[0], grid[2], atol=1e-6, equal_nan=True)):
            return []
        plane = grid[0]
    elif grid.dim() == 2:
        plane = grid
    else:
        return []
    plane = plane.double()
    rows, cols = grid_layouts(plane.shape[0], grid_size), grid_layouts(plane.shape[1], grid_size)
    out = []
    for pad_r, off_r in rows:
        for pad_c, off_c in cols:
            tiles = [plane[off_r + i * (28 + pad_r): off_r + i * (28 + pad_r) + 28,
                           off_c + j * (28 + pad_c): off_c + j * (28 + pad_c) + 28]
                     for i in range(grid_size) for j in range(grid_size)]
            out.append(torch.stack(tiles))
    return out


def grid_difference(got: Tensor, want: Tensor) -> str:
    """One line on how far ``got`` is from ``want`` (tile by tile when the layouts differ)."""
    if tuple(got.shape) == tuple(want.shape):
        err = (got.double() - want).abs().nan_to_num(float("inf"))
        return f"largest difference {err.max().item():.3g}"
    return f"your grid has shape {list(got.shape)}, the grader's {list(want.shape)}; compared tile by tile"


def match_orientation(got: Tensor, grid_size: int, logits_of: Callable[[Tensor], Tensor], atol: float) -> tuple[bool, Any, Tensor]:
    """Compare ``got``'s tiles with the expected images in each accepted orientation (the contract's first).

    ``logits_of(z)`` gives the decoder's logits for latents ``z``. Any padding and pad
    value is accepted (see :func:`grid_tiles`). Returns (matched, orientation, expected
    grid of the contract's orientation, laid out as make_grid does).
    """
    first = None
    candidates = grid_tiles(got, grid_size)
    for o in ORIENTATIONS:
        images = expected_images(logits_of(grid_latents(grid_size, o)))
        if first is None:
            first = grid_of(images, grid_size)
        for tiles in candidates:
            if bool(torch.isfinite(tiles).all()) and float((tiles - images[:, 0]).abs().max()) <= atol:
                return True, o, first
    assert first is not None
    return False, None, first


def known_logits_of(z: Tensor) -> Tensor:
    return drv.known_logits(z.float())


def equally_spaced(values: np.ndarray) -> bool:
    d = np.diff(np.sort(values))
    return values.size >= 3 and bool(np.all(np.isfinite(d))) and bool(np.allclose(d, d[0], rtol=1e-4, atol=1e-6))


def stats_line(t: Tensor) -> str:
    t = t.double()
    fin = t[torch.isfinite(t)]
    extra = f", {int((~torch.isfinite(t)).sum())} non-finite" if fin.numel() < t.numel() else ""
    if fin.numel() == 0:
        return "all values non-finite"
    return f"min {fin.min().item():.4g}, max {fin.max().item():.4g}, mean {fin.mean().item():.4g}{extra}"


def values_text(values: Iterable[float], n: int = 6) -> str:
    v = list(values)
    body = ", ".join(f"{x:.4g}" for x in v[:n])
    return f"[{body}{', ...' if len(v) > n else ''}]"


# ============================================================================ VAE.sample
SAMPLE_TYPES = 4


def sample_pattern() -> Tensor:
    """Which of the :data:`SAMPLE_TYPES` distributions each pixel ``(i, j)`` gets: ``(i + 2j) % 4``
    (not symmetric in i and j, so a transposed image is caught too)."""
    i = torch.arange(28).view(-1, 1)
    j = torch.arange(28).view(1, -1)
    return (i + 2 * j) % SAMPLE_TYPES


def sample_logits() -> Tensor:
    """Known decoder logits ``[16, 28, 28]`` (float64) for the sampling checks: four distinct
    per-pixel distributions (increasing, peaked at 3, two-peaked, irregular), laid out by
    :func:`sample_pattern`; none puts its mass on a single level, so the argmax is far off."""
    k = torch.arange(LEVELS, dtype=torch.float64)
    irregular = torch.randn(LEVELS, generator=torch.Generator().manual_seed(7), dtype=torch.float64)
    kinds = torch.stack([
        0.25 * k,
        -((k - 3) ** 2) / 12,
        1.5 * (torch.exp(-(k**2) / 6) + torch.exp(-((k - 15) ** 2) / 6)),
        irregular,
    ])  # [4, 16]
    return kinds[sample_pattern()].permute(2, 0, 1).contiguous()


def chi_square_pvalues(samples: Tensor, logits: Tensor, min_expected: float = 5.0) -> list[tuple[float, Tensor, Tensor]]:
    """Pearson chi-square test of the sampled levels against the softmax, one per pixel type.

    ``samples`` ``[B, 28, 28]`` (integer values), ``logits`` ``[16, 28, 28]``. The pixels of
    one type share a distribution, so their counts pool into 16 cells; cells expected
    to hold fewer than ``min_expected`` draws are merged (the chi-square approximation
    needs about 5 per cell). Returns ``(p-value, observed counts, expected counts)`` per type.
    """
    probs = torch.softmax(logits.double(), dim=0)  # [16, 28, 28]
    pattern = sample_pattern()
    out = []
    for t in range(SAMPLE_TYPES):
        mask = pattern == t
        p = probs[:, mask][:, 0]  # every pixel of the type has the same distribution
        values = samples[:, mask].reshape(-1).long()
        observed = torch.bincount(values.clamp(0, LEVELS - 1), minlength=LEVELS).double()
        expected = p * values.numel()
        small = expected < min_expected
        obs = torch.cat([observed[~small], observed[small].sum().view(1)]) if small.any() else observed
        exp = torch.cat([expected[~small], expected[small].sum().view(1)]) if small.any() else expected
        keep = exp > 0
        extra = float(obs[~keep].sum())  # draws where the softmax has no mass at all
        if extra > 0:
            out.append((0.0, observed, expected))
            continue
        pvalue = chi_square_pvalue(obs[keep], exp[keep])
        out.append((pvalue, observed, expected))
    return out


def ks_pvalue(x: Tensor) -> float:
    """Kolmogorov-Smirnov p-value of the values of ``x`` against N(0, 1) (0 for non-finite values)."""
    return ks_normal_pvalue(x)
