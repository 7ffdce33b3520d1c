"""Mutants and variants of ``VAE.forward``, ``VAE.sample`` (train_torch.py) and ``visualize_manifold`` (utils.py).

A *mutant* is the reference with one realistic student mistake: graded with the
``quick`` profile on part 1, it must lose points on a check tagged with the mutated
function, on no check of another function, and name its mistake where ``mistake`` is
set. A *variant* is a correct implementation written differently: full marks.

Edits are literal find/replace on the reference files (``tests.support.Edit``; each
``find`` must occur exactly once). Whole bodies are replaced through
:func:`tests.mutants_part1_functions.replace_body`, which reads the fenced solution
block from ``solutions/`` so the edits survive reformatting of the reference.
"""
from __future__ import annotations

from tests.mutants_part1_functions import replace_body
from tests.support import Edit, Mutant, Variant

T, U = "train_torch.py", "utils.py"
FORWARD = "part1.train.VAE.forward"
SAMPLE = "part1.train.VAE.sample"
MANIFOLD = "part1.utils.visualize_manifold"


def m(id: str, function: str, file: str, find: str, replace: str, mistake: str | None = None) -> Mutant:
    return Mutant(id, function, (Edit("part1", file, find, replace),), mistake)


CE_LINE = 'L_rec_i = F.cross_entropy(logits, targets, reduction="none").flatten(1).sum(dim=1)'
RETURN_LINE = "return L_rec_i.mean(), L_reg_i.mean(), bpd"
Z_LINE = "z = sample_reparameterize(mean, torch.exp(log_std))"
PRIOR_LINE = "z = torch.randn(batch_size, self.z_dim, device=self.decoder.device)"
MULTINOMIAL_LINE = "pixels = torch.multinomial(flat, num_samples=1)"
PERCENTILES_LINE = "percentiles = (np.arange(grid_size) + 0.5) / grid_size"
QUANTILES_LINE = "quantiles = torch.as_tensor(norm.ppf(percentiles), dtype=torch.float32)"
IMAGES_LINE = "images = (probs * levels).sum(dim=1, keepdim=True) / (probs.shape[1] - 1)"

MUTANTS: list[Mutant] = [
    # ---------------------------------------------------------------- VAE.forward
    m("forward_rec_averaged_over_pixels", FORWARD, T, CE_LINE, CE_LINE.replace(".sum(dim=1)", ".mean(dim=1)"),
      "averaged over the pixels"),
    m("forward_rec_summed_over_batch", FORWARD, T, CE_LINE,
      'L_rec_i = F.cross_entropy(logits, targets, reduction="sum").expand(imgs.shape[0])',
      "L_rec summed over the batch"),
    m("forward_double_softmax", FORWARD, T, "logits = self.decoder(z)  # [B, 16, H, W]",
      "logits = torch.softmax(self.decoder(z), dim=1)", "softmax applied before the cross-entropy"),
    m("forward_reg_summed_over_batch", FORWARD, T, RETURN_LINE, "return L_rec_i.mean(), L_reg_i.sum(), bpd",
      "L_reg summed over the batch"),
    m("forward_no_sampling", FORWARD, T, Z_LINE, "z = mean", "no sampling in forward"),
    m("forward_log_std_as_log_variance", FORWARD, T, Z_LINE, "z = sample_reparameterize(mean, torch.exp(0.5 * log_std))",
      "log_std treated as a log-variance"),
    m("forward_kld_given_std", FORWARD, T, "L_reg_i = KLD(mean, log_std)", "L_reg_i = KLD(mean, torch.exp(log_std))",
      "KLD given the std"),
    m("forward_bpd_without_kl", FORWARD, T, "bpd = elbo_to_bpd(L_rec_i + L_reg_i, imgs.shape).mean()",
      "bpd = elbo_to_bpd(L_rec_i, imgs.shape).mean()", "the KL term is missing"),
    m("forward_loss_detached", FORWARD, T, RETURN_LINE, "return L_rec_i.mean(), L_reg_i.mean(), bpd.detach()",
      "cut from the graph"),
    # ---------------------------------------------------------------- VAE.sample
    m("sample_argmax", SAMPLE, T, MULTINOMIAL_LINE, "pixels = flat.argmax(dim=1, keepdim=True)", "sample by argmax"),
    m("sample_expected_value", SAMPLE, T, MULTINOMIAL_LINE,
      "pixels = (flat * torch.arange(k, device=flat.device)).sum(dim=1, keepdim=True)",
      "expected values or probabilities returned"),
    m("sample_uniform_prior", SAMPLE, T, PRIOR_LINE,
      "z = torch.rand(batch_size, self.z_dim, device=self.decoder.device)", "uniform noise (torch.rand)"),
    m("sample_zero_prior", SAMPLE, T, PRIOR_LINE,
      "z = torch.zeros(batch_size, self.z_dim, device=self.decoder.device)", "z = zeros"),
    m("sample_reshape_without_permute", SAMPLE, T, "flat = probs.permute(0, 2, 3, 1).reshape(-1, k)",
      "flat = probs.reshape(-1, k)", "without moving the 16 levels last"),
    # ---------------------------------------------------------------- visualize_manifold
    m("manifold_linspace", MANIFOLD, U, QUANTILES_LINE, "quantiles = torch.linspace(-2.0, 2.0, grid_size)", "linspace"),
    m("manifold_percentile_offset", MANIFOLD, U, PERCENTILES_LINE, "percentiles = np.arange(grid_size) / grid_size",
      "i/grid_size"),
    m("manifold_percentiles_plus_one", MANIFOLD, U, PERCENTILES_LINE,
      "percentiles = (np.arange(grid_size) + 1) / (grid_size + 1)", "(i + 1)/(grid_size + 1)"),
    m("manifold_argmax", MANIFOLD, U, IMAGES_LINE, "images = probs.argmax(dim=1, keepdim=True).float() / 15", "argmax"),
    m("manifold_samples", MANIFOLD, U, IMAGES_LINE,
      "images = torch.multinomial(probs.permute(0, 2, 3, 1).reshape(-1, 16), 1).reshape(-1, 1, 28, 28).float() / 15",
      "random samples shown instead of the expected"),
    m("manifold_divided_by_16", MANIFOLD, U, IMAGES_LINE,
      "images = (probs * levels).sum(dim=1, keepdim=True) / probs.shape[1]", "divided by 16"),
    m("manifold_make_grid_default_nrow", MANIFOLD, U, "img_grid = make_grid(images, nrow=grid_size)",
      "img_grid = make_grid(images)", "without nrow=grid_size"),
]


