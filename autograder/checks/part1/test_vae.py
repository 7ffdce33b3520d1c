"""Checks of ``VAE.forward`` and ``VAE.sample`` (Q1.9), for whichever trainer the student implemented.

The student implements ``train_torch.py`` *or* ``train_pl.py``; the worker-side
driver picks the one whose ``forward`` is implemented and every check says which.
The unit checks build the student's VAE around the grader's stand-in encoder and
decoder (fixed linear maps, see ``drivers_part1_vae``) so that they test the VAE's own
code and nothing else; the zero-parameter check uses the student's real CNNs and
is tagged with them. Every expected value is computed here from what the worker
recorded (the encoder's outputs, the decoder's inputs and outputs).
"""
from __future__ import annotations


import torch

from autograder.checks.part1 import mistakes
from autograder.checks.part1 import vae_support as vs
from autograder.registry import check, fail, tags

FORWARD = "part1.train.VAE.forward"
SAMPLE = "part1.train.VAE.sample"
DRV = vs.DRIVER
# The utils functions forward calls (sample_reparameterize, KLD, elbo_to_bpd) are the
# grader's stand-ins while forward is graded (one mistake, one deduction), so these checks
# exercise forward alone.
FORWARD_TAGS = (FORWARD,)
B = 16  # images in the forward unit checks
Z_DIM = 20


def build(part1, partial_credit, harness: bool = True, num_filters: int = 8, z_dim: int = Z_DIM):
    """The student's VAE in the worker (a handle) and the trainer's module name.

    Which trainer was graded is said in every failure message (``(train_pl.py)``) and,
    once the check has passed, in its output (see :func:`passed`).
    """
    built = part1.driver(f"{DRV}.build_vae", num_filters, z_dim, harness)
    partial_credit.trainer_note = f"Trainer: {built['note']}."
    return built["model"], built["trainer"]


def passed(partial_credit) -> None:
    """Say which trainer was graded in a passing check's output (notes only; the score stays full)."""
    note = getattr(partial_credit, "trainer_note", "")
    if note:
        partial_credit.notes.append(note)


def _first(calls: list, what: str, call: str):
    if not calls:
        fail(f"{call}: {what} was never called; VAE.forward must encode with self.encoder(imgs) and decode "
             "with self.decoder(z)")
    return calls[0]


def _encoder_outputs(r: dict, call: str) -> tuple[torch.Tensor, torch.Tensor]:
    """The first recorded (mean, log_std) of the encoder, as two float tensors of one shape."""
    out = _first(r["encoder_calls"], "the encoder", call)
    if len(out) < 2 or not all(isinstance(t, torch.Tensor) and t.is_floating_point() for t in out[:2]) \
            or out[0].shape != out[1].shape:
        fail(f"{call}: the encoder returned {len(out)} value(s); expected (mean, log_std), two float tensors [B, z_dim]")
    return out[0], out[1]


def _diagnose_bpd(bpd: float, rec_i: torch.Tensor, kl_i: torch.Tensor, shape: list[int]) -> str | None:
    """A known elbo_to_bpd mistake (as used by forward), else a known forward mistake, matching ``bpd``."""
    elbo = rec_i + kl_i
    for name, wrong in mistakes.ELBO_TO_BPD.items():
        try:
            candidate = float(wrong(elbo, shape).double().mean())
        except Exception:  # noqa: BLE001 - a candidate that does not apply
            continue
        if vs.close(bpd, candidate, 1e-4, 1e-5):
            return f"elbo_to_bpd: {name}"
    return mistakes.diagnose(f"{FORWARD}:bpd", torch.tensor(bpd), rec_i, kl_i, shape)


