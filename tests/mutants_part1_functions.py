"""Mutants and variants of the part-1 functions (utils.py, cnn_encoder_decoder.py, estimators.py).

A *mutant* is the reference with one realistic student mistake; it must lose points on
a check tagged with the mutated function, keep every other function's points, and,
where ``mistake`` is set, the failing check must name that mistake. A *variant* is a
correct implementation written differently; it must get full marks.

Edits are literal find/replace on the reference files (each ``find`` must occur
exactly once); whole function bodies are replaced through :func:`body`, which reads
the fenced solution block of a function from ``solutions/`` so that the edit keeps
working when the reference's code is reformatted.
"""
from __future__ import annotations

import re

from tests.support import SOLUTIONS, Edit, Mutant, Variant

U, C, E = "utils.py", "cnn_encoder_decoder.py", "estimators.py"
REPARAM = "part1.utils.sample_reparameterize"
KLD = "part1.utils.KLD"
BPD = "part1.utils.elbo_to_bpd"
ENC = "part1.cnn_encoder_decoder.CNNEncoder"
DEC = "part1.cnn_encoder_decoder.CNNDecoder"
BERN = "part1.estimators.log_likelihood_bernoulli"
NORMAL = "part1.estimators.log_likelihood_normal"
LME = "part1.estimators.log_mean_exp"
KLA = "part1.estimators.kl_gaussian_gaussian_analytic"
KLMC = "part1.estimators.kl_gaussian_gaussian_mc"
IW = "part1.estimators.importance_weighted_log_likelihood"


def body(file: str, name: str, occurrence: int = 0) -> str:
    """The code between ``# BEGIN SOLUTION`` and ``# END SOLUTION`` inside ``def name`` / ``class name``.

    ``occurrence`` picks the n-th fenced block after the definition (a class has one in
    ``__init__`` and one in ``forward``).
    """
    text = (SOLUTIONS / "part1" / file).read_text()
    start = re.search(rf"^\s*(def|class) {re.escape(name)}\b", text, re.M)
    assert start, f"{name} not found in {file}"
    blocks = re.findall(r"^[ \t]*# BEGIN SOLUTION[^\n]*\n(.*?)^[ \t]*# END SOLUTION", text[start.end():], re.M | re.S)
    return blocks[occurrence]


def replace_body(file: str, name: str, new: str, occurrence: int = 0) -> Edit:
    return Edit("part1", file, body(file, name, occurrence), new)


def m(id: str, function: str, file: str, find: str, replace: str, mistake: str | None = None) -> Mutant:
    return Mutant(id, function, (Edit("part1", file, find, replace),), mistake)


Z = "    z = mean + std * eps\n"
EPS = "    eps = torch.randn_like(std)\n"
KLD_SUM = "    return 0.5 * per_dim.sum(dim=-1)\n"
KLD_TERMS = "    per_dim = torch.exp(2 * log_std) + mean.pow(2) - 1 - 2 * log_std\n"
BPD_DIMS = "    dims_per_image = int(np.prod(tuple(img_shape)[1:]))\n"
LME_RET = "    return (y - m).exp().mean(dim=-1).log() + m.squeeze(-1)\n"
IW_RET = "    return log_mean_exp(log_px_given_z + log_pz - log_qz_given_x)\n"
MC_Z = "    z = mu_q + torch.exp(0.5 * logvar_q) * torch.randn_like(mu_q)\n"
KLA_EXPR = "        logvar_p - logvar_q + (logvar_q.exp() + (mu_q - mu_p).pow(2)) * torch.exp(-logvar_p) - 1\n"

