"""Encoders and augmentations for problem 3 on 28 x 28 grey images (given; not graded).

``mlp_encoder(num_classes)`` is ``f``: an MLP backbone (batch-normalised hidden layers) and a
linear head ``fc`` to ``num_classes`` features; ``mlp_predictor(dim, pred_dim)`` is ``h``. ``augment(x, generator)`` makes one random view of
a batch [B, 1, 28, 28] in [0, 1]: a random shift of up to 4 pixels, a horizontal flip with
probability 1/2, a random brightness/contrast change and Gaussian noise.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F


class MLPEncoder(nn.Module):
    """f for 28 x 28 images: a batch-normalised MLP backbone and a linear head ``fc`` (named like a
    torchvision ResNet's, so a SimSiam that replaces the head with its projector works too)."""

    def __init__(self, num_classes: int = 64, hidden: int = 256, input_size: int = 784, **unused) -> None:
        super().__init__()
        self.backbone = nn.Sequential(
            nn.Flatten(),
            nn.Linear(input_size, hidden, bias=False), nn.BatchNorm1d(hidden), nn.ReLU(inplace=True),
            nn.Linear(hidden, hidden, bias=False), nn.BatchNorm1d(hidden), nn.ReLU(inplace=True),
        )
        self.fc = nn.Linear(hidden, num_classes)

    def forward(self, x):
        return self.fc(self.backbone(x))


def mlp_encoder(num_classes: int = 64, hidden: int = 256, input_size: int = 784, **unused) -> nn.Module:
    """``base_encoder`` for SimSiam: ``mlp_encoder(num_classes=dim)`` (other keywords, such as a
    ResNet's ``zero_init_residual``, are ignored)."""
    return MLPEncoder(num_classes, hidden, input_size)


def mlp_predictor(dim: int, pred_dim: int) -> nn.Module:
    """h: SimSiam's bottleneck predictor (the one ``SimSiam.__init__`` builds)."""
    return nn.Sequential(
        nn.Linear(dim, pred_dim, bias=False), nn.BatchNorm1d(pred_dim), nn.ReLU(inplace=True),
        nn.Linear(pred_dim, dim),
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
