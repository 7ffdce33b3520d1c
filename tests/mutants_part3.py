"""Mutants and variants of the part 3 functions (latent_attacks.py, hmc.py, beta_vae.py).

A *mutant* is the reference with one realistic mistake: graded with ``--profile quick`` (plus
the smoke checks where the mistake is one only a training shows) it loses points on a check of
its own function, names the mistake where ``mistake`` is set, and costs no other function
anything. A *variant* is another correct way to write the function: full marks. The
template-style student (``tests/template_style/part3``) is a whole second way of writing all
six functions. ``tools/calibrate_part3.py`` reuses the mutants as its broken variants.
"""
from __future__ import annotations

from tests.support import Mutant, Variant, table_makers

LA, HM, BV = "latent_attacks.py", "hmc.py", "beta_vae.py"
SKL = "part3.latent_attacks.symmetric_kl"
ATT = "part3.latent_attacks.latent_attack"
TGT = "part3.latent_attacks.targeted_latent_attack"
STEP = "part3.hmc.hmc_step"
DEF = "part3.hmc.hmc_defence"
LOSS = "part3.beta_vae.beta_vae_loss"

e, m, v = table_makers("part3")

# Reference lines the edits hook on.
SKL_LINE = "    skl = 0.5 * (var1 + diff2) / var2 + 0.5 * (var2 + diff2) / var1 - 1\n"
SKL_SUM = "    return skl.reshape(skl.shape[0], -1).sum(dim=1)\n"
SKL_VARS = "    var1, var2 = torch.exp(2 * log_std1), torch.exp(2 * log_std2)\n"
ATT_START = "    x_adv = (x + torch.empty_like(x).uniform_(-epsilon, epsilon)).clamp(0, 1)\n"
ATT_STEP = "            x_adv = x_adv + alpha * grad.sign()\n"
PROJECT = "            x_adv = torch.min(torch.max(x_adv, x - epsilon), x + epsilon).clamp(0, 1)\n"
ATT_GRAD = "        (grad,) = torch.autograd.grad(symmetric_kl(mean, log_std, mean0, log_std0).sum(), x_adv)\n"
ATT_RET = "    return x_adv.detach()\n    # END SOLUTION\n\n\ndef targeted"
TGT_STEP = "            x_adv = x_adv - alpha * grad.sign()\n"
TGT_START = "    x_adv = x.clone()\n"
P0 = "    p0 = torch.randn_like(z)\n"
KICK0 = "    q, p = z, p0 + 0.5 * step_size * grad\n"
KICK = "            p = p + step_size * grad\n"
KICK_END = "    p = p + 0.5 * step_size * grad\n"
LOOP = "    for i in range(n_leapfrog):\n"
ACCEPT = "    accept = torch.rand_like(h_old).log() < h_old - h_new\n"
STEP_RET = "    return torch.where(accept[:, None], q, z).detach()\n"
PRIOR = "        log_prior = -0.5 * (z ** 2).sum(dim=1)\n"
TARGET_RET = "        return log_prior + log_lik\n"
LEVELS = "    levels = to_levels(x_adv)[:, 0]\n"
DEF_LOOP = "    for _ in range(T):\n        z = hmc_step(z, log_target, step_size, n_leapfrog)\n"
LOSS_RET = "    return (rec + beta * kl).mean()\n"
LOSS_REC = "    rec = F.cross_entropy(logits, to_levels(x)[:, 0], reduction=\"none\").sum(dim=(1, 2))\n"
LOSS_KL = "    kl = 0.5 * (torch.exp(2 * log_std) + mean ** 2 - 1 - 2 * log_std).sum(dim=1)\n"