MUTANTS: list[Mutant] = [
    # ---- sample_reparameterize
    m("reparam_variance", REPARAM, U, Z, "    z = mean + std ** 2 * eps\n", "variance used instead of std"),
    m("reparam_detached", REPARAM, U, Z, "    z = (mean + std * eps).detach()\n", "no gradient"),
    m("reparam_torch_normal", REPARAM, U, EPS + Z, "    z = torch.normal(mean, std)\n", "torch.normal"),
    m("reparam_no_grad", REPARAM, U, EPS + Z, "    with torch.no_grad():\n        z = mean + std * torch.randn_like(std)\n",
      "no gradient"),
    m("reparam_shared_noise", REPARAM, U, EPS, "    eps = torch.randn(std.shape[-1])\n", "shared noise"),
    m("reparam_ignores_std", REPARAM, U, Z, "    z = mean + eps\n", "std ignored"),
    m("reparam_reseeds", REPARAM, U, EPS, "    torch.manual_seed(0)\n" + EPS, "same noise on every call"),
    m("reparam_std_as_log_std", REPARAM, U, Z, "    z = mean + torch.exp(std) * eps\n", "std treated as a log std"),
    # ---- KLD
    m("kld_not_summed", KLD, U, KLD_SUM, "    return 0.5 * per_dim\n", "not summed"),
    m("kld_averaged", KLD, U, KLD_SUM, "    return 0.5 * per_dim.mean(dim=-1)\n", "averaged over the latent dimension"),
    m("kld_log_std_as_logvar", KLD, U, KLD_TERMS, "    per_dim = torch.exp(log_std) + mean.pow(2) - 1 - log_std\n",
      "log_std used as a log-variance"),
    m("kld_missing_half", KLD, U, KLD_SUM, "    return per_dim.sum(dim=-1)\n", "missing the factor 1/2"),
    m("kld_missing_minus_one", KLD, U, KLD_TERMS, "    per_dim = torch.exp(2 * log_std) + mean.pow(2) - 2 * log_std\n",
      "missing the -1 term"),
    m("kld_wrong_sign", KLD, U, KLD_SUM, "    return -0.5 * per_dim.sum(dim=-1)\n", "wrong sign"),
    m("kld_sum_dim1", KLD, U, KLD_SUM, "    return 0.5 * per_dim.sum(dim=1)\n", "dim=1"),
    m("kld_sum_all", KLD, U, KLD_SUM, "    return 0.5 * per_dim.sum()\n", "summed over all dimensions"),
    # ---- elbo_to_bpd
    m("bpd_nats", BPD, U, "    return elbo * math.log2(math.e) / dims_per_image\n", "    return elbo / dims_per_image\n", "nats"),
    m("bpd_divides_batch", BPD, U, BPD_DIMS, "    dims_per_image = int(np.prod(tuple(img_shape)))\n", "batch size too"),
    m("bpd_784", BPD, U, BPD_DIMS, "    dims_per_image = 784\n", "784"),
    m("bpd_ignores_channels", BPD, U, BPD_DIMS, "    dims_per_image = int(np.prod(tuple(img_shape)[2:]))\n", "channels ignored"),
    # ---- CNNEncoder
    m("enc_z_dim_hard_coded", ENC, C, "nn.Linear(2 * c * 4 * 4, 2 * z_dim),", "nn.Linear(2 * c * 4 * 4, 2 * 20),"),
    m("enc_chunk_batch_dim", ENC, C, "self.net(x).chunk(2, dim=1)", "self.net(x).chunk(2, dim=0)"),
    m("enc_detached", ENC, C, "self.net(x).chunk(2, dim=1)", "self.net(x).detach().chunk(2, dim=1)", "cut from the graph"),
    m("enc_same_output", ENC, C, "        mean, log_std = self.net(x).chunk(2, dim=1)\n",
      "        mean = self.net(x)[:, ::2]\n        log_std = mean\n", "same output"),
    # ---- CNNDecoder
    m("dec_softmax", DEC, C, "        return self.net(h)\n", "        return torch.softmax(self.net(h), dim=1)\n", "softmax"),
    m("dec_sigmoid", DEC, C, "        return self.net(h)\n", "        return torch.sigmoid(self.net(h))\n", "probabilities"),
    # tanh keeps outputs in [-1, 1], so the [0, 1] test passes; the decoder-alone fit catches it.
    m("dec_tanh", DEC, C, "        return self.net(h)\n", "        return torch.tanh(self.net(h))\n", "squashed"),
    m("dec_27_pixels", DEC, C, "nn.ConvTranspose2d(c, num_input_channels, kernel_size=3, padding=1, output_padding=1, stride=2)",
      "nn.ConvTranspose2d(c, num_input_channels, kernel_size=3, padding=1, stride=2)"),
    m("dec_detached_linear", DEC, C, "        h = self.linear(z)\n", "        h = self.linear(z).detach()\n", "cut from the graph"),
    # ---- estimators
    m("bern_wrong_sign", BERN, E, "    return (target * torch.log(mu) + (1 - target) * torch.log1p(-mu)).sum(dim=1)\n",
      "    return -(target * torch.log(mu) + (1 - target) * torch.log1p(-mu)).sum(dim=1)\n", "wrong sign"),
    m("normal_no_constant", NORMAL, E, "    per_dim = _log_normal_per_dim(mu, logvar, z)\n",
      "    per_dim = _log_normal_per_dim(mu, logvar, z) + 0.5 * LOG_2PI\n", "Gaussian constant"),
    m("normal_logvar_as_log_std", NORMAL, E, "    per_dim = _log_normal_per_dim(mu, logvar, z)\n",
      "    per_dim = _log_normal_per_dim(mu, 2 * logvar, z)\n", "log standard deviation"),
    m("lme_naive", LME, E, LME_RET, "    return y.exp().mean(dim=-1).log()\n", "naive"),
    m("lme_missing_log_k", LME, E, LME_RET, "    return (y - m).exp().sum(dim=-1).log() + m.squeeze(-1)\n", "missing log K"),
    m("kla_swapped", KLA, E, KLA_EXPR,
      "        logvar_q - logvar_p + (logvar_p.exp() + (mu_q - mu_p).pow(2)) * torch.exp(-logvar_q) - 1\n", "swapped"),
    m("kla_missing_minus_one", KLA, E, KLA_EXPR, KLA_EXPR.replace(" - 1\n", "\n"), "-1 term"),
    m("klmc_std_is_var", KLMC, E, MC_Z, "    z = mu_q + torch.exp(logvar_q) * torch.randn_like(mu_q)\n", "exp(logvar_q)"),
    m("klmc_ignores_num_samples", KLMC, E, "    if mu_q.shape[1] == 1 and num_samples > 1:\n", "    if False:\n"),
    m("klmc_reversed_ratio", KLMC, E, "    return (log_q - log_p).mean(dim=1)\n", "    return (log_p - log_q).mean(dim=1)\n", "-KL"),
    m("klmc_no_sampling", KLMC, E, MC_Z, "    z = mu_q\n", "no sampling"),
    m("iw_missing_log_k", IW, E, IW_RET, "    return torch.logsumexp(log_px_given_z + log_pz - log_qz_given_x, dim=-1)\n",
      "missing log K"),
    m("iw_elbo", IW, E, IW_RET, "    return (log_px_given_z + log_pz - log_qz_given_x).mean(dim=-1)\n", "ELBO"),
    m("iw_plus_log_q", IW, E, IW_RET, "    return log_mean_exp(log_px_given_z + log_pz + log_qz_given_x)\n",
      "added instead of subtracted"),
]

