"""Template-style variants and bugs of IFT6135 HW3 problems 2 and 3 (``--edition ift6135``;
the Hellinger ones ``--edition ift6135_2020``).

The bases are ``tests/template_style/ift6135`` (a 2022 student's q1/q2/q3_solution.py) and
``tests/template_style/ift6135_2020`` (a 2020 student's q2_solution.py), written here. A
*variant* is another way a course student writes a correct function: full marks. A *mutant* is a
realistic mistake of that course (the course's own tests let some pass, e.g. t drawn per
element): it loses points on its own function's checks only, with the named mistake where the
grader recognises one. ``tools/calibrate_ift6135.py`` reuses them as its broken variants.
"""
from __future__ import annotations

from tests.support import ROOT, Mutant, Variant, table_makers

TEMPLATE = ROOT / "tests" / "template_style" / "ift6135"
TEMPLATE_2020 = ROOT / "tests" / "template_style" / "ift6135_2020"
Q2, Q3 = "q2_solution.py", "q3_solution.py"
LP = "part4.q2_solution.lp_reg"
W1 = "part4.q2_solution.vf_wasserstein_distance"
HEL = "part4.q2_solution.vf_squared_hellinger"
COS = "part4.q3_solution.CosineSimilarity"
FWD = "part4.q3_solution.SimSiam.forward"
LOSS = "part4.q3_solution.SimSiam.loss"


e, m, v = table_makers(".")  # the bases are flat folders, as the course's uploads are


# Template-style lines the edits hook on.
LP_T = "    t = torch.rand(batch_size, device=x.device)\n    t = t.view(batch_size, *([1] * (x.dim() - 1)))\n"
LP_HAT = "    x_hat = t * x.detach() + (1 - t) * y.detach()\n    x_hat.requires_grad_(True)\n"
LP_GRAD = ("                                    grad_outputs=torch.ones_like(f_x_hat),\n"
           "                                    create_graph=True, retain_graph=True)[0]\n")
LP_NORM = "    grad_norm = gradients.norm(2, dim=1)\n"
LP_PEN = "    penalty = torch.max(zero, grad_norm - 1) ** 2\n"
LP_MEAN = "    return penalty.mean()\n"
W1_LINE = "    return torch.mean(critic(p)) - torch.mean(critic(q))\n"
COS_RET = "        return torch.sum(x1 * x2, dim=self.dim) / denominator\n"
COS_N1 = "        x1_norm = torch.sqrt(torch.sum(x1 ** 2, dim=self.dim))\n"
FWD_STOP = "        if self.stop_gradient:\n            return p1, p2, z1.detach(), z2.detach()\n        return p1, p2, z1, z2\n"
FWD_ENC = "        z1 = self.encoder(x1)\n        z2 = self.encoder(x2)\n"
LOSS_1 = "        loss_1 = -similarity_function(p1, z2).mean()\n"
LOSS_2 = "        loss_2 = -similarity_function(p2, z1).mean()\n"
LOSS_RET = "        return 0.5 * loss_1 + 0.5 * loss_2\n"
HEL_Y = "    return torch.mean(t_x) - torch.mean(t_y / (1 - t_y))\n"

VARIANTS: list[Variant] = [
    v("lp_t_other_side", LP, e(Q2, LP_HAT, "    x_hat = t * y.detach() + (1 - t) * x.detach()\n    x_hat.requires_grad_(True)\n")),
    v("lp_no_detach", LP, e(Q2, LP_HAT,
      "    x_hat = t * x + (1 - t) * y\n    if not x_hat.requires_grad:\n        x_hat.requires_grad_(True)\n")),
    v("lp_relu_flatten", LP, e(Q2, LP_PEN, "    penalty = torch.nn.functional.relu(grad_norm - 1).pow(2)\n"),
      e(Q2, LP_NORM, "    grad_norm = torch.sqrt((gradients ** 2).sum(dim=1))\n")),
    v("lp_t_rand_like_first_column", LP, e(Q2, LP_T,
      "    t = torch.rand_like(x.reshape(batch_size, -1)[:, :1])\n    t = t.view(batch_size, *([1] * (x.dim() - 1)))\n")),
    v("w1_q_minus_p", W1, e(Q2, W1_LINE, "    return critic(q).mean() - critic(p).mean()\n")),
    v("cos_f_normalize", COS, e(Q3, COS_RET,
      "        a = torch.nn.functional.normalize(x1, dim=self.dim, eps=self.eps)\n"
      "        b = torch.nn.functional.normalize(x2, dim=self.dim, eps=self.eps)\n"
      "        return (a * b).sum(dim=self.dim)\n")),
    v("cos_builtin", COS, e(Q3, COS_RET,
      "        return torch.nn.functional.cosine_similarity(x1, x2, dim=self.dim, eps=self.eps)\n")),
    v("fwd_views_in_one_batch", FWD, e(Q3, FWD_ENC, "        z1, z2 = self.encoder(torch.cat([x1, x2])).chunk(2)\n")),
    v("init_positional_encoder", FWD, e(Q3, "        self.encoder = base_encoder(num_classes=dim)\n",
                                          "        self.encoder = base_encoder(dim)\n")),
    # equation (7) as written: stop-grad inside the loss, whatever stop_gradient says (a note, no deduction)
    v("loss_always_detaches", LOSS, e(Q3, LOSS_1 + LOSS_2,
      "        loss_1 = -similarity_function(p1, z2.detach()).mean()\n"
      "        loss_2 = -similarity_function(p2, z1.detach()).mean()\n")),
    v("loss_detaches_when_stopping", LOSS, e(Q3, LOSS_1,
      "        if self.stop_gradient:\n            z1, z2 = z1.detach(), z2.detach()\n" + LOSS_1)),
]

