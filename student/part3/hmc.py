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
    raise NotImplementedError('hmc_step (Q3.4) is not implemented yet: write your code here, in part3/hmc.py.')


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
    raise NotImplementedError('hmc_defence (Q3.5) is not implemented yet: write your code here, in part3/hmc.py.')