# ============================================================================ VAE.forward
@check("part1.vae.forward.losses")
@tags(*FORWARD_TAGS)
def test_forward_losses(part1, partial_credit):
    """L_rec, L_reg and bpd agree with the grader's computation from the recorded encoder/decoder outputs.

    - ``L_rec`` = batch mean of the per-image sum of the categorical cross-entropy of the
      recorded logits (grader's log-softmax in float64);
    - ``L_reg`` = batch mean of the KL formula on the recorded (mean, log_std) (forward's
      ``KLD`` is the grader's stand-in here: a KLD bug is charged to KLD's checks, not to forward);
    - ``bpd`` = batch mean of ``elbo_to_bpd(L_rec_i + L_reg_i)`` (the formula; the stand-in's);
    - the bpd is differentiable: back-propagating it reaches the encoder and the decoder.

    Tolerance: relative 1e-4 (absolute 1e-3 on L_rec ~ 2000 nats, 1e-4 on L_reg and bpd).
    A float32 sum of 12,544 cross-entropy terms is exact to ~1e-6 relative; every named
    mistake is off by a factor (784, B, a softmax) or by the whole KL term.
    """
    model, trainer = build(part1, partial_credit)
    imgs = vs.random_images(B, seed=11)
    call = f"VAE.forward(imgs) ({trainer}.py) on {B} random 4-bit images [16, 1, 28, 28], with the grader's stand-in encoder/decoder"
    r = part1.driver(f"{DRV}.traced_forward", model, imgs)
    L_rec, L_reg, bpd = vs.loss_triple(r, call)
    mean, log_std = _encoder_outputs(r, call)
    logits = _first(r["decoder_outputs"], "the decoder", call)

    rec_i = vs.rec_per_image(logits, imgs)
    want_rec = float(rec_i.mean())
    if not vs.close(L_rec, want_rec, 1e-4, 1e-3):
        fail(f"{call}: L_rec = {L_rec:.6g}; expected {want_rec:.6g}, the cross-entropy of the decoder's logits "
             f"summed over the 784 pixels of each image and averaged over the batch",
             mistakes.diagnose(f"{FORWARD}:L_rec", torch.tensor(L_rec), logits.double(), imgs))

    kl_i = vs.kld_per_image(mean, log_std)
    if not vs.close(L_reg, float(kl_i.mean()), 1e-4, 1e-4):
        fail(f"{call}: L_reg = {L_reg:.6g}; expected {float(kl_i.mean()):.6g}, the batch mean of KLD(mean, log_std) "
             f"of the encoder's outputs",
             mistakes.diagnose(f"{FORWARD}:L_reg", torch.tensor(L_reg), kl_i, mean.double(), log_std.double()))

    want_bpd = float(vs.bpd_per_image(rec_i + kl_i).mean())
    if not vs.close(bpd, want_bpd, 1e-4, 1e-4):
        fail(f"{call}: bpd = {bpd:.6g}; expected {want_bpd:.6g}, the batch mean of elbo_to_bpd(L_rec_i + L_reg_i) "
             f"(here L_rec = {want_rec:.6g}, L_reg = {float(kl_i.mean()):.6g} nats)",
             mistakes.diagnose(f"{FORWARD}:bpd", torch.tensor(bpd), rec_i, kl_i, list(imgs.shape)))

    if not r["requires_grad"][2]:
        fail(f"{call}: the returned bpd does not require grad, so training cannot back-propagate through it",
             "loss cut from the graph (.item(), .detach(), torch.no_grad() or a new tensor built from numbers)")
    if r["backward_error"]:
        fail(f"{call}: bpd.backward() failed: {r['backward_error']}")
    for part in ("encoder", "decoder"):
        if not r[f"grad_{part}"]:
            fail(f"{call}: back-propagating bpd gives no gradient to the {part}'s parameters; the loss must be "
                 f"computed from self.{part}'s outputs without detaching them",
                 "no gradient through the sample z (it must come from sample_reparameterize, not torch.no_grad / "
                 ".detach())" if part == "encoder" else None)
    passed(partial_credit)


