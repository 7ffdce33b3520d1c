# A submission written here in the style of a UvA DL1 2024 student (template layout and
# idioms: torchvision's make_grid, the Normal(0, 1).icdf hint, @torch.no_grad()); used by
# tests/test_editions.py. Not copied from any student.
import torch
from torchvision.utils import make_grid
import numpy as np


def sample_reparameterize(mean, std):
    assert not (std < 0).any().item(), "The reparameterization trick got a negative std as input. " + \
                                       "Are you sure your input is std and not log_std?"
    noise = torch.randn_like(std)
    z = mean + noise * std
    return z


def KLD(mean, log_std):
    variance = torch.exp(log_std) ** 2
    KLD = 0.5 * torch.sum(variance + mean ** 2 - 1 - 2 * log_std, dim=-1)
    return KLD


def elbo_to_bpd(elbo, img_shape):
    n_dims = np.prod(img_shape[1:])
    bpd = elbo * np.log2(np.exp(1)) / n_dims
    return bpd


@torch.no_grad()
def visualize_manifold(decoder, grid_size=20):
    steps = torch.arange(grid_size, dtype=torch.float32)
    percentiles = (steps + 0.5) / grid_size
    normal = torch.distributions.Normal(torch.tensor(0.0), torch.tensor(1.0))
    z_vals = normal.icdf(percentiles)
    z_a, z_b = torch.meshgrid(z_vals, z_vals, indexing="ij")
    z = torch.stack([z_a.reshape(-1), z_b.reshape(-1)], dim=-1).to(decoder.device)
    logits = decoder(z)
    probs = torch.softmax(logits, dim=1)
    values = torch.arange(16, dtype=probs.dtype, device=probs.device).view(1, -1, 1, 1)
    imgs = (probs * values).sum(dim=1, keepdim=True) / 15.0
    img_grid = make_grid(imgs, nrow=grid_size, padding=1, pad_value=0.5)
    return img_grid
