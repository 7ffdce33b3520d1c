"""Problem 2: the Wasserstein distance in its dual form, and the Lipschitz penalty (IFT6135 HW3).

The notation follows Petzka et al., "On the regularization of Wasserstein GANs" (2018): ``x``
are samples of the distribution mu (real data), ``y`` samples of nu (generated data), the
critic is their ``f``. The f-GAN function follows Nowozin et al. (2016), with the critic as
their ``V`` before the output activation.

Shapes: a batch is ``[batch_size, ...]``: ``[batch_size, 2]`` for the 2-D toy distributions
of ``q2_sampler.py``, ``[batch_size, 3, 32, 32]`` for images. Every function returns a
one-element tensor that gradients flow through into the critic's parameters.
"""
import torch

import q2_model  # noqa: F401  (the critics the functions are used with)
import q2_sampler  # noqa: F401


def lp_reg(x, y, critic):
    """The Lipschitz penalty of Petzka et al. (their equation 8), with the L2 norm.

    For each example i its own ``t_i ~ U[0, 1]`` (one number per example, shared by all its
    coordinates), ``x_hat_i = t_i * x_i + (1 - t_i) * y_i``, and

        penalty = mean_i (max(0, ||grad_x f(x_hat_i)||_2 - 1))^2

    where the norm is over all of an example's coordinates. The result must stay
    differentiable with respect to the critic's parameters (it is added to the critic's loss),
    and the function must work whether or not ``x`` and ``y`` require grad.

    :param x: (FloatTensor) [batch_size, ...] samples of mu.
    :param y: (FloatTensor) [batch_size, ...] samples of nu (same shape as x).
    :param critic: (Module) the critic f.
    :return: (FloatTensor) one element: the penalty.
    """
    raise NotImplementedError('lp_reg (P2.1) is not implemented yet: write your code here, in part4/q2_solution.py.')


def vf_wasserstein_distance(p, q, critic):
    """The critic's estimate of the Wasserstein-1 distance between the distributions of p and q.

    Kantorovich-Rubinstein duality: W1(P, Q) = sup over 1-Lipschitz f of E_P[f] - E_Q[f]; with the
    critic as f, the estimate is the difference of the critic's means on the two batches:

        mean_i f(p_i) - mean_j f(q_j)

    (first argument minus second; the critic is trained to maximise it, so the opposite sign,
    E_Q[f] - E_P[f] as the handout's equation (1) writes it, works too and is accepted).

    :param p: (FloatTensor) [batch_size, ...] samples of P.
    :param q: (FloatTensor) [batch_size, ...] samples of Q.
    :param critic: (Module) the critic f.
    :return: (FloatTensor) one element: the estimate.
    """
    raise NotImplementedError('vf_wasserstein_distance (P2.2) is not implemented yet: write your code here, in part4/q2_solution.py.')


def vf_squared_hellinger(x, y, critic):
    """The f-GAN lower bound on the squared Hellinger distance between P (x) and Q (y).

    Nowozin et al., table 2: f(u) = (sqrt(u) - 1)^2, output activation g_f(v) = 1 - exp(-v),
    conjugate f*(t) = t / (1 - t). With T = g_f(V(.)) and V the critic:

        mean_i T(x_i) - mean_j f*(T(y_j))  =  mean_i (1 - exp(-V(x_i))) - mean_j (exp(V(y_j)) - 1)

    :param x: (FloatTensor) [batch_size, ...] samples of P.
    :param y: (FloatTensor) [batch_size, ...] samples of Q.
    :param critic: (Module) the critic V.
    :return: (FloatTensor) one element: the estimate.
    """
    raise NotImplementedError('vf_squared_hellinger (P2.3) is not implemented yet: write your code here, in part4/q2_solution.py.')