@check("part1.vae.forward.sampling")
@tags(*FORWARD_TAGS)
def test_forward_sampling(part1, partial_credit, threshold):
    """forward decodes z = mean + exp(log_std) * eps with fresh eps ~ N(0, I) (not z = mean).

    The stand-in encoder is made to return known (mean, log_std) for 64 images x 20
    latents, with log_std spread over [-2, 1] so that std, variance and sqrt(std)
    differ clearly; the latents the decoder receives are standardised with the known
    mean and std and must pass a Kolmogorov-Smirnov test against N(0, 1) at the level
    ``part1.vae.ks_alpha`` (1e-4: the false-alarm rate for a correct sampler).
    """
    alpha = float(threshold("part1.vae.ks_alpha"))
    model, trainer = build(part1, partial_credit)
    n = 64
    g = torch.Generator().manual_seed(5)
    mean = (torch.randn(n, Z_DIM, generator=g) * 2).float()
    log_std = (torch.rand(n, Z_DIM, generator=g) * 3 - 2).float()
    std = log_std.double().exp()
    call = (f"VAE.forward(imgs) ({trainer}.py) on 64 images, with the encoder returning known mean ~ N(0, 4) and "
            f"log_std ~ U(-2, 1) of shape [64, 20]")
    r = part1.driver(f"{DRV}.traced_forward_fixed", model, vs.random_images(n, seed=6), mean, log_std)
    z = _first(r["decoder_inputs"], "the decoder", call)
    if not isinstance(z, torch.Tensor) or tuple(z.shape) != (n, Z_DIM):
        fail(f"{call}: the decoder received {vs.describe(z)}; expected the latents z of shape [64, 20]")
    if torch.allclose(z.double(), mean.double(), rtol=1e-6, atol=1e-6):
        fail(f"{call}: the decoder received z = mean exactly; forward must sample z ~ q(z|x)",
             "no sampling in forward (z = mean); z must be sampled with sample_reparameterize from the mean and the "
             "standard deviation exp(log_std)")
    u = (z.double() - mean.double()) / std
    p = vs.ks_pvalue(u)
    if p < alpha:
        fail(f"{call}: (z - mean)/exp(log_std) is not standard normal (Kolmogorov-Smirnov p = {p:.2g} < {alpha:g}; "
             f"mean {u.mean().item():.3f}, std {u.std().item():.3f}, expected 0 and 1)",
             mistakes.diagnose_noise(FORWARD, z.double(), mean.double(), std, alpha))
    passed(partial_credit)