ALT_ENCODER_INIT = """\
        # Pooling instead of strides, ReLU, and two separate heads.
        self.features = nn.Sequential(
            nn.Conv2d(num_input_channels, num_filters, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),  # 28 -> 14
            nn.Conv2d(num_filters, 2 * num_filters, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),  # 14 -> 7
            nn.Flatten(),
            nn.Linear(2 * num_filters * 7 * 7, 128), nn.ReLU(),
        )
        self.mean_head = nn.Linear(128, z_dim)
        self.log_std_head = nn.Linear(128, z_dim)
"""
ALT_ENCODER_FORWARD = """\
        h = self.features(x)
        return self.mean_head(h), self.log_std_head(h)
"""
ALT_DECODER_INIT = """\
        # Upsampling + convolutions with batch norm instead of transposed convolutions.
        self.num_filters = num_filters
        self.fc = nn.Sequential(nn.Linear(z_dim, 2 * num_filters * 7 * 7), nn.ReLU())
        self.up = nn.Sequential(
            nn.Upsample(scale_factor=2), nn.Conv2d(2 * num_filters, num_filters, 3, padding=1),  # 7 -> 14
            nn.BatchNorm2d(num_filters), nn.ReLU(),
            nn.Upsample(scale_factor=2), nn.Conv2d(num_filters, num_input_channels, 3, padding=1),  # 14 -> 28
        )
"""
ALT_DECODER_FORWARD = """\
        h = self.fc(z).view(-1, 2 * self.num_filters, 7, 7)
        return self.up(h)
"""

