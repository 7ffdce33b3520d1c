"""
Template-style solution of IFT6135 HW3 problem 2 (2022: images), written for the project's
tests the way a student of the course's template writes it.
"""
import torch
import q2_sampler
import q2_model


def lp_reg(x, y, critic):
    """
    Lipschitz penalty (Petzka et al.), L2 norm. x ~ mu, y ~ nu, critic = f.
    :return: (FloatTensor) - shape: (1,) - Lipschitz penalty
    """
    batch_size = x.size(0)
    t = torch.rand(batch_size, device=x.device)
    t = t.view(batch_size, *([1] * (x.dim() - 1)))
    x_hat = t * x.detach() + (1 - t) * y.detach()
    x_hat.requires_grad_(True)
    f_x_hat = critic(x_hat)
    gradients = torch.autograd.grad(outputs=f_x_hat, inputs=x_hat,
                                    grad_outputs=torch.ones_like(f_x_hat),
                                    create_graph=True, retain_graph=True)[0]
    gradients = gradients.view(batch_size, -1)
    grad_norm = gradients.norm(2, dim=1)
    zero = torch.zeros_like(grad_norm)
    penalty = torch.max(zero, grad_norm - 1) ** 2
    return penalty.mean()


def vf_wasserstein_distance(p, q, critic):
    """
    :return: (FloatTensor) - shape: (1,) - Estimate of the Wasserstein distance
    """
    return torch.mean(critic(p)) - torch.mean(critic(q))