@check("part1.vae.forward.zero_params")
@tags(FORWARD)
def test_forward_zero_params(part1, partial_credit):
    """With every parameter 0, forward gives L_rec = 784 ln 16, L_reg = 0, bpd = 4.

    The VAE is built as the student's __init__ builds it, with the grader's stand-in
    encoder and decoder (MLPs; the student's CNNs are graded by their own checks). Zero
    weights and biases make the encoder return mean = log_std = 0 (q(z|x) is the prior:
    KL 0) and the decoder return logits 0 (uniform over 16 levels: ln 16 nats per pixel,
    i.e. 4 bits): exact values that show how forward combines the terms.
    Tolerance: relative 1e-5 (float32 sums of 6,272 equal terms).
    """
    model, trainer = build(part1, partial_credit, harness=False, num_filters=8)
    part1.driver(f"{DRV}.zero_parameters", model)
    imgs = vs.random_images(8, seed=12)
    call = f"VAE.forward(imgs) ({trainer}.py, VAE(num_filters=8, z_dim=20) with every parameter set to 0) on 8 random images"
    r = part1.driver(f"{DRV}.traced_forward", model, imgs, False)
    L_rec, L_reg, bpd = vs.loss_triple(r, call)
    mean, log_std = _encoder_outputs(r, call)
    logits = _first(r["decoder_outputs"], "the decoder", call)
    if not all(isinstance(t, torch.Tensor) for t in (mean, log_std, logits)):
        fail(f"{call}: the encoder/decoder did not return tensors")
    want_rec = float(vs.rec_per_image(logits, imgs).mean())
    kl_i = vs.kld_per_image(mean, log_std)
    want_reg = float(kl_i.mean())
    want_bpd = float(vs.bpd_per_image(vs.rec_per_image(logits, imgs) + kl_i).mean())
    standard = abs(want_rec - vs.L_REC_AT_ZERO) < 1e-3 * vs.L_REC_AT_ZERO and abs(want_reg) < 1e-6
    what = ("expected L_rec = 784*ln(16) = 2173.67, L_reg = 0, bpd = 4" if standard else
            f"expected (from the zeroed encoder's and decoder's outputs) L_rec = {want_rec:.6g}, L_reg = {want_reg:.6g}, "
            f"bpd = {want_bpd:.6g}")
    got = f"got L_rec = {L_rec:.6g}, L_reg = {L_reg:.6g}, bpd = {bpd:.6g}"
    if not vs.close(L_rec, want_rec, 1e-5, 1e-3):
        fail(f"{call}: {what}; {got}",
             mistakes.diagnose(f"{FORWARD}:L_rec", torch.tensor(L_rec), logits.double(), imgs))
    if not vs.close(L_reg, want_reg, 1e-5, 1e-5):
        fail(f"{call}: {what}; {got}. With mean = log_std = 0 the KL to the prior is 0: check KLD "
             "(e.g. the -1 term) and what forward passes to it",
             mistakes.diagnose(f"{FORWARD}:L_reg", torch.tensor(L_reg), kl_i, mean.double(), log_std.double()))
    if not vs.close(bpd, want_bpd, 1e-5, 1e-5):
        fail(f"{call}: {what}; {got}. A uniform 16-level pixel costs log2(16) = 4 bits: check elbo_to_bpd "
             "(log2(e), C*H*W) and the bpd forward returns",
             _diagnose_bpd(bpd, vs.rec_per_image(logits, imgs), kl_i, list(imgs.shape)))
    passed(partial_credit)


# ============================================================================ VAE.sample
def _samples(part1, partial_credit, logits: torch.Tensor | None, n: int = 64):
    model, trainer = build(part1, partial_credit)
    r = part1.driver(f"{DRV}.traced_sample", model, n, logits)
    return r, trainer


@check("part1.vae.sample.format")
@tags(SAMPLE)
def test_sample_format(part1, partial_credit):
    """sample(64) returns a long tensor [64, 1, 28, 28] with values in [0, 15] (4-bit images)."""
    r, trainer = _samples(part1, partial_credit, None)
    s = r["samples"]
    call = f"VAE.sample(64) ({trainer}.py, z_dim = 20, the grader's stand-in decoder)"
    if not isinstance(s, torch.Tensor):
        fail(f"{call} returned {r['type']}; expected a long tensor [64, 1, 28, 28]")
    if tuple(s.shape) == (64, 16, 28, 28):
        fail(f"{call} returned {vs.describe(s)}; expected images [64, 1, 28, 28]",
             "probabilities returned: the softmax over the 16 levels must be sampled, one level per pixel")
    if tuple(s.shape) == (64, 28, 28):
        fail(f"{call} returned {vs.describe(s)}; expected [64, 1, 28, 28]",
             "channel dimension missing: reshape the sampled levels to [B, 1, 28, 28]")
    if tuple(s.shape) != (64, 1, 28, 28):
        fail(f"{call} returned {vs.describe(s)}; expected shape [64, 1, 28, 28]")
    if s.is_floating_point():
        integral = bool(torch.isfinite(s).all()) and bool((s == s.round()).all())
        fail(f"{call} returned {vs.describe(s)} ({vs.stats_line(s)}); expected dtype long (torch.int64)",
             None if integral else "expected values or probabilities returned instead of sampled levels 0..15")
    if s.dtype != torch.long:
        fail(f"{call} returned {vs.describe(s)}; expected dtype long (torch.int64), like the training images")
    if int(s.min()) < 0 or int(s.max()) > 15:
        fail(f"{call} returned values from {int(s.min())} to {int(s.max())}; expected 4-bit levels in [0, 15]")
    passed(partial_credit)


