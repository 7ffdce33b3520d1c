"""A student's part 3 latent attacks, written in the style of the course's part 2 (PGD with
.backward() and .grad, log-variances, a sign-noise start). Correct: full marks."""
import torch


def symmetric_kl(mean1, log_std1, mean2, log_std2):
    logvar1 = 2 * log_std1
    logvar2 = 2 * log_std2
    kl_12 = 0.5 * (logvar2 - logvar1 + (logvar1.exp() + (mean1 - mean2).pow(2)) / logvar2.exp() - 1)
    kl_21 = 0.5 * (logvar1 - logvar2 + (logvar2.exp() + (mean2 - mean1).pow(2)) / logvar1.exp() - 1)
    return torch.sum(kl_12 + kl_21, dim=-1)


def latent_attack(encoder, x, epsilon, alpha, num_iter):
    mu_clean, log_std_clean = encoder(x)
    mu_clean, log_std_clean = mu_clean.detach(), log_std_clean.detach()
    # random start: the gradient of the SKL is zero at x itself
    delta = epsilon * torch.sign(torch.randn_like(x))
    x_adv = torch.clamp(x + delta, 0, 1).detach()
    for i in range(num_iter):
        x_adv.requires_grad = True
        mu, log_std = encoder(x_adv)
        loss = symmetric_kl(mu, log_std, mu_clean, log_std_clean).mean()
        encoder.zero_grad()
        loss.backward()
        x_adv = x_adv + alpha * x_adv.grad.sign()
        x_adv = torch.clamp(x_adv, min=x - epsilon, max=x + epsilon)
        x_adv = torch.clamp(x_adv, 0, 1).detach()
    return x_adv


def targeted_latent_attack(encoder, x, x_target, epsilon, alpha, num_iter):
    mu_t, log_std_t = encoder(x_target)
    mu_t, log_std_t = mu_t.detach(), log_std_t.detach()
    x_adv = x.clone().detach()
    for i in range(num_iter):
        x_adv.requires_grad = True
        mu, log_std = encoder(x_adv)
        loss = symmetric_kl(mu, log_std, mu_t, log_std_t).sum()
        encoder.zero_grad()
        loss.backward()
        eta = -alpha * x_adv.grad.sign()
        x_adv = x_adv.detach() + eta
        perturbation = torch.clamp(x_adv - x, -epsilon, epsilon)
        x_adv = torch.clamp(x + perturbation, 0, 1).detach()
    return x_adv
