"""Q3.6: the beta-VAE objective (Higgins et al.), the model family whose robustness Sootla compares."""
import torch
import torch.nn.functional as F

from models import to_levels


def beta_vae_loss(x, logits, mean, log_std, beta):
    """The negative ELBO with its KL term weighted by ``beta``, averaged over the batch:

        mean_i [ -log p(x_i|z_i) + beta * KL(q(z|x_i) || N(0, I)) ]

    where -log p(x_i|z_i) is the cross-entropy of ``to_levels(x_i)`` under ``logits`` summed over
    the pixels (nats per image), and the KL is the closed form for a diagonal Gaussian, summed
    over the latent dimensions. beta = 1 is the VAE's loss; beta > 1 favours disentangled codes.

    :param x: (FloatTensor) [B, 1, 28, 28] images in [0, 1].
    :param logits: (FloatTensor) [B, 16, 28, 28] the decoder's output for z ~ q(z|x).
    :param mean, log_std: (FloatTensor) [B, z_dim] the posterior's parameters.
    :param beta: (float) the weight of the KL term.
    :return: (FloatTensor) a scalar, differentiable in logits, mean and log_std.
    """
    # BEGIN SOLUTION Q3.6
    rec = F.cross_entropy(logits, to_levels(x)[:, 0], reduction="none").sum(dim=(1, 2))
    kl = 0.5 * (torch.exp(2 * log_std) + mean ** 2 - 1 - 2 * log_std).sum(dim=1)
    return (rec + beta * kl).mean()
    # END SOLUTION
