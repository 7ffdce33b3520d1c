"""Encoders and augmentations for problem 3 on 28 x 28 grey images (given; not graded).

``mlp_encoder(num_classes)`` is ``f``: an MLP backbone (batch-normalised hidden layers) and a
linear projection to ``num_classes`` features. ``augment(x, generator)`` makes one random view of
a batch [B, 1, 28, 28] in [0, 1]: a random shift of up to 4 pixels, a horizontal flip with
probability 1/2, a random brightness/contrast change and Gaussian noise.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F


def mlp_encoder(num_classes: int = 64, hidden: int = 256, input_size: int = 784) -> nn.Module:
    return nn.Sequential(
        nn.Flatten(),
        nn.Linear(input_size, hidden, bias=False), nn.BatchNorm1d(hidden), nn.ReLU(inplace=True),
        nn.Linear(hidden, hidden, bias=False), nn.BatchNorm1d(hidden), nn.ReLU(inplace=True),
        nn.Linear(hidden, num_classes),
    )


def augment(x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    b = x.shape[0]
    padded = F.pad(x, (4, 4, 4, 4))
    dx = torch.randint(0, 9, (b,), generator=generator)
    dy = torch.randint(0, 9, (b,), generator=generator)
    rows = (dy[:, None] + torch.arange(28)[None, :])[:, None, :, None].expand(b, x.shape[1], 28, 28)
    cols = (dx[:, None] + torch.arange(28)[None, :])[:, None, None, :].expand(b, x.shape[1], 28, 28)
    view = padded[torch.arange(b)[:, None, None, None], torch.arange(x.shape[1])[None, :, None, None], rows, cols]
    flip = torch.rand(b, generator=generator) < 0.5
    view = torch.where(flip[:, None, None, None], view.flip(-1), view)
    contrast = 0.6 + 0.8 * torch.rand(b, 1, 1, 1, generator=generator)
    brightness = 0.2 * (torch.rand(b, 1, 1, 1, generator=generator) - 0.5)
    view = (view - 0.5) * contrast + 0.5 + brightness
    view = view + 0.1 * torch.randn(view.shape, generator=generator)
    return view.clamp(0, 1)
