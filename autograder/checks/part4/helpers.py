"""What the IFT6135 problem 2 and 3 checks share: calling into the worker, reading one-element
results, and the data the checks are made of (seeded, so every run sees the same inputs)."""
from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from autograder.checks.part1.helpers_funcs import describe, preview  # noqa: F401  (generic message helpers)
from autograder.checks import probing
from autograder.checks.probing import one_element  # noqa: F401  (re-exported for the checks)

DRV = "drivers_part4"


def probe(session: Any, driver: str, *args: Any, call: str, slow_ok: bool = False) -> dict[str, Any]:
    """Run one of ``drivers_part4``'s drivers (see :func:`autograder.checks.probing.probe`)."""
    return probing.probe(session, f"{DRV}.{driver}", *args, call=call, slow_ok=slow_ok)


def gaussian(shape: tuple[int, ...], seed: int, scale: float = 1.0, shift: float = 0.0) -> Tensor:
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(shape, generator=g, dtype=torch.float64) * scale + shift).float()


def on_shells(n: int, shape: tuple[int, ...], seed: int, low: float = 0.2, high: float = 2.0) -> Tensor:
    """``n`` examples of ``shape`` in random directions with norms uniform in [low, high]: a
    penalty on ||x|| - 1 sees examples on both sides of 1."""
    g = torch.Generator().manual_seed(seed)
    u = torch.randn((n, *shape), generator=g, dtype=torch.float64)
    r = low + (high - low) * torch.rand(n, generator=g, dtype=torch.float64)
    u = u / u.reshape(n, -1).norm(dim=1).reshape(n, *([1] * len(shape)))
    return (u * r.reshape(n, *([1] * len(shape)))).float()


def shape_text(shape: tuple[int, ...]) -> str:
    return "[" + ", ".join(["B", *map(str, shape)]) + "]"
