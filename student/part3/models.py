"""The VAE that part 3 attacks (given, not graded): a small MLP VAE on 4-bit FashionMNIST.

Conventions shared by every part 3 function:

- images are float tensors ``[B, 1, 28, 28]`` with values in [0, 1] (the valid pixel range
  an attack must stay in); the 16 intensity levels of part 1 are ``to_levels(x)``, integers
  0..15;
- ``encoder(x)`` returns ``(mean, log_std)``, each ``[B, z_dim]``: the diagonal Gaussian
  posterior q(z|x);
- ``decoder(z)`` returns logits ``[B, 16, 28, 28]`` of a categorical distribution over the 16
  levels of every pixel (part 1's likelihood): ``log p(x|z)`` is minus the cross-entropy of
  ``to_levels(x)`` under these logits, summed over the pixels.

The decoder models each pixel with a location and a scale and turns them into 16 logits
(a discretised Gaussian): the same categorical likelihood as part 1's with far fewer
parameters, so a trained model fits in a small file.
"""
from __future__ import annotations

import torch
import torch.nn as nn

NUM_LEVELS = 16
IMAGE_SHAPE = (1, 28, 28)


def to_levels(x: torch.Tensor) -> torch.Tensor:
    """Images in [0, 1] -> their 4-bit levels (long, 0..15), the decoder's targets."""
    return (x.detach() * (NUM_LEVELS - 1)).round().clamp(0, NUM_LEVELS - 1).long()


class MLPEncoder(nn.Module):
    def __init__(self, z_dim: int = 8, hidden: int = 128) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(28 * 28, hidden), nn.ReLU(), nn.Linear(hidden, 2 * z_dim))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mean, log_std = self.net(x * 2 - 1).chunk(2, dim=1)
        return mean, log_std


class MLPDecoder(nn.Module):
    def __init__(self, z_dim: int = 8, hidden: int = 128) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(z_dim, hidden), nn.ReLU(), nn.Linear(hidden, 2 * 28 * 28))
        self.register_buffer("levels", torch.linspace(0, 1, NUM_LEVELS), persistent=False)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        loc, log_scale = self.net(z).chunk(2, dim=1)
        inv_scale = torch.exp(-log_scale.clamp(-5, 3))
        logits = -0.5 * ((self.levels[None, :, None] - loc[:, None, :]) * inv_scale[:, None, :]) ** 2
        return logits.reshape(z.shape[0], NUM_LEVELS, *IMAGE_SHAPE[1:])


class VAE(nn.Module):
    """An encoder, a decoder and a standard normal prior on ``z_dim`` dimensions."""

    def __init__(self, z_dim: int = 8, hidden: int = 128) -> None:
        super().__init__()
        self.z_dim = z_dim
        self.encoder = MLPEncoder(z_dim, hidden)
        self.decoder = MLPDecoder(z_dim, hidden)

    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        """The decoder's most likely image at the posterior mean, in [0, 1]."""
        mean, _ = self.encoder(x)
        return self.decoder(mean).argmax(1, keepdim=True).float() / (NUM_LEVELS - 1)


def load_vae(path: str) -> VAE:
    """A VAE saved by ``train_vae.py`` (a dict with ``z_dim``, ``hidden`` and ``state``)."""
    saved = torch.load(path, map_location="cpu", weights_only=True)
    model = VAE(int(saved["z_dim"]), int(saved["hidden"]))
    model.load_state_dict(saved["state"])
    return model.eval()
