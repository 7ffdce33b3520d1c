"""The catalogue of known part-1 mistakes, one dict per student function.

A check first compares the student's output with the reference; only when that
fails does it ask this module whether the wrong output matches a known mistake, and
then names it ("Likely mistake: ...").

Four kinds of entries, each a dict ``function id -> {mistake name: function}``:

- ``OUTPUTS``: deterministic functions. The entry computes the *wrong* output from
  the same inputs (converted to float64); :func:`diagnose` returns the first name
  whose output has the student's shape and values.
- ``NOISE``: ``sample_reparameterize``. The entry maps ``(z, mean, std)`` back to the
  noise the mistaken formula would have used; :func:`diagnose_noise` returns the
  first whose noise passes the same normality test the check uses.
- ``EXPECTATIONS``: Monte-Carlo estimators. The entry gives the value the mistaken
  estimator converges to; :func:`diagnose_expectation` compares within a tolerance.
- ``PREDICATES``: modules (the decoder). The entry says whether an output looks like
  the mistake (e.g. rows that sum to 1 after a softmax).

Names are phrased for the student: what was computed, and what was expected.
Other part-1 checks (VAE, manifold) add their own dicts to these tables.
"""
from __future__ import annotations

import math
from typing import Any, Callable

import numpy as np
import torch
from torch import Tensor

from autograder.checks.part1.stat_tests import ks_normal_pvalue, normal_quantile

LOG2E = math.log2(math.e)
LOG_2PI = math.log(2 * math.pi)


# ----------------------------------------------------------------------------- utils.py
def _kl_terms(mean: Tensor, log_std: Tensor) -> Tensor:
    return torch.exp(2 * log_std) + mean**2 - 1 - 2 * log_std


KLD: dict[str, Callable[..., Tensor]] = {
    "KL not summed over the last dimension (one value per latent coordinate was returned)":
        lambda m, l: 0.5 * _kl_terms(m, l),
    "KL averaged over the latent dimension instead of summed":
        lambda m, l: 0.5 * _kl_terms(m, l).mean(-1),
    "log_std used as a log-variance (exp(log_std) - log_std where exp(2*log_std) - 2*log_std is needed)":
        lambda m, l: 0.5 * (torch.exp(l) + m**2 - 1 - l).sum(-1),
    "missing the factor 1/2":
        lambda m, l: _kl_terms(m, l).sum(-1),
    "missing the -1 term":
        lambda m, l: 0.5 * (torch.exp(2 * l) + m**2 - 2 * l).sum(-1),
    "wrong sign (computed -KL)":
        lambda m, l: -0.5 * _kl_terms(m, l).sum(-1),
    "summed over dim=1 instead of the last dim (dim=-1)":
        lambda m, l: 0.5 * _kl_terms(m, l).sum(1),
    "summed over all dimensions (one number for the whole batch)":
        lambda m, l: 0.5 * _kl_terms(m, l).sum(),
    "KL summed per example, then averaged over the batch (one number returned)":
        lambda m, l: 0.5 * _kl_terms(m, l).sum(-1).mean(),
    "std used where the variance belongs (exp(log_std) instead of exp(2*log_std))":
        lambda m, l: 0.5 * (torch.exp(l) + m**2 - 1 - 2 * l).sum(-1),
    "log std used where the log-variance belongs (log_std instead of 2*log_std)":
        lambda m, l: 0.5 * (torch.exp(2 * l) + m**2 - 1 - l).sum(-1),
    "mean not squared":
        lambda m, l: 0.5 * (torch.exp(2 * l) + m - 1 - 2 * l).sum(-1),
}


def _pixels(shape: Any) -> int:
    return int(np.prod(list(shape)[1:]))