MUTANTS: list[Mutant] = [
    m("lp_t_per_element", LP, Q2, LP_T, "    t = torch.rand_like(x)\n", "t drawn per element"),
    m("lp_one_t_per_batch", LP, Q2, LP_T, "    t = torch.rand(1)\n", "one t drawn for the whole batch"),
    m("lp_t_normal", LP, Q2, LP_T,
      "    t = torch.randn(batch_size, device=x.device)\n    t = t.view(batch_size, *([1] * (x.dim() - 1)))\n",
      "torch.randn"),
    m("lp_no_create_graph", LP, Q2, LP_GRAD,
      "                                    grad_outputs=torch.ones_like(f_x_hat))[0]\n", "create_graph=True"),
    m("lp_norm_over_batch", LP, Q2, LP_NORM, "    grad_norm = gradients.norm(2, dim=0)\n", "over the batch dimension"),
    m("lp_two_sided", LP, Q2, LP_PEN, "    penalty = (grad_norm - 1) ** 2\n", "two-sided"),
    m("lp_no_square", LP, Q2, LP_PEN, "    penalty = torch.max(zero, grad_norm - 1)\n", "without the square"),
    m("lp_sum_over_batch", LP, Q2, LP_MEAN, "    return penalty.sum()\n", "sum over the batch"),
    m("lp_hard_coded_4d", LP, Q2, LP_T, "    t = torch.rand(batch_size, 1, 1, 1, device=x.device)\n"),
    m("lp_x_hat_without_grad", LP, Q2, LP_HAT, "    x_hat = t * x + (1 - t) * y\n"),
    m("lp_channel_norm", LP, Q2, "    gradients = gradients.view(batch_size, -1)\n", "", "over only one dimension"),
    m("w1_sums", W1, Q2, W1_LINE, "    return torch.sum(critic(p)) - torch.sum(critic(q))\n", "sums over the batch"),
    m("w1_item", W1, Q2, W1_LINE, "    return (torch.mean(critic(p)) - torch.mean(critic(q))).item()\n"),
    m("cos_no_norms", COS, Q3, COS_RET, "        return torch.sum(x1 * x2, dim=self.dim)\n", "without dividing by the norms"),
    m("cos_batch_norms", COS, Q3, COS_N1, "        x1_norm = torch.sqrt(torch.sum(x1 ** 2))\n"),
    m("fwd_never_detached", FWD, Q3, FWD_STOP, "        return p1, p2, z1, z2\n", "without .detach()"),
    m("fwd_always_detached", FWD, Q3, FWD_STOP, "        return p1, p2, z1.detach(), z2.detach()\n", "whatever self.stop_gradient"),
    m("fwd_predictions_detached", FWD, Q3, FWD_STOP,
      "        if self.stop_gradient:\n            return p1.detach(), p2.detach(), z1, z2\n        return p1, p2, z1, z2\n",
      "predictions detached"),
    m("fwd_order_z_first", FWD, Q3, FWD_STOP,
      "        if self.stop_gradient:\n            return z1.detach(), z2.detach(), p1, p2\n        return z1, z2, p1, p2\n",
      "another order"),
    m("loss_similarity_not_negated", LOSS, Q3, LOSS_RET, "        return -(0.5 * loss_1 + 0.5 * loss_2)\n", "not its negative"),
    m("loss_same_view", LOSS, Q3, LOSS_1 + LOSS_2,
      "        loss_1 = -similarity_function(p1, z1).mean()\n        loss_2 = -similarity_function(p2, z2).mean()\n",
      "its own view's target"),
    m("loss_no_half", LOSS, Q3, LOSS_RET, "        return loss_1 + loss_2\n", "without the 0.5"),
    m("loss_predictions_detached", LOSS, Q3, LOSS_1 + LOSS_2,
      "        loss_1 = -similarity_function(p1.detach(), z2).mean()\n"
      "        loss_2 = -similarity_function(p2.detach(), z1).mean()\n", "predictions detached"),
]

# The 2020 handout's vf_squared_hellinger (base TEMPLATE_2020, --edition ift6135_2020).
VARIANTS_2020: list[Variant] = [
    v("hel_exp_form", HEL, e(Q2, HEL_Y, "    return torch.mean(t_x) - torch.mean(torch.exp(critic(y)) - 1)\n")),
]
MUTANTS_2020: list[Mutant] = [
    m("hel_no_activation", HEL, Q2, "    t_x = 1 - torch.exp(-critic(x))\n    t_y = 1 - torch.exp(-critic(y))\n",
      "    t_x = critic(x)\n    t_y = critic(y)\n", "left out"),
    m("hel_swapped", HEL, Q2, "    t_x = 1 - torch.exp(-critic(x))\n    t_y = 1 - torch.exp(-critic(y))\n",
      "    t_x = 1 - torch.exp(-critic(y))\n    t_y = 1 - torch.exp(-critic(x))\n", "swapped"),
]
