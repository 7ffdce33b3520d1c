"""Q3.4-Q3.5: Hamiltonian Monte Carlo, and HMC as a defence of a VAE against latent attacks.

The defence (Kuzina et al.): an attacked image x_a fools the encoder, so z_a ~ q(z|x_a) is far
from what the clean image encodes; but the decoder still explains x_a about as well as it
explains the clean image. A few steps of HMC from z_a towards the true posterior
p(z|x_a) ∝ p(z) p(x_a|z) move the code back.

``z`` is ``[B, D]``: B independent chains (one per image), each in D dimensions.
"""
import torch
import torch.nn.functional as F

from models import to_levels


def hmc_step(z, log_target, step_size, n_leapfrog):
    """One HMC transition for each of the B chains in ``z``.

    1. Draw a fresh momentum p ~ N(0, I) of z's shape.
    2. Leapfrog ``n_leapfrog`` steps on H(z, p) = -log_target(z) + ||p||^2 / 2: a half step of
       the momentum, then alternately full steps of the position and of the momentum, ending
       with a half step of the momentum (``n_leapfrog`` position steps in all).
    3. Metropolis: each chain accepts its proposal with probability min(1, exp(H_old - H_new)),
       else keeps its z (a proposal whose H is not finite is rejected).

    :param z: (FloatTensor) [B, D] the chains' current states.
    :param log_target: callable [B, D] -> [B], the log density (up to a constant) of the target;
        differentiable (use torch.autograd.grad to get its gradient).
    :param step_size: (float) the leapfrog step size.
    :param n_leapfrog: (int) the number of leapfrog steps.
    :return: (FloatTensor) [B, D] the new states, detached.
    """
    # BEGIN SOLUTION Q3.4
    def log_p_and_grad(q):
        q = q.detach().requires_grad_(True)
        log_p = log_target(q)
        (grad,) = torch.autograd.grad(log_p.sum(), q)
        return log_p.detach(), grad

    z = z.detach()
    p0 = torch.randn_like(z)
    log_p0, grad = log_p_and_grad(z)
    q, p = z, p0 + 0.5 * step_size * grad
    for i in range(n_leapfrog):
        q = q + step_size * p
        log_p, grad = log_p_and_grad(q)
        if i < n_leapfrog - 1:
            p = p + step_size * grad
    p = p + 0.5 * step_size * grad
    h_old = -log_p0 + 0.5 * (p0 ** 2).sum(dim=1)
    h_new = -log_p + 0.5 * (p ** 2).sum(dim=1)
    accept = torch.rand_like(h_old).log() < h_old - h_new
    return torch.where(accept[:, None], q, z).detach()
    # END SOLUTION


def hmc_defence(decoder, x_adv, z0, T, step_size, n_leapfrog):
    """Run T HMC steps (hmc_step above) from ``z0`` targeting the posterior of the attacked images,
    log p(z) + log p(x_adv|z): p(z) = N(0, I), and log p(x_adv|z) the decoder's categorical
    log-likelihood of ``to_levels(x_adv)``, summed over the pixels (see models.py). Constants in z
    may be dropped.

    :param decoder: (Module) z [B, D] -> logits [B, 16, 28, 28].
    :param x_adv: (FloatTensor) [B, 1, 28, 28] attacked images in [0, 1].
    :param z0: (FloatTensor) [B, D] the starting codes (samples of q(z|x_adv)).
    :param T: (int) number of HMC steps.
    :param step_size, n_leapfrog: passed to hmc_step.
    :return: (FloatTensor) [B, D] the codes after T steps, detached.
    """
    # BEGIN SOLUTION Q3.5
    levels = to_levels(x_adv)[:, 0]

    def log_target(z):
        log_prior = -0.5 * (z ** 2).sum(dim=1)
        log_lik = -F.cross_entropy(decoder(z), levels, reduction="none").sum(dim=(1, 2))
        return log_prior + log_lik

    z = z0.detach()
    for _ in range(T):
        z = hmc_step(z, log_target, step_size, n_leapfrog)
    return z
    # END SOLUTION