ELBO_TO_BPD: dict[str, Callable[..., Tensor]] = {
    "no log2(e) factor: the result is in nats per dimension, not bits":
        lambda e, s: e / _pixels(s),
    "divided by the batch size too (the product of the whole img_shape, batch included)":
        lambda e, s: e * LOG2E / int(np.prod(list(s))),
    "hard-coded 784 = 28*28 pixels instead of C*H*W from img_shape":
        lambda e, s: e * LOG2E / 784,
    "channels ignored (divided by H*W instead of C*H*W)":
        lambda e, s: e * LOG2E / int(np.prod(list(s)[2:])),
    "multiplied by ln(2) instead of dividing by it":
        lambda e, s: e * math.log(2) / _pixels(s),
    "averaged over the batch (one number returned instead of one per image)":
        lambda e, s: (e * LOG2E / _pixels(s)).mean(),
}

# sample_reparameterize: the noise that each mistaken formula would have drawn.
REPARAM_NOISE: dict[str, Callable[[Tensor, Tensor, Tensor], Tensor]] = {
    "variance used instead of std (z = mean + std**2 * eps)": lambda z, m, s: (z - m) / s**2,
    "std ignored (z = mean + eps)": lambda z, m, s: z - m,
    "std treated as a variance (z = mean + sqrt(std) * eps)": lambda z, m, s: (z - m) / s.sqrt(),
    "std treated as a log-variance (z = mean + exp(0.5*std) * eps)": lambda z, m, s: (z - m) / torch.exp(0.5 * s),
    "std treated as a log std (z = mean + exp(std) * eps)": lambda z, m, s: (z - m) / torch.exp(s),
    # torch.rand gives U(0,1) noise; the normal quantile of uniform noise is standard normal.
    "uniform noise (torch.rand) instead of standard normal noise (torch.randn)":
        lambda z, m, s: normal_quantile(((z - m) / s).clamp(1e-12, 1 - 1e-12)),
}


# ----------------------------------------------------------------------------- estimators.py
def _log_normal(mu: Tensor, logvar: Tensor, z: Tensor) -> Tensor:
    return -0.5 * (LOG_2PI + logvar + (z - mu) ** 2 * torch.exp(-logvar))


def _kl(mq: Tensor, lq: Tensor, mp: Tensor, lp: Tensor) -> Tensor:
    return 0.5 * (lp - lq + (lq.exp() + (mq - mp) ** 2) / lp.exp() - 1)


def _naive_lme(y: Tensor) -> Tensor:
    return y.float().exp().mean(-1).log().double()


BERNOULLI: dict[str, Callable[..., Tensor]] = {
    "wrong sign: returned the binary cross-entropy (a negative log-likelihood)":
        lambda mu, x: -(x * mu.log() + (1 - x) * torch.log1p(-mu)).sum(-1),
    "averaged over the D dimensions instead of summed":
        lambda mu, x: (x * mu.log() + (1 - x) * torch.log1p(-mu)).mean(-1),
    "summed over the batch too (one number returned)":
        lambda mu, x: (x * mu.log() + (1 - x) * torch.log1p(-mu)).sum(),
    "x and 1-x swapped (log(mu) weighted by 1-x)":
        lambda mu, x: ((1 - x) * mu.log() + x * torch.log1p(-mu)).sum(-1),
}

NORMAL: dict[str, Callable[..., Tensor]] = {
    "missing the Gaussian constant -0.5*log(2*pi) per dimension":
        lambda mu, lv, z: (_log_normal(mu, lv, z) + 0.5 * LOG_2PI).sum(-1),
    "logvar used as a log standard deviation (variance exp(2*logvar))":
        lambda mu, lv, z: _log_normal(mu, 2 * lv, z).sum(-1),
    "wrong sign (returned the negative log-density)":
        lambda mu, lv, z: -_log_normal(mu, lv, z).sum(-1),
    "missing the 1/2 on the squared term":
        lambda mu, lv, z: (-0.5 * (LOG_2PI + lv) - (z - mu) ** 2 * torch.exp(-lv)).sum(-1),
    "missing the -0.5*logvar normalisation term":
        lambda mu, lv, z: (-0.5 * (LOG_2PI + (z - mu) ** 2 * torch.exp(-lv))).sum(-1),
    "the variance exp(logvar) multiplies the squared term instead of dividing it":
        lambda mu, lv, z: (-0.5 * (LOG_2PI + lv + (z - mu) ** 2 * torch.exp(lv))).sum(-1),
    "averaged over the D dimensions instead of summed":
        lambda mu, lv, z: _log_normal(mu, lv, z).mean(-1),
}