FORWARD_CE_SUM = '''
        mean, log_std = self.encoder(imgs)
        std = log_std.exp()
        z = mean + std * torch.randn_like(std)
        logits = self.decoder(z)
        batch = imgs.shape[0]
        L_rec = F.cross_entropy(logits, imgs.squeeze(1), reduction="sum") / batch
        L_reg = KLD(mean, log_std).mean()
        bpd = elbo_to_bpd(L_rec + L_reg, imgs.shape)  # linear: the bpd of the mean ELBO is the mean bpd
        return L_rec, L_reg, bpd
'''

FORWARD_GATHER = '''
        mean, log_std = self.encoder(imgs)
        z = sample_reparameterize(mean, torch.exp(log_std))
        log_p = torch.log_softmax(self.decoder(z), dim=1)
        L_rec_i = -log_p.gather(1, imgs).sum(dim=(1, 2, 3))
        log_var = 2 * log_std
        L_reg_i = -0.5 * torch.sum(1 + log_var - mean.pow(2) - log_var.exp(), dim=1)
        dims = imgs.shape[1] * imgs.shape[2] * imgs.shape[3]
        bpd = ((L_rec_i + L_reg_i) / torch.log(torch.tensor(2.0)) / dims).mean()
        return L_rec_i.mean(), L_reg_i.mean(), bpd
'''

SAMPLE_INVERSE_CDF = '''
        z = torch.randn(batch_size, self.z_dim, device=self.decoder.device)
        probs = torch.softmax(self.decoder(z), dim=1)
        cdf = probs.cumsum(dim=1)
        u = torch.rand_like(cdf[:, :1])
        return (u > cdf).sum(dim=1, keepdim=True).clamp(max=15).long()
'''

SAMPLE_GUMBEL = '''
        z = torch.randn(batch_size, self.z_dim, device=self.decoder.device)
        logits = self.decoder(z)
        gumbel = -torch.log(-torch.log(torch.rand_like(logits).clamp(1e-20, 1.0)))
        return (logits + gumbel).argmax(dim=1, keepdim=True)
'''

MANIFOLD_ERFINV_TRANSPOSED = '''
    from torchvision.utils import make_grid

    p = (torch.arange(grid_size, dtype=torch.float32) + 0.5) / grid_size
    q = torch.erfinv(2 * p - 1) * math.sqrt(2)  # the standard-normal quantiles, without scipy
    images = []
    for a in q:
        for b in q:  # one latent at a time; columns vary z0 (a transposed layout)
            z = torch.stack([b, a]).view(1, 2).to(decoder.device)
            probs = torch.softmax(decoder(z), dim=1)
            levels = torch.arange(16, device=probs.device, dtype=probs.dtype).view(1, 16, 1, 1)
            images.append((probs * levels).sum(dim=1, keepdim=True) / 15)
    return make_grid(torch.cat(images), nrow=grid_size, padding=2)
'''

MANIFOLD_NUMPY_FLIPPED = '''
    from scipy.stats import norm
    from torchvision.utils import make_grid

    q = norm.ppf(np.linspace(0.5 / grid_size, 1 - 0.5 / grid_size, grid_size))[::-1].copy()  # top row: high z0
    zz = np.array([[a, b] for a in q for b in q], dtype=np.float32)
    logits = decoder(torch.from_numpy(zz).to(decoder.device))
    expected = torch.einsum("nkhw,k->nhw", logits.softmax(dim=1), torch.arange(16.0, device=logits.device))
    return make_grid(expected.unsqueeze(1) / 15.0, nrow=grid_size)
'''

VARIANTS: list[Variant] = [
    Variant("forward_cross_entropy_sum_over_batch", FORWARD, (replace_body(T, "forward", FORWARD_CE_SUM),)),
    Variant("forward_log_softmax_gather_inline_kl", FORWARD, (replace_body(T, "forward", FORWARD_GATHER),)),
    Variant("sample_inverse_cdf", SAMPLE, (replace_body(T, "sample", SAMPLE_INVERSE_CDF),)),
    Variant("sample_gumbel_max", SAMPLE, (replace_body(T, "sample", SAMPLE_GUMBEL),)),
    Variant("manifold_erfinv_one_by_one_transposed", MANIFOLD, (replace_body(U, "visualize_manifold", MANIFOLD_ERFINV_TRANSPOSED),)),
    Variant("manifold_numpy_grid_flipped_einsum", MANIFOLD, (replace_body(U, "visualize_manifold", MANIFOLD_NUMPY_FLIPPED),)),
]