KL_MC_EXPLICIT = """\
    if mu_q.dim() == 2:  # [B, D] -> [B, S, D]
        mu_q, logvar_q, mu_p, logvar_p = (t.unsqueeze(1).expand(-1, num_samples, -1) for t in (mu_q, logvar_q, mu_p, logvar_p))
    b, s, d = mu_q.shape
    z = mu_q + torch.exp(0.5 * logvar_q) * torch.randn(b, s, d)
    flat = lambda t: t.reshape(b * s, d)
    log_q = log_likelihood_normal(flat(mu_q), flat(logvar_q), flat(z)).view(b, s)
    log_p = log_likelihood_normal(flat(mu_p), flat(logvar_p), flat(z)).view(b, s)
    return (log_q - log_p).mean(dim=1)
"""

VARIANTS: list[Variant] = [
    Variant("kld_logvar_form", KLD, (replace_body(U, "KLD", """\
    logvar = 2 * log_std
    return -0.5 * torch.sum(1 + logvar - mean ** 2 - logvar.exp(), dim=-1)
"""),)),
    Variant("kld_std_pow", KLD, (replace_body(U, "KLD", """\
    std = torch.exp(log_std)
    return 0.5 * (torch.pow(std, 2) + torch.pow(mean, 2) - 1 - torch.log(torch.pow(std, 2))).sum(-1)
"""),)),
    Variant("reparam_randn_shape", REPARAM, (replace_body(U, "sample_reparameterize", """\
    noise = torch.randn(mean.shape, dtype=mean.dtype, device=mean.device)
    return noise * std + mean
"""),)),
    Variant("reparam_normal_noise_addcmul", REPARAM, (replace_body(U, "sample_reparameterize", """\
    eps = torch.normal(torch.zeros_like(std), torch.ones_like(std))
    return torch.addcmul(mean, std, eps)
"""),)),
    Variant("bpd_math_log", BPD, (replace_body(U, "elbo_to_bpd", """\
    _, c, h, w = img_shape
    return elbo / math.log(2) / (c * h * w)
"""),)),
    Variant("bpd_torch_tensors", BPD, (replace_body(U, "elbo_to_bpd", """\
    d = torch.tensor(img_shape[1:]).prod()
    return elbo * torch.log2(torch.tensor(math.e)) / d
"""),)),
    Variant("cnn_pool_upsample", ENC, (
        replace_body(C, "CNNEncoder", ALT_ENCODER_INIT, 0), replace_body(C, "CNNEncoder", ALT_ENCODER_FORWARD, 1),
        replace_body(C, "CNNDecoder", ALT_DECODER_INIT, 0), replace_body(C, "CNNDecoder", ALT_DECODER_FORWARD, 1))),
    Variant("dec_log_softmax", DEC, (Edit("part1", C, "        return self.net(h)\n",
                                          "        return torch.log_softmax(self.net(h), dim=1)  # log-probabilities are logits too\n"),)),
    Variant("bern_clamped_log", BERN, (replace_body(E, "log_likelihood_bernoulli", """\
    mu = mu.clamp(1e-6, 1 - 1e-6)
    return torch.sum(target * torch.log(mu) + (1 - target) * torch.log(1 - mu), dim=1)
"""),)),
    Variant("normal_var_form", NORMAL, (replace_body(E, "log_likelihood_normal", """\
    var = logvar.exp()
    return (-0.5 * ((z - mu) ** 2 / var + logvar + math.log(2 * math.pi))).sum(dim=-1)
"""),)),
    Variant("lme_logsumexp", LME, (replace_body(E, "log_mean_exp", """\
    return torch.logsumexp(y, dim=-1) - math.log(y.shape[-1])
"""),)),
    Variant("kla_variance_ratio", KLA, (replace_body(E, "kl_gaussian_gaussian_analytic", """\
    var_q, var_p = logvar_q.exp(), logvar_p.exp()
    return 0.5 * torch.sum(torch.log(var_p / var_q) + (var_q + (mu_q - mu_p) ** 2) / var_p - 1, dim=1)
"""),)),
    Variant("klmc_explicit_densities", KLMC, (replace_body(E, "kl_gaussian_gaussian_mc", KL_MC_EXPLICIT),)),
    Variant("iw_logsumexp", IW, (replace_body(E, "importance_weighted_log_likelihood", """\
    log_w = log_px_given_z + log_pz - log_qz_given_x
    return torch.logsumexp(log_w, dim=-1) - math.log(log_w.shape[-1])
"""),)),
]