LOG_MEAN_EXP: dict[str, Callable[..., Tensor]] = {
    "missing log K: this is log-sum-exp, not log-mean-exp":
        lambda y: torch.logsumexp(y, -1),
    "naive log(mean(exp(y))): exp overflows to inf (or underflows to 0, log 0 = -inf) for large |y|":
        _naive_lme,
    "the maximum is subtracted but not added back":
        lambda y: (y - y.max(-1, keepdim=True).values).exp().mean(-1).log(),
    "reduced over dim=0 instead of the last dim":
        lambda y: torch.logsumexp(y, 0) - math.log(y.shape[0]),
}

KL_ANALYTIC: dict[str, Callable[..., Tensor]] = {
    "KL arguments swapped: computed KL(p || q) instead of KL(q || p)":
        lambda mq, lq, mp, lp: _kl(mp, lp, mq, lq).sum(-1),
    "missing the factor 1/2":
        lambda mq, lq, mp, lp: (2 * _kl(mq, lq, mp, lp)).sum(-1),
    "missing the -1 term":
        lambda mq, lq, mp, lp: (_kl(mq, lq, mp, lp) + 0.5).sum(-1),
    "log-variances used as log standard deviations":
        lambda mq, lq, mp, lp: _kl(mq, 2 * lq, mp, 2 * lp).sum(-1),
    "wrong sign (computed -KL)":
        lambda mq, lq, mp, lp: -_kl(mq, lq, mp, lp).sum(-1),
    "KL not summed over D (one value per dimension)":
        lambda mq, lq, mp, lp: _kl(mq, lq, mp, lp),
    "KL averaged over D instead of summed":
        lambda mq, lq, mp, lp: _kl(mq, lq, mp, lp).mean(-1),
}

IMPORTANCE_WEIGHTED: dict[str, Callable[..., Tensor]] = {
    "missing log K: log-sum-exp of the log-weights instead of log-mean-exp":
        lambda a, b, c: torch.logsumexp(a + b - c, -1),
    "plain mean of the log-weights (that is the ELBO estimate), not the log of the mean weight":
        lambda a, b, c: (a + b - c).mean(-1),
    "log q(z|x) added instead of subtracted":
        lambda a, b, c: torch.logsumexp(a + b + c, -1) - math.log(a.shape[-1]),
    "log p(z) left out of the weights":
        lambda a, b, c: torch.logsumexp(a - c, -1) - math.log(a.shape[-1]),
    "naive log(mean(exp(.))) of the log-weights: exp underflows to 0 at VAE magnitudes (log 0 = -inf)":
        lambda a, b, c: _naive_lme(a + b - c),
}

OUTPUTS: dict[str, dict[str, Callable[..., Tensor]]] = {
    "part1.utils.KLD": KLD,
    "part1.utils.elbo_to_bpd": ELBO_TO_BPD,
    "part1.estimators.log_likelihood_bernoulli": BERNOULLI,
    "part1.estimators.log_likelihood_normal": NORMAL,
    "part1.estimators.log_mean_exp": LOG_MEAN_EXP,
    "part1.estimators.kl_gaussian_gaussian_analytic": KL_ANALYTIC,
    "part1.estimators.importance_weighted_log_likelihood": IMPORTANCE_WEIGHTED,
}

NOISE: dict[str, dict[str, Callable[[Tensor, Tensor, Tensor], Tensor]]] = {
    "part1.utils.sample_reparameterize": REPARAM_NOISE,
}


