"""An IFT6135 Homework 3 student's problem 1, written for the grader's tests in the course
template's style: inputs viewed as (batch_size, -1), [batch_size] outputs, the Monte-Carlo KL
expanding its [B, D] inputs to [B, num_samples, D] itself. Not a copy of any student's code.
"""
import math
import numpy as np
import torch


def log_likelihood_bernoulli(mu, target):
    batch_size = mu.size(0)
    mu = mu.view(batch_size, -1)
    target = target.view(batch_size, -1)
    return torch.sum(target * torch.log(mu) + (1 - target) * torch.log(1 - mu), dim=1)


def log_likelihood_normal(mu, logvar, z):
    batch_size = mu.size(0)
    mu = mu.view(batch_size, -1)
    logvar = logvar.view(batch_size, -1)
    z = z.view(batch_size, -1)
    return -0.5 * torch.sum(math.log(2 * math.pi) + logvar + (z - mu) ** 2 / torch.exp(logvar), dim=1)


def log_mean_exp(y):
    batch_size = y.size(0)
    sample_size = y.size(1)
    a = torch.max(y, dim=1, keepdim=True)[0]
    return (a + torch.log(torch.sum(torch.exp(y - a), dim=1, keepdim=True) / sample_size)).view(batch_size)


def kl_gaussian_gaussian_analytic(mu_q, logvar_q, mu_p, logvar_p):
    batch_size = mu_q.size(0)
    mu_q = mu_q.view(batch_size, -1)
    logvar_q = logvar_q.view(batch_size, -1)
    mu_p = mu_p.view(batch_size, -1)
    logvar_p = logvar_p.view(batch_size, -1)
    kl = logvar_p - logvar_q + (torch.exp(logvar_q) + (mu_q - mu_p) ** 2) / torch.exp(logvar_p) - 1
    return 0.5 * torch.sum(kl, dim=1)


def kl_gaussian_gaussian_mc(mu_q, logvar_q, mu_p, logvar_p, num_samples=1):
    batch_size = mu_q.size(0)
    input_size = np.prod(mu_q.size()[1:])
    mu_q = mu_q.view(batch_size, -1).unsqueeze(1).expand(batch_size, num_samples, input_size)
    logvar_q = logvar_q.view(batch_size, -1).unsqueeze(1).expand(batch_size, num_samples, input_size)
    mu_p = mu_p.view(batch_size, -1).unsqueeze(1).expand(batch_size, num_samples, input_size)
    logvar_p = logvar_p.view(batch_size, -1).unsqueeze(1).expand(batch_size, num_samples, input_size)

    z = mu_q + torch.exp(0.5 * logvar_q) * torch.randn_like(mu_q)
    log_q = -0.5 * (math.log(2 * math.pi) + logvar_q + (z - mu_q) ** 2 / torch.exp(logvar_q))
    log_p = -0.5 * (math.log(2 * math.pi) + logvar_p + (z - mu_p) ** 2 / torch.exp(logvar_p))
    return torch.mean(torch.sum(log_q - log_p, dim=2), dim=1)
