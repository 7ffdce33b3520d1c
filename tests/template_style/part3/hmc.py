"""A student's HMC: a kick-drift-kick loop (the gradient recomputed at every half kick), the
momentum negated at the end, an explicit acceptance probability. Correct: full marks."""
import torch
import torch.nn.functional as F

from models import to_levels


def _grad_log_target(log_target, z):
    z = z.clone().detach().requires_grad_(True)
    lp = log_target(z)
    lp.sum().backward()
    return z.grad.detach()


def hmc_step(z, log_target, step_size, n_leapfrog):
    z = z.detach()
    p = torch.randn(z.shape)
    current_p = p.clone()
    q = z.clone()
    for _ in range(n_leapfrog):
        p = p + step_size / 2 * _grad_log_target(log_target, q)
        q = q + step_size * p
        p = p + step_size / 2 * _grad_log_target(log_target, q)
    p = -p  # symmetric proposal
    with torch.no_grad():
        current_H = -log_target(z) + 0.5 * torch.sum(current_p ** 2, dim=1)
        proposed_H = -log_target(q) + 0.5 * torch.sum(p ** 2, dim=1)
    accept_prob = torch.exp(current_H - proposed_H).clamp(max=1.0)
    u = torch.rand(z.shape[0])
    accept = (u < accept_prob).unsqueeze(1)
    return torch.where(accept, q, z).detach()


def hmc_defence(decoder, x_adv, z0, T, step_size, n_leapfrog):
    target = to_levels(x_adv).squeeze(1)
    d = z0.shape[1]

    def log_target(z):
        log_prior = -0.5 * torch.sum(z ** 2, dim=1) - 0.5 * d * torch.log(torch.tensor(2 * torch.pi))
        log_probs = F.log_softmax(decoder(z), dim=1)
        log_lik = log_probs.gather(1, target.unsqueeze(1)).squeeze(1).sum(dim=[1, 2])
        return log_prior + log_lik

    z = z0.clone()
    for t in range(T):
        z = hmc_step(z, log_target, step_size, n_leapfrog)
    return z