def _mc_wrong_std(mq: Tensor, lq: Tensor, mp: Tensor, lp: Tensor) -> Tensor:
    # z ~ N(mq, exp(lq)^2): E[log q(z)] and E[log p(z)] in closed form.
    var_z = torch.exp(2 * lq)
    log_q = -0.5 * (LOG_2PI + lq + var_z / lq.exp())
    log_p = -0.5 * (LOG_2PI + lp + (var_z + (mq - mp) ** 2) / lp.exp())
    return (log_q - log_p).sum(-1)


KL_MC: dict[str, Callable[..., Tensor]] = {
    "KL arguments swapped: the estimate converges to KL(p || q), not KL(q || p)":
        lambda mq, lq, mp, lp: _kl(mp, lp, mq, lq).sum(-1),
    "log p - log q instead of log q - log p: the estimate converges to -KL":
        lambda mq, lq, mp, lp: -_kl(mq, lq, mp, lp).sum(-1),
    "samples drawn with std = exp(logvar_q) instead of exp(0.5*logvar_q)": _mc_wrong_std,
    "no sampling: z = mu_q instead of z = mu_q + std * eps":
        lambda mq, lq, mp, lp: (_log_normal(mq, lq, mq) - _log_normal(mp, lp, mq)).sum(-1),
}

EXPECTATIONS: dict[str, dict[str, Callable[..., Tensor]]] = {
    "part1.estimators.kl_gaussian_gaussian_mc": KL_MC,
}


# ----------------------------------------------------------------------------- cnn_encoder_decoder.py
def _in_unit_interval(out: Tensor) -> bool:
    return bool(((out >= 0) & (out <= 1)).all())


DECODER_OUTPUT: dict[str, Callable[[Tensor], bool]] = {
    "softmax applied in the decoder: it must return raw logits (the loss applies the softmax)":
        lambda out: _in_unit_interval(out) and bool(torch.allclose(out.double().sum(1), torch.ones(1, dtype=torch.float64), atol=1e-4)),
    "probabilities returned (e.g. a final sigmoid): the decoder must return raw, unbounded logits":
        _in_unit_interval,
}

PREDICATES: dict[str, dict[str, Callable[[Tensor], bool]]] = {
    "part1.cnn_encoder_decoder.CNNDecoder": DECODER_OUTPUT,
}


# ----------------------------------------------------------------------------- matching
def _as64(value: Any) -> Any:
    return value.detach().double() if isinstance(value, Tensor) and value.is_floating_point() else value


def same_output(got: Any, want: Tensor, rtol: float = 1e-3, atol: float = 1e-3) -> bool:
    """Loose match for diagnosis: same shape, same non-finite entries, finite ones close."""
    if not isinstance(got, Tensor) or tuple(got.shape) != tuple(want.shape):
        return False
    g, w = got.detach().double(), want.detach().double()
    both = torch.isfinite(g) & torch.isfinite(w)
    if not torch.equal(torch.isfinite(g), torch.isfinite(w)):
        return False
    if not torch.equal(g[~both].nan_to_num(0.0, 1.0, -1.0), w[~both].nan_to_num(0.0, 1.0, -1.0)):
        return False
    scale = w[both].abs().mean().item() if both.any() else 0.0
    return bool(((g[both] - w[both]).abs() <= atol * max(1.0, scale) + rtol * w[both].abs()).all())


def diagnose(function_id: str, got: Any, *args: Any) -> str | None:
    """Name of the known mistake whose output ``got`` matches (inputs as given to the student)."""
    for name, wrong in OUTPUTS.get(function_id, {}).items():
        try:
            candidate = wrong(*[_as64(a) for a in args])
        except Exception:  # a candidate that does not apply to these inputs (e.g. dim=1 of a 1-D tensor)
            continue
        if same_output(got, candidate):
            return name
    return None


def normality_pvalue(noise: Tensor) -> float:
    """Kolmogorov-Smirnov p-value of ``noise`` (flattened) against N(0, 1)."""
    return ks_normal_pvalue(noise)