MUTANTS: list[Mutant] = [
    # symmetric_kl
    m("skl_one_direction", SKL, LA, SKL_LINE,
      "    skl = torch.log(var2 / var1) / 2 + (var1 + diff2) / (2 * var2) - 0.5\n", "only KL(q1 || q2)"),
    m("skl_average", SKL, LA, SKL_SUM, "    return 0.5 * skl.reshape(skl.shape[0], -1).sum(dim=1)\n", "average of the two"),
    m("skl_log_std_as_log_var", SKL, LA, SKL_VARS, "    var1, var2 = torch.exp(log_std1), torch.exp(log_std2)\n",
      "log-variance"),
    m("skl_mean_over_dims", SKL, LA, SKL_SUM, "    return skl.reshape(skl.shape[0], -1).mean(dim=1)\n", "mean over the latent"),
    m("skl_summed_over_batch", SKL, LA, SKL_SUM, "    return skl.sum()\n", "not over the batch"),
    m("skl_distributions", SKL, LA, SKL_LINE + SKL_SUM,
      "    q1 = torch.distributions.Normal(mean1, torch.exp(log_std1))\n"
      "    q2 = torch.distributions.Normal(mean2, torch.exp(log_std2))\n"
      "    skl = torch.distributions.kl_divergence(q1, q2) + torch.distributions.kl_divergence(q2, q1)\n"
      "    return skl.reshape(skl.shape[0], -1).sum(dim=1)\n", "torch.distributions"),
    # latent_attack
    m("att_starts_at_x", ATT, LA, ATT_START, "    x_adv = x.clone()\n", "started at x"),
    m("att_descends", ATT, LA, ATT_STEP, "            x_adv = x_adv - alpha * grad.sign()\n", "does not increase"),
    m("att_no_projection", ATT, LA, ATT_STEP + PROJECT, ATT_STEP + "            x_adv = x_adv.clamp(0, 1)\n",
      "no projection"),
    m("att_no_clamp", ATT, LA, ATT_STEP + PROJECT,
      ATT_STEP + "            x_adv = torch.min(torch.max(x_adv, x - epsilon), x + epsilon)\n", "[0, 1]"),
    m("att_not_detached", ATT, LA, ATT_RET, "    return x_adv + 0 * x_adv.requires_grad_(True)\n    # END SOLUTION\n\n\ndef targeted",
      "requires grad"),
    # targeted_latent_attack
    m("tgt_ascends", TGT, LA, TGT_STEP, "            x_adv = x_adv + alpha * grad.sign()\n", "moves away from the target"),
    m("tgt_no_projection", TGT, LA, "            x_adv = x_adv - alpha * grad.sign()\n" + PROJECT,
      "            x_adv = (x_adv - alpha * grad.sign()).clamp(0, 1)\n", "no projection"),
    Mutant("tgt_in_place", TGT, (e(LA, TGT_START, "    x_adv = x\n"),
                                 e(LA, TGT_STEP, "            x_adv.data.sub_(alpha * grad.sign())\n")), "in place"),
    # hmc_step
    m("step_no_metropolis", STEP, HM, STEP_RET, "    return q.detach()\n", "no accept/reject"),
    m("step_gradient_sign", STEP, HM, KICK, "            p = p - step_size * grad\n", "go down the gradient"),
    m("step_full_kicks", STEP, HM, KICK0 + "    for i", "    q, p = z, p0 + step_size * grad\n    for i", "full first momentum step"),
    m("step_momentum_std", STEP, HM, P0, "    p0 = 0.5 * torch.randn_like(z)\n", "standard normal"),
    m("step_metropolis_reversed", STEP, HM, ACCEPT, "    accept = torch.rand_like(h_old).log() < h_new - h_old\n", "reversed"),
    m("step_one_decision_per_batch", STEP, HM, ACCEPT,
      "    accept = (torch.rand(()).log() < (h_old - h_new).mean()).expand_as(h_old)\n"),
    m("step_extra_position_step", STEP, HM, LOOP, "    for i in range(n_leapfrog + 1):\n", "distinct points"),
    m("step_fixed_seed", STEP, HM, P0, "    torch.manual_seed(0)\n    p0 = torch.randn_like(z)\n", "same momentum"),
    # hmc_defence
    m("def_no_prior", DEF, HM, TARGET_RET, "        return log_lik\n", "prior"),
    m("def_sign_flipped", DEF, HM, TARGET_RET, "        return -(log_prior + log_lik)\n", "sign flipped"),
    m("def_floor_levels", DEF, HM, LEVELS, "    levels = (x_adv * 15).long()[:, 0]\n", "truncated"),
    m("def_not_chained", DEF, HM, DEF_LOOP,
      "    for _ in range(T):\n        z_new = hmc_step(z, log_target, step_size, n_leapfrog)\n    z = z_new\n", "chain the steps"),
    m("def_one_step", DEF, HM, DEF_LOOP, "    z = hmc_step(z, log_target, step_size, n_leapfrog)\n", "times"),
    # beta_vae_loss
    m("loss_beta_on_reconstruction", LOSS, BV, LOSS_RET, "    return (beta * rec + kl).mean()\n", "reconstruction term instead"),
    m("loss_sum_over_batch", LOSS, BV, LOSS_RET, "    return (rec + beta * kl).sum()\n", "sum over the batch"),
    m("loss_no_beta", LOSS, BV, LOSS_RET, "    return (rec + kl).mean()\n", "beta left out"),
    m("loss_kl_detached", LOSS, BV, LOSS_RET, "    return (rec + beta * kl.detach()).mean()\n"),
]

