"""A student's beta-VAE loss: a summed cross-entropy divided by the batch size, the KL with
log-variances. Correct: full marks."""
import torch
import torch.nn.functional as F

from models import to_levels


def beta_vae_loss(x, logits, mean, log_std, beta):
    batch_size = x.shape[0]
    target = to_levels(x)[:, 0, :, :]
    recon = F.cross_entropy(logits, target, reduction="sum") / batch_size
    logvar = 2 * log_std
    kld = -0.5 * torch.sum(1 + logvar - mean.pow(2) - logvar.exp()) / batch_size
    return recon + beta * kld