def diagnose_noise(function_id: str, z: Tensor, mean: Tensor, std: Tensor, alpha: float) -> str | None:
    """Name of the mistaken formula whose implied noise is standard normal (KS p >= alpha)."""
    for name, implied in NOISE.get(function_id, {}).items():
        try:
            if normality_pvalue(implied(z.double(), mean.double(), std.double())) >= alpha:
                return name
        except Exception:
            continue
    return None


def diagnose_expectation(function_id: str, estimate: Tensor, tolerance: Tensor, *args: Any) -> str | None:
    """Name of the mistaken estimator whose limit matches ``estimate`` within ``tolerance``."""
    for name, limit in EXPECTATIONS.get(function_id, {}).items():
        try:
            want = limit(*[_as64(a) for a in args])
        except Exception:
            continue
        if tuple(want.shape) == tuple(estimate.shape) and bool(((estimate.double() - want).abs() <= tolerance).all()):
            return name
    return None


def diagnose_output(function_id: str, out: Tensor) -> str | None:
    """Name of the first predicate that ``out`` satisfies."""
    for name, looks_like in PREDICATES.get(function_id, {}).items():
        if looks_like(out):
            return name
    return None


# ============================================================================= VAE and manifold
# (owned by the VAE checks: test_vae.py, test_manifold.py; registered in the tables above
# under keys "part1.train.VAE.forward:<term>", so diagnose() finds them.)
def _rec_i(logits: Tensor, imgs: Tensor) -> Tensor:
    return -torch.log_softmax(logits, dim=1).gather(1, imgs.long()).flatten(1).sum(1)


# VAE.forward's L_rec, from the decoder's logits [B, 16, 28, 28] and the images [B, 1, 28, 28].
VAE_L_REC: dict[str, Callable[..., Tensor]] = {
    "L_rec averaged over the pixels (F.cross_entropy's default reduction='mean'); sum it over the pixels "
    "of each image, then average over the batch":
        lambda lg, x: _rec_i(lg, x).mean() / _pixels(x.shape),
    "softmax applied before the cross-entropy (a double softmax: F.cross_entropy expects raw logits)":
        lambda lg, x: _rec_i(torch.softmax(lg, dim=1), x).mean(),
    "L_rec summed over the batch instead of averaged over it":
        lambda lg, x: _rec_i(lg, x).sum(),
    "log-softmax taken over the wrong dimension (the 16 levels are dim 1 of the logits)":
        lambda lg, x: -torch.log_softmax(lg, dim=-1).gather(1, x.long()).flatten(1).sum(1).mean(),
}

# VAE.forward's L_reg, from the per-image KL (the student's own KLD) and the encoder's outputs.
VAE_L_REG: dict[str, Callable[..., Tensor]] = {
    "L_reg summed over the batch instead of averaged over it":
        lambda kl, m, l: kl.sum(),
    "KLD given the std exp(log_std) where it expects log_std":
        lambda kl, m, l: KLD_FORMULA(m, torch.exp(l)).mean(),
    "KLD given the variance's log (2*log_std) where it expects log_std":
        lambda kl, m, l: KLD_FORMULA(m, 2 * l).mean(),
}

# VAE.forward's bpd, from the per-image L_rec and KL and the image shape.
VAE_BPD: dict[str, Callable[..., Tensor]] = {
    "bpd of L_rec alone: the KL term is missing from the ELBO":
        lambda r, kl, s: (r * LOG2E / _pixels(s)).mean(),
    "bpd of L_rec - L_reg: the KL term must be added":
        lambda r, kl, s: ((r - kl) * LOG2E / _pixels(s)).mean(),
    "bpd summed over the batch instead of averaged over it":
        lambda r, kl, s: ((r + kl) * LOG2E / _pixels(s)).sum(),
}


def KLD_FORMULA(m: Tensor, l: Tensor) -> Tensor:  # noqa: N802 - the KLD maths, for the candidates above
    return 0.5 * _kl_terms(m, l).sum(-1)


OUTPUTS.update({
    "part1.train.VAE.forward:L_rec": VAE_L_REC,
    "part1.train.VAE.forward:L_reg": VAE_L_REG,
    "part1.train.VAE.forward:bpd": VAE_BPD,
})

