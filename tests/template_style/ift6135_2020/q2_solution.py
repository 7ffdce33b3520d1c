"""
Template-style solution of IFT6135 HW3 problem 2 (2020: 2-D toy samples, and the squared
Hellinger bound), written for the project's tests the way a student of that template writes it.
"""
import torch
import q2_sampler
import q2_model


def lp_reg(x, y, critic):
    """
    :param x: (FloatTensor) - shape: (batchsize x 2) - Samples from a distribution P.
    :param y: (FloatTensor) - shape: (batchsize x 2) - Samples from a distribution Q.
    :return: (FloatTensor) - shape: (1,) - Lipschitz penalty
    """
    a = torch.rand(x.size(0), 1)
    a = a.expand(x.size())
    x_hat = a * x + (1 - a) * y
    x_hat = torch.autograd.Variable(x_hat, requires_grad=True)
    out = critic(x_hat)
    grad = torch.autograd.grad(out, x_hat, torch.ones(out.size()), create_graph=True, retain_graph=True)[0]
    norm = torch.sqrt(torch.sum(grad ** 2, dim=1))
    return torch.mean(torch.relu(norm - 1) ** 2)


def vf_wasserstein_distance(p, q, critic):
    return torch.mean(critic(p)) - torch.mean(critic(q))


def vf_squared_hellinger(x, y, critic):
    t_x = 1 - torch.exp(-critic(x))
    t_y = 1 - torch.exp(-critic(y))
    return torch.mean(t_x) - torch.mean(t_y / (1 - t_y))
