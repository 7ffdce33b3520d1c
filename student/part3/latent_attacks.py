"""Q3.1-Q3.3: adversarial attacks on a VAE's latent space.

An attack on a classifier changes its label; an attack on a VAE changes what it *encodes*:
a perturbation ``eps`` inside the L-infinity ball of radius ``epsilon`` that moves the
posterior ``q(z|x + eps)`` far from ``q(z|x)`` (untargeted, Kuzina et al.) or towards the
posterior of another image (targeted). Both are projected gradient methods like part 2's PGD,
with the symmetric KL divergence between the two diagonal Gaussians as their objective.

Images and models follow ``models.py``: images ``[B, 1, 28, 28]`` in [0, 1], ``encoder(x)``
returns ``(mean, log_std)``, each ``[B, z_dim]``. Every attack returns a detached tensor of
``x``'s shape inside the ball and the valid range, and leaves ``x`` unchanged.
"""
import torch


def symmetric_kl(mean1, log_std1, mean2, log_std2):
    """The symmetric KL divergence KL(q1 || q2) + KL(q2 || q1) of two diagonal Gaussians,
    q1 = N(mean1, exp(log_std1)^2) and q2 = N(mean2, exp(log_std2)^2), per example.

    Closed form (write it yourself; no torch.distributions), summed over every dimension but the
    first (the batch).

    :param mean1, log_std1, mean2, log_std2: (FloatTensor) [B, z_dim] each.
    :return: (FloatTensor) [B], >= 0, zero exactly where the two Gaussians are equal.
    """
    raise NotImplementedError('symmetric_kl (Q3.1) is not implemented yet: write your code here, in part3/latent_attacks.py.')


def latent_attack(encoder, x, epsilon, alpha, num_iter):
    """Untargeted latent attack: maximise SKL[q(z|x + eps), q(z|x)] over ||eps||_inf <= epsilon.

    The clean posterior q(z|x) is computed once and held fixed (no gradient through it). Start
    from a uniformly random point of the ball (at eps = 0 the objective is at its minimum and its
    gradient is exactly zero, so a sign step would not move), then ``num_iter`` times: a step of
    ``alpha`` along the sign of the gradient of the summed symmetric_kl (use the function above),
    then projection onto the ball around ``x`` and onto [0, 1].

    :param encoder: (Module) x -> (mean, log_std).
    :param x: (FloatTensor) [B, 1, 28, 28] clean images in [0, 1].
    :param epsilon: (float) radius of the L-infinity ball.
    :param alpha: (float) step size.
    :param num_iter: (int) number of steps.
    :return: (FloatTensor) the adversarial images, detached, x's shape.
    """
    raise NotImplementedError('latent_attack (Q3.2) is not implemented yet: write your code here, in part3/latent_attacks.py.')


def targeted_latent_attack(encoder, x, x_target, epsilon, alpha, num_iter):
    """Targeted latent attack: minimise SKL[q(z|x + eps), q(z|x_target)] over ||eps||_inf <= epsilon,
    so that the VAE encodes (and reconstructs) x + eps like x_target (Sootla's setting).

    The target posterior is computed once and held fixed. Start from ``x`` (or a random point of
    the ball), then ``num_iter`` times: a step of ``alpha`` against the sign of the gradient of
    the summed symmetric_kl, then projection onto the ball around ``x`` and onto [0, 1].

    :param encoder: (Module) x -> (mean, log_std).
    :param x: (FloatTensor) [B, 1, 28, 28] source images in [0, 1].
    :param x_target: (FloatTensor) [B, 1, 28, 28] target images (one per source).
    :param epsilon, alpha, num_iter: as in latent_attack.
    :return: (FloatTensor) the adversarial images, detached, x's shape.
    """
    raise NotImplementedError('targeted_latent_attack (Q3.3) is not implemented yet: write your code here, in part3/latent_attacks.py.')