# VAE.forward's sampling of z: the noise each mistaken formula would have drawn, from
# (z, mean, std = exp(log_std)); diagnose_noise tests it for standard normality.
FORWARD_NOISE: dict[str, Callable[[Tensor, Tensor, Tensor], Tensor]] = {
    "log_std treated as a log-variance: std = exp(0.5*log_std) instead of exp(log_std)":
        lambda z, m, s: (z - m) / s.sqrt(),
    "the variance exp(2*log_std) used as the std":
        lambda z, m, s: (z - m) / s**2,
    "std ignored (z = mean + eps)":
        lambda z, m, s: z - m,
    "log_std passed where the std belongs (z = mean + log_std * eps)":
        lambda z, m, s: (z - m) / torch.log(s),
}
NOISE["part1.train.VAE.forward"] = FORWARD_NOISE


# VAE.sample: the per-pixel distribution each mistaken sampler draws from, as a table
# [28, 28, 16] of probabilities built from the decoder's logits [16, 28, 28].
# diagnose_sampler names the table under which the samples are far more likely
# than under the decoder's softmax.
def _reshape_without_permute(lg: Tensor) -> Tensor:
    # probs [16, H, W] flattened as rows of 16 *consecutive pixels of one level*:
    # output pixel o takes its weights from level o // 49, pixels 16*(o % 49) ... + 15
    p = torch.softmax(lg, dim=0).reshape(-1, 16)  # what .reshape(-1, 16) of [1, 16, H, W] gives
    return (p / p.sum(1, keepdim=True)).reshape(28, 28, 16)


SAMPLE_TABLES: dict[str, Callable[[Tensor], Tensor]] = {
    "sample by argmax: every pixel takes its most likely value; draw it from the softmax instead "
    "(e.g. torch.multinomial)":
        lambda lg: torch.nn.functional.one_hot(lg.argmax(0), 16).double(),
    "probabilities reshaped to [-1, 16] without moving the 16 levels last: pixels were drawn from "
    "mixed-up distributions (permute(0, 2, 3, 1) before the reshape)":
        _reshape_without_permute,
    "height and width swapped: the sampled image is transposed":
        lambda lg: torch.softmax(lg, dim=0).permute(2, 1, 0),
    "softmax taken over a spatial dimension instead of the 16 levels (dim=1 of [B, 16, H, W])":
        lambda lg: (lambda p: p / p.sum(-1, keepdim=True))(torch.softmax(lg, dim=-1).permute(1, 2, 0)),
    "pixels drawn uniformly from the 16 levels, ignoring the decoder":
        lambda lg: torch.full((28, 28, 16), 1 / 16, dtype=torch.float64),
}


def diagnose_sampler(samples: Tensor, logits: Tensor) -> str | None:
    """Name of the mistaken sampler whose table explains ``samples`` ``[B, 28, 28]`` far better
    (by at least 10 nats per image) than the decoder's softmax; ``logits`` is ``[16, 28, 28]``."""
    lg = logits.double()
    x = samples.long().clamp(0, 15)
    def loglik(table: Tensor) -> float:
        t = table.clamp_min(1e-12).log()  # [28, 28, 16]
        return float(t.unsqueeze(0).expand(x.shape[0], -1, -1, -1).gather(3, x.unsqueeze(-1)).sum())
    right = loglik(torch.softmax(lg, dim=0).permute(1, 2, 0))
    best, name = right + 10.0 * x.shape[0], None
    for candidate, table_of in SAMPLE_TABLES.items():
        value = loglik(table_of(lg))
        if value > best:
            best, name = value, candidate
    return name


