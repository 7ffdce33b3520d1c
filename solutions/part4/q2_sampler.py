"""Samplers of the 2-D toy distributions of problem 2 (given; not graded).

``distribution1(theta, batch_size)`` yields batches of the distribution of (theta, U) with
U ~ U[0, 1]: the classic pair (theta = 0 against theta != 0) whose Wasserstein-1 distance is
|theta| while f-divergences saturate. ``gaussians(mean, batch_size)`` yields N(mean, I) batches
(W1 between N(a, I) and N(b, I) is ||a - b||).
"""
import torch


def distribution1(theta: float, batch_size: int = 512, seed: int | None = None):
    g = torch.Generator().manual_seed(seed) if seed is not None else None
    while True:
        u = torch.rand(batch_size, 1, generator=g)
        yield torch.cat([torch.full_like(u, float(theta)), u], dim=1)


def gaussians(mean, batch_size: int = 512, seed: int | None = None):
    g = torch.Generator().manual_seed(seed) if seed is not None else None
    mean = torch.as_tensor(mean, dtype=torch.float32)
    while True:
        yield mean + torch.randn(batch_size, mean.numel(), generator=g)