@check("part1.vae.sample.distribution")
@tags(SAMPLE)
def test_sample_distribution(part1, partial_credit, threshold):
    """Each pixel is drawn from the softmax of its 16 logits (not the argmax, not the mean).

    The decoder is made to return known logits: four distributions laid out over the
    pixels by (i + 2j) % 4. For 64 images each distribution gets 12,544 draws; a
    Pearson chi-square test per distribution (cells expected below 5 merged) must not
    reject at ``part1.vae.chi2_alpha`` (1e-6 each, so a correct sampler fails with
    probability below 4e-6; the named mistakes give p-values of 0 to machine precision).
    Any integer dtype is accepted here (the dtype is the format check's business).
    """
    alpha = float(threshold("part1.vae.chi2_alpha"))
    logits = vs.sample_logits()
    r, trainer = _samples(part1, partial_credit, logits.float())
    s = r["samples"]
    call = (f"VAE.sample(64) ({trainer}.py) with the decoder returning known logits [16, 28, 28] for every z "
            "(four per-pixel distributions)")
    if not isinstance(s, torch.Tensor) or s.numel() != 64 * 784:
        fail(f"{call} returned {vs.describe(s)}; expected 64 images of 28x28 sampled levels")
    s = s.reshape(64, 28, 28)
    if not bool(torch.isfinite(s.double()).all()) or not bool((s.double() == s.double().round()).all()):
        fail(f"{call} returned non-integer values ({vs.stats_line(s)}); expected levels 0..15 drawn from the softmax",
             "expected values or probabilities returned instead of sampled levels")
    results = vs.chi_square_pvalues(s, logits)
    worst = min(range(len(results)), key=lambda t: results[t][0])
    p, observed, expected = results[worst]
    if p < alpha:
        top = torch.argsort(-(observed - expected).abs())[:3].tolist()
        detail = ", ".join(f"level {k}: {int(observed[k])} drawn vs {expected[k]:.0f} expected" for k in top)
        fail(f"{call}: the sampled levels do not follow the softmax of the logits (chi-square p = {p:.2g} < {alpha:g} "
             f"for distribution {worst + 1} of 4; {detail})",
             mistakes.diagnose_sampler(s, logits))
    passed(partial_credit)


@check("part1.vae.sample.prior")
@tags(SAMPLE)
def test_sample_prior(part1, partial_credit, threshold):
    """sample(64) decodes latents z ~ N(0, I) of shape [64, z_dim]: one fresh draw per image.

    Kolmogorov-Smirnov test of the 1,280 latent values against N(0, 1) at
    ``part1.vae.ks_alpha`` (1e-4, the false-alarm rate), and no two images share a latent.
    """
    alpha = float(threshold("part1.vae.ks_alpha"))
    r, trainer = _samples(part1, partial_credit, vs.sample_logits().float())
    call = f"VAE.sample(64) ({trainer}.py, z_dim = 20)"
    z = _first(r["decoder_inputs"], "the decoder", call)
    if not isinstance(z, torch.Tensor) or tuple(z.shape) != (64, Z_DIM):
        fail(f"{call}: the decoder received {vs.describe(z)}; expected latents of shape [64, 20] (batch_size x z_dim)")
    z = z.double()
    if bool((z == 0).all()):
        fail(f"{call}: every latent passed to the decoder is 0", "wrong prior: z = zeros; draw z = torch.randn(B, z_dim)")
    if torch.unique(z, dim=0).shape[0] < 64:
        fail(f"{call}: several images share the same latent; draw one z per image")
    p = vs.ks_pvalue(z)
    if p < alpha:
        uniform01 = bool(((z >= 0) & (z < 1)).all())
        fail(f"{call}: the latents are not N(0, 1) (Kolmogorov-Smirnov p = {p:.2g} < {alpha:g}; {vs.stats_line(z)}, "
             f"std {z.std().item():.3f})",
             "wrong prior: uniform noise (torch.rand) instead of the standard normal (torch.randn)" if uniform01 else None)
    passed(partial_credit)