# visualize_manifold: the latent values (sorted, one axis) each mistaken grid would use.
MANIFOLD_LATENTS: dict[str, Callable[[int], np.ndarray]] = {
    "percentiles i/grid_size instead of (i + 0.5)/grid_size: norm.ppf(0) = -inf":
        lambda g: normal_quantile(np.arange(g) / g),
    "percentiles (i + 1)/(grid_size + 1) instead of (i + 0.5)/grid_size":
        lambda g: normal_quantile((np.arange(g) + 1) / (g + 1)),
    "percentiles i/(grid_size - 1) instead of (i + 0.5)/grid_size: norm.ppf(0) = -inf, norm.ppf(1) = inf":
        lambda g: normal_quantile(np.arange(g) / max(g - 1, 1)),
    "the percentiles themselves used as latents (norm.ppf missing)":
        lambda g: (np.arange(g) + 0.5) / g,
}
LINSPACE_MISTAKE = ("latents on a linspace (equally spaced) instead of the standard-normal quantiles "
                    "norm.ppf((i + 0.5)/grid_size)")


def diagnose_manifold_latents(axis_values: np.ndarray, grid_size: int) -> str | None:
    """Name the mistaken latent grid whose sorted values match ``axis_values`` (one axis)."""
    v = np.sort(axis_values)
    for name, wrong in MANIFOLD_LATENTS.items():
        w = np.sort(wrong(grid_size))
        if v.shape == w.shape and np.array_equal(np.isfinite(v), np.isfinite(w)) and \
                np.allclose(v[np.isfinite(v)], w[np.isfinite(w)], rtol=1e-4, atol=1e-5):
            return name
    d = np.diff(v)
    if v.size >= 3 and np.all(np.isfinite(d)) and np.allclose(d, d[0], rtol=1e-4, atol=1e-6):
        return LINSPACE_MISTAKE
    return None


# visualize_manifold: the grid each mistake returns, from the decoder's logits [N, 16, H, W]
# for the latents the student used (in the student's order).
def _levels(lg: Tensor) -> Tensor:
    return torch.arange(16, dtype=lg.dtype).view(1, -1, 1, 1)


def _grid(images: Tensor, g: int, **kw: Any) -> Tensor:
    from torchvision.utils import make_grid
    return make_grid(images, nrow=g, **kw)


MANIFOLD_GRIDS: dict[str, Callable[[Tensor, int], Tensor]] = {
    "argmax level shown instead of the expected pixel value sum_k k*p_k/15":
        lambda lg, g: _grid(lg.argmax(1, keepdim=True).double() / 15, g),
    "expected value divided by 16 instead of 15 (levels are 0..15)":
        lambda lg, g: _grid((torch.softmax(lg, 1) * _levels(lg)).sum(1, keepdim=True) / 16, g),
    "expected value not scaled to [0, 1] (divide sum_k k*p_k by 15)":
        lambda lg, g: _grid((torch.softmax(lg, 1) * _levels(lg)).sum(1, keepdim=True), g),
    "make_grid(..., normalize=True) rescales the images; the expected values are already in [0, 1]":
        lambda lg, g: _grid((torch.softmax(lg, 1) * _levels(lg)).sum(1, keepdim=True) / 15, g, normalize=True),
    "probability of the top level (softmax[..., 15]) shown instead of the expected value":
        lambda lg, g: _grid(torch.softmax(lg, 1)[:, 15:16], g),
}
SAMPLES_MISTAKE = ("random samples shown instead of the expected pixel values: every value is a multiple "
                   "of 1/15; show sum_k k*softmax_k/15")


def diagnose_manifold_grid(got: Tensor, logits: Tensor, grid_size: int) -> str | None:
    """Name the mistake whose grid (from ``logits`` of the student's own latents) matches ``got``."""
    for name, wrong in MANIFOLD_GRIDS.items():
        try:
            want = wrong(logits.double(), grid_size)
        except Exception:
            continue
        if same_output(got, want, rtol=1e-3, atol=1e-3):
            return name
    g = got.double()
    if g.numel() and bool(torch.isfinite(g).all()) and \
            float((g * 15 - (g * 15).round()).abs().max()) < 1e-4 and bool(((g * 15).round() % 1 == 0).all()):
        levels_used = torch.unique((g * 15).round())
        if levels_used.numel() > 2:  # not just the black padding and one level
            return SAMPLES_MISTAKE
    return None