VARIANTS: list[Variant] = [
    v("skl_log_var_form", SKL, e(LA, SKL_LINE,
      "    skl = 0.5 * (torch.exp(2 * (log_std1 - log_std2)) + torch.exp(2 * (log_std2 - log_std1))) - 1 \\\n"
      "        + 0.5 * diff2 * (1 / var1 + 1 / var2)\n")),
    v("skl_sum_last_dim", SKL, e(LA, SKL_SUM, "    return skl.sum(-1)\n")),
    v("att_backward_and_mean", ATT, e(LA, ATT_GRAD,
      "        symmetric_kl(mean, log_std, mean0, log_std0).mean().backward()\n        grad = x_adv.grad\n")),
    v("att_sign_noise_start", ATT, e(LA, ATT_START,
      "    x_adv = (x + epsilon * torch.randn_like(x).sign()).clamp(0, 1)\n")),
    v("att_clamp_tensors", ATT, e(LA, ATT_STEP + PROJECT, ATT_STEP +
      "            x_adv = torch.clamp(torch.clamp(x_adv, min=x - epsilon, max=x + epsilon), 0.0, 1.0)\n")),
    v("tgt_random_start", TGT, e(LA, TGT_START,
      "    x_adv = (x + torch.empty_like(x).uniform_(-epsilon, epsilon)).clamp(0, 1)\n")),
    v("step_exp_acceptance", STEP, e(HM, ACCEPT,
      "    accept = torch.rand(h_old.shape) < torch.exp(h_old - h_new).clamp(max=1)\n")),
    v("step_double_precision", STEP, e(HM, "    z = z.detach()\n    p0", "    z = z.detach().double()\n    p0")),
    v("step_negated_momentum", STEP, e(HM, KICK_END, "    p = -(p + 0.5 * step_size * grad)\n")),
    v("def_normalised_prior", DEF, e(HM, PRIOR,
      "        log_prior = -0.5 * (z ** 2).sum(dim=1) - 0.5 * z.shape[1] * torch.log(torch.tensor(2 * torch.pi))\n")),
    v("loss_sum_divided", LOSS, e(BV, LOSS_RET,
      "    return rec.sum() / x.shape[0] + beta * kl.sum() / x.shape[0]\n")),
    v("loss_kl_log_var", LOSS, e(BV, LOSS_KL,
      "    log_var = 2 * log_std\n    kl = -0.5 * torch.sum(1 + log_var - mean.pow(2) - log_var.exp(), dim=1)\n")),
]
