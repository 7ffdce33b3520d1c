"""Checks of part1/utils.py: ``sample_reparameterize``, ``KLD`` and ``elbo_to_bpd`` (Q1.7).

(``visualize_manifold`` is graded with the VAE checks.) Expectations come from the
reference solution evaluated in float64 on the same float32 inputs; tolerances are
stated per check and accept every algebraically equal way of writing the formula.
"""
from __future__ import annotations

import math

import torch
from hypothesis import example, given

from autograder.checks.part1 import mistakes
from autograder.checks.part1.helpers_funcs import compare, preview, require_tensor
from autograder.checks.part1.strategies import Example, elbo_batches, gaussian_params, graded, uniform
from autograder.registry import check, fail, tags

REPARAM = "part1.utils.sample_reparameterize"
KLD = "part1.utils.KLD"
BPD = "part1.utils.elbo_to_bpd"
DRIVERS = "drivers_part1_funcs"


# ============================================================================ sample_reparameterize
def _log_uniform_std(shape: tuple[int, ...], seed: int) -> torch.Tensor:
    """std spread over [0.1, 3] on a log scale: wide enough that std, std**2, sqrt(std) differ clearly."""
    return torch.exp(uniform(shape, math.log(0.1), math.log(3.0), seed))


def _standardise(z: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    return (z.double() - mean.double()) / std.double()


@check("part1.utils.sample_reparameterize.shape")
@tags(REPARAM)
def test_reparameterize_shape(part1):
    """z has mean's shape and dtype for 1-D to 4-D inputs, lives on the inputs' device, and std = 0 gives z = mean."""
    for i, shape in enumerate([(7,), (4, 20), (2, 3, 5), (2, 1, 3, 4)]):
        mean, std = uniform(shape, -3, 3, 10 + i), _log_uniform_std(shape, 20 + i)
        call = f"sample_reparameterize(mean, std) for float32 mean, std of shape {list(shape)}"
        z = require_tensor(part1.call("utils.sample_reparameterize", mean, std), call, shape)
        if z.dtype != torch.float32:
            fail(f"{call} returned a {z.dtype} tensor; expected float32 like mean and std")
    mean = uniform((3, 4), -3, 3, 30)
    call = "sample_reparameterize(mean, std) with std = 0 everywhere (mean of shape [3, 4])"
    z = require_tensor(part1.call("utils.sample_reparameterize", mean, torch.zeros(3, 4)), call, (3, 4))
    if not torch.allclose(z.double(), mean.double(), rtol=1e-6, atol=1e-7):
        fail(f"{call} returned {preview(z)}; expected z = mean = {preview(mean)} (no noise when std is 0)")
    devices = part1.driver(f"{DRIVERS}.reparam_devices", mean, torch.ones(3, 4))
    for device, got in devices.items():
        if not str(got).startswith(device):
            fail(f"sample_reparameterize(mean, std) with mean, std on {device} returned z on {got}; "
                 "create the noise on the inputs' device (e.g. torch.randn_like(std))")


@check("part1.utils.sample_reparameterize.gradients")
@tags(REPARAM)
def test_reparameterize_gradients(part1):
    """Backpropagating sum(z) gives dz/dmean = 1 and dz/dstd = eps = (z - mean)/std, elementwise.

    Tolerance on dz/dstd: float32 rounding of z = mean + std*eps, divided by std, i.e.
    1e-5 * (|mean| + |z| + 1) / std (about 80 ulps; std >= 0.1 here).
    """
    shape = (64, 8)
    mean, std = uniform(shape, -3, 3, 1), _log_uniform_std(shape, 2)
    call = "sample_reparameterize(mean, std) for mean, std of shape [64, 8] requiring grad, then sum(z).backward()"
    r = part1.driver(f"{DRIVERS}.reparam_gradients", mean, std)
    if r["z"] is None:
        fail(f"{call}: the function returned {r['type']}; expected a tensor")
    z = require_tensor(r["z"], call, shape)
    if not r["requires_grad"]:
        fail(f"{call}: z does not require grad, so no gradient can reach mean or std",
             "no gradient: the sample is cut from the graph (torch.no_grad(), .detach(), .data, or a sampler "
             "like torch.normal(mean, std) that is not reparameterised)")
    grad_mean, grad_std = r["grad_mean"], r["grad_std"]
    if grad_mean is None or not bool(grad_mean.ne(0).any()):
        normal = grad_std is not None and not bool(grad_std.ne(0).any())
        fail(f"{call}: no gradient reached mean (mean.grad is {'None' if grad_mean is None else 'all zeros'}); "
             "expected dz/dmean = 1",
             "no gradient: torch.normal(mean, std) (or another sampler) is not reparameterised; "
             "use z = mean + std * eps with eps = torch.randn_like(std)" if normal else None)
    if not torch.allclose(grad_mean.double(), torch.ones(shape, dtype=torch.float64), rtol=1e-6, atol=1e-6):
        fail(f"{call}: mean.grad = {preview(grad_mean)}; expected 1 for every element (dz/dmean = 1)")
    eps = _standardise(z, mean, std)
    if grad_std is None or not bool(grad_std.ne(0).any()):
        fail(f"{call}: no gradient reached std (std.grad is {'None' if grad_std is None else 'all zeros'}); "
             "expected dz/dstd = eps",
             "std ignored (z = mean + eps)" if grad_std is None else "std cut from the graph (detached)")
    tol = 1e-5 * (mean.double().abs() + z.double().abs() + 1) / std.double()
    err = (grad_std.double() - eps).abs()
    if bool((err > tol).any()):
        i = tuple(int(k) for k in (err > tol).nonzero()[0].tolist())
        # With z = mean + std**2 * e: dz/dstd = 2*std*e while (z - mean)/std = std*e, a ratio of exactly 2.
        ratio = grad_std.double() / eps
        named = None
        if torch.allclose(ratio, torch.full_like(ratio, 2.0), rtol=1e-3):
            named = "variance used instead of std (z = mean + std**2 * eps): dz/dstd = 2*std*eps"
        fail(f"{call}: std.grad{list(i)} = {grad_std[i].item():.6g}; expected eps = (z - mean)/std = "
             f"{eps[i].item():.6g} (dz/dstd must equal the noise that was drawn)", named)


@check("part1.utils.sample_reparameterize.distribution")
@tags(REPARAM)
def test_reparameterize_distribution(part1, threshold):
    """The standardised samples (z - mean)/std of 20,000 elements are N(0, 1) by a Kolmogorov-Smirnov test.

    mean ~ U(-5, 5), std log-uniform in [0.1, 3], seed 0. For a correct implementation
    the p-value is uniform over noise streams, so the false-alarm rate is the
    threshold ``part1.functions.reparam_ks_alpha`` (1e-4).
    """
    alpha = float(threshold("part1.functions.reparam_ks_alpha"))
    shape = (400, 50)
    mean, std = uniform(shape, -5, 5, 3), _log_uniform_std(shape, 4)
    call = "sample_reparameterize(mean, std) for mean ~ U(-5, 5), std in [0.1, 3] of shape [400, 50]"
    z = require_tensor(part1.call("utils.sample_reparameterize", mean, std, seed=0), call, shape)
    u = _standardise(z, mean, std)
    p = mistakes.normality_pvalue(u)
    if p < alpha:
        fail(f"{call}: the standardised samples (z - mean)/std are not standard normal (Kolmogorov-Smirnov "
             f"p = {p:.2g} < {alpha:g}; their mean is {u.mean().item():.3f} and std {u.std().item():.3f}, "
             "expected 0 and 1)", mistakes.diagnose_noise(REPARAM, z, mean, std, alpha))


def _corr(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.reshape(-1) - a.mean(), b.reshape(-1) - b.mean()
    denom = float(a.norm() * b.norm())
    return 1.0 if denom == 0 else float((a * b).sum()) / denom


@check("part1.utils.sample_reparameterize.independent")
@tags(REPARAM)
def test_reparameterize_independent(part1, threshold):
    """Each element gets its own noise, and two calls draw different noise.

    For independent standard normals the sample correlation of n = ~20,000 pairs has
    standard deviation 1/sqrt(n) = 0.007; the threshold ``reparam_max_corr`` (0.05) is
    7 standard deviations (false-alarm rate < 1e-11), while shared noise gives 1.
    """
    limit = float(threshold("part1.functions.reparam_max_corr"))
    shape = (500, 40)
    mean, std = uniform(shape, -5, 5, 5), _log_uniform_std(shape, 6)
    call = "sample_reparameterize(mean, std) for mean, std of shape [500, 40]"
    z1, z2 = part1.driver(f"{DRIVERS}.reparam_twice", mean, std)
    u1 = _standardise(require_tensor(z1, call, shape), mean, std)
    u2 = _standardise(require_tensor(z2, call + " (second call)", shape), mean, std)
    across_batch = _corr(u1[1:], u1[:-1])
    across_dims = _corr(u1[:, 1:], u1[:, :-1])
    if abs(across_batch) > limit or abs(across_dims) > limit:
        which = "batch rows" if abs(across_batch) > limit else "latent dimensions"
        fail(f"{call}: the noise eps = (z - mean)/std is correlated across {which} (correlation "
             f"{max(abs(across_batch), abs(across_dims)):.3f}, expected about 0 for independent noise per element)",
             f"shared noise: one noise value reused across the {which}; draw one eps per element, "
             "e.g. eps = torch.randn_like(std)")
    between_calls = _corr(u1, u2)
    if abs(between_calls) > limit:
        fail(f"{call}, called twice in a row: the two calls drew the same noise (correlation {between_calls:.3f})",
             "same noise on every call: the random generator is re-seeded inside the function "
             "(torch.manual_seed), or a fixed noise tensor is reused")


# ============================================================================ KLD
def _kld_expected(ref1, mean: torch.Tensor, log_std: torch.Tensor) -> torch.Tensor:
    return ref1("utils").KLD(mean.double(), log_std.double())


def _kld_tolerance(mean: torch.Tensor, log_std: torch.Tensor) -> torch.Tensor:
    """1e-5 of the sum of the terms' magnitudes: ~80 float32 ulps, far above the rounding
    differences between equal forms (log-variance, std**2, torch.pow) and far below the
    smallest named mistake (e.g. missing -1: 0.5 per coordinate)."""
    m, l = mean.double(), log_std.double()
    scale = (torch.exp(2 * l) + m**2 + 1 + 2 * l.abs()).sum(-1)
    return 1e-5 * scale + 1e-6


EX_3D = Example((uniform((2, 3, 5), -4, 4, 7), uniform((2, 3, 5), -3, 2, 8)),
                "mean, log_std of shape (2, 3, 5) (uniform in (-4, 4), (-3, 2); seed 7)")
EX_4D = Example((uniform((2, 2, 3, 4), -4, 4, 9), uniform((2, 2, 3, 4), -3, 2, 10)),
                "mean, log_std of shape (2, 2, 3, 4) (uniform in (-4, 4), (-3, 2); seed 9)")
EX_1D = Example((uniform((6,), -4, 4, 11), uniform((6,), -3, 2, 12)),
                "mean, log_std of shape (6,) (uniform in (-4, 4), (-3, 2); seed 11)")


@check("part1.utils.KLD.reference")
@tags(KLD)
@graded
@given(ex=gaussian_params())
@example(ex=EX_3D)
@example(ex=EX_4D)
@example(ex=EX_1D)
def test_kld_reference(part1, ref1, ex):
    """KLD equals 0.5*sum(exp(2*log_std) + mean^2 - 1 - 2*log_std, -1) on 1-D to 4-D inputs.

    mean ~ U(-4, 4), log_std ~ U(-3, 2) (std 0.05 .. 7.4, what a VAE encoder produces).
    """
    mean, log_std = ex.tensors
    want = _kld_expected(ref1, mean, log_std)
    compare(part1.call("utils.KLD", mean, log_std), want, _kld_tolerance(mean, log_std),
            f"KLD(mean, log_std) for {ex}", KLD, (mean, log_std))


@check("part1.utils.KLD.prior")
@tags(KLD)
@graded
@given(ex=gaussian_params())
def test_kld_prior(part1, ex):
    """KLD is 0 at the prior (mean = 0, log_std = 0), positive next to it, and never negative."""
    for shape in [(3, 7), (5,), (2, 2, 4)]:
        zeros = torch.zeros(shape)
        call = f"KLD(mean, log_std) with mean = log_std = 0 of shape {list(shape)} (the prior itself)"
        got = require_tensor(part1.call("utils.KLD", zeros, zeros), call, shape[:-1], function_id=KLD, args=(zeros, zeros))
        if bool((got.double().abs() > 1e-6).any()):
            fail(f"{call} returned {preview(got)}; expected exactly 0 (a distribution has no divergence from itself)",
                 mistakes.diagnose(KLD, got, zeros, zeros))
    for what, m, l, want in [("mean = 0.1", 0.1, 0.0, 0.005), ("log_std = 0.1", 0.0, 0.1, 0.5 * (math.exp(0.2) - 1.2)),
                             ("log_std = -0.1", 0.0, -0.1, 0.5 * (math.exp(-0.2) - 0.8))]:
        mean, log_std = torch.tensor([[m, 0.0]]), torch.tensor([[l, 0.0]])
        call = f"KLD(mean, log_std) for [1, 2] inputs that differ from the prior only by {what}"
        got = require_tensor(part1.call("utils.KLD", mean, log_std), call, (1,), function_id=KLD, args=(mean, log_std))
        if not got.item() > 0:
            fail(f"{call} returned {got.item():.6g}; expected a positive divergence ({want:.6g})",
                 mistakes.diagnose(KLD, got, mean, log_std))
    mean, log_std = ex.tensors
    call = f"KLD(mean, log_std) for {ex}"
    got = require_tensor(part1.call("utils.KLD", mean, log_std), call, mean.shape[:-1], function_id=KLD, args=(mean, log_std))
    if bool((got.double() < -_kld_tolerance(mean, log_std)).any()):
        fail(f"{call} returned a negative value ({got.min().item():.6g}); a KL divergence is never negative",
             mistakes.diagnose(KLD, got, mean, log_std))


@check("part1.utils.KLD.symmetry_additivity")
@tags(KLD)
@graded
@given(ex=gaussian_params())
def test_kld_symmetry_additivity(part1, ex):
    """KLD(-mean, log_std) = KLD(mean, log_std), and splitting the last dim adds up: KLD(a ++ b) = KLD(a) + KLD(b).

    Tolerance: the same 1e-5 of the terms' magnitudes as the reference comparison.
    """
    mean, log_std = ex.tensors
    tol = _kld_tolerance(mean, log_std)
    call = f"KLD(mean, log_std) for {ex}"
    whole = require_tensor(part1.call("utils.KLD", mean, log_std), call, mean.shape[:-1], function_id=KLD, args=(mean, log_std))
    mirrored = require_tensor(part1.call("utils.KLD", -mean, log_std), call.replace("KLD(mean", "KLD(-mean"), mean.shape[:-1])
    if bool(((whole.double() - mirrored.double()).abs() > tol).any()):
        fail(f"{call}: KLD(-mean, log_std) = {preview(mirrored)} differs from KLD(mean, log_std) = {preview(whole)}; "
             "the divergence from N(0, 1) depends on mean only through mean^2", mistakes.diagnose(KLD, whole, mean, log_std))
    d = mean.shape[-1]
    if d < 2:
        return
    k = d // 2
    first = require_tensor(part1.call("utils.KLD", mean[..., :k].contiguous(), log_std[..., :k].contiguous()), call, mean.shape[:-1])
    rest = require_tensor(part1.call("utils.KLD", mean[..., k:].contiguous(), log_std[..., k:].contiguous()), call, mean.shape[:-1])
    total = first.double() + rest.double()
    if bool(((whole.double() - total).abs() > tol).any()):
        fail(f"{call}: KLD of all {d} latent coordinates = {preview(whole)}, but KLD of the first {k} plus KLD of the "
             f"other {d - k} = {preview(total)}; the KL of independent coordinates is their sum",
             mistakes.diagnose(KLD, whole, mean, log_std))


# ============================================================================ elbo_to_bpd
def _bpd(part1, elbo: torch.Tensor, shape: list[int]):
    return part1.driver(f"{DRIVERS}.elbo_to_bpd", elbo, list(shape))


def _bpd_tolerance(want: torch.Tensor) -> torch.Tensor:
    """A multiplication and a division in float32: a few ulps; 1e-5 relative is ample and
    far below every named mistake (the smallest, ln 2 vs log2 e, is a factor 2)."""
    return 1e-5 * want.abs() + 1e-7


EX_BPD_28 = Example((uniform((4,), 0, 5000, 5), [4, 1, 28, 28]), "elbo of shape [4] (uniform in [0, 5000], seed 5), img_shape [4, 1, 28, 28]")
EX_BPD_RGB = Example((uniform((3,), 0, 5000, 6), [3, 3, 32, 32]), "elbo of shape [3] (uniform in [0, 5000], seed 6), img_shape [3, 3, 32, 32]")


@check("part1.utils.elbo_to_bpd.reference")
@tags(BPD)
@graded
@given(ex=elbo_batches())
@example(ex=EX_BPD_28)
@example(ex=EX_BPD_RGB)
def test_bpd_reference(part1, ref1, ex):
    """elbo_to_bpd(elbo, img_shape) = elbo * log2(e) / (C*H*W), for img_shape a torch.Size [B, C, H, W]."""
    elbo, shape = ex.tensors
    want = ref1("utils").elbo_to_bpd(elbo.double(), torch.Size(shape))
    compare(_bpd(part1, elbo, shape), want, _bpd_tolerance(want), f"elbo_to_bpd(elbo, img_shape) for {ex}",
            BPD, (elbo, shape))


@check("part1.utils.elbo_to_bpd.properties")
@tags(BPD)
def test_bpd_properties(part1):
    """bpd is linear in the ELBO, inversely proportional to C*H*W, and independent of the batch size."""
    e1, e2 = uniform((6,), 0, 3000, 1), uniform((6,), 0, 3000, 2)
    shape = [6, 1, 28, 28]
    b1, b2 = _bpd(part1, e1, shape), _bpd(part1, e2, shape)
    call = "elbo_to_bpd(elbo, img_shape) for elbo of shape [6] and img_shape [6, 1, 28, 28]"
    b1, b2 = require_tensor(b1, call, (6,), function_id=BPD, args=(e1, shape)), require_tensor(b2, call, (6,))
    mix = require_tensor(_bpd(part1, 2.5 * e1 - 1.5 * e2, shape), call, (6,))
    want = 2.5 * b1.double() - 1.5 * b2.double()
    if bool(((mix.double() - want).abs() > 1e-5 * (b1.double().abs() + b2.double().abs()) * 4 + 1e-6).any()):
        fail(f"{call}: not linear in the ELBO: bpd(2.5*e1 - 1.5*e2) = {preview(mix)} but 2.5*bpd(e1) - 1.5*bpd(e2) = {preview(want)}")
    zero = require_tensor(_bpd(part1, torch.zeros(6), shape), call, (6,))
    if bool(zero.ne(0).any()):
        fail(f"{call}: elbo = 0 gives {preview(zero)}; expected 0 bits (the map is a scaling)")
    elbo = uniform((5,), 100, 3000, 3)
    scaled = []
    for c, h, w in [(1, 28, 28), (3, 32, 32), (16, 7, 9), (2, 64, 48)]:
        got = require_tensor(_bpd(part1, elbo, [5, c, h, w]), f"elbo_to_bpd(elbo, [5, {c}, {h}, {w}])", (5,),
                             function_id=BPD, args=(elbo, [5, c, h, w]))
        scaled.append((f"[5, {c}, {h}, {w}]", got.double() * (c * h * w)))
    for name, s in scaled[1:]:
        if not torch.allclose(s, scaled[0][1], rtol=1e-5, atol=1e-6):
            fail(f"elbo_to_bpd(elbo, img_shape) * C*H*W should not depend on the image shape (bpd is per dimension), "
                 f"but it is {preview(scaled[0][1])} for [5, 1, 28, 28] and {preview(s)} for {name}",
                 mistakes.diagnose(BPD, _bpd(part1, elbo, [5, 3, 32, 32]), elbo, [5, 3, 32, 32]))
    elbo = uniform((8,), 100, 3000, 4)
    full = require_tensor(_bpd(part1, elbo, [8, 1, 28, 28]), "elbo_to_bpd(elbo, [8, 1, 28, 28])", (8,))
    for k in (1, 3):
        part = require_tensor(_bpd(part1, elbo[:k].contiguous(), [k, 1, 28, 28]), f"elbo_to_bpd(elbo[:{k}], [{k}, 1, 28, 28])", (k,))
        if not torch.allclose(part.double(), full[:k].double(), rtol=1e-6, atol=1e-7):
            fail(f"elbo_to_bpd depends on the batch size: the first {k} image(s) get {preview(part)} in a batch of {k} "
                 f"but {preview(full[:k])} in a batch of 8",
                 mistakes.diagnose(BPD, full, elbo, [8, 1, 28, 28]))
