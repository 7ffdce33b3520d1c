"""Checks of part 3's beta_vae.py: the beta-VAE objective, and what beta does to a trained VAE.

Values and gradients are compared with the docstring's formula in float64; the smoke training
runs the handout's VAE with the student's loss in the worker, and the grader measures the
result (and, for the report only, how often the grader's targeted attack succeeds on it).
"""
from __future__ import annotations


import torch
from torch import Tensor

from autograder.checks.part1.strategies import uniform
from autograder.checks.part1.vae_support import kld_per_image, rec_per_image
from autograder.checks.part3 import helpers as H
from autograder.checks.part3 import mistakes, smoke
from autograder.checks.probing import one_element
from autograder.registry import check, fail, grades, tags

LOSS = "part3.beta_vae.beta_vae_loss"


def _case(seed: int, batch: int = 8, z_dim: int = 4) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Images on the 16 levels, logits and a posterior of moderate size (seeded)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, 16, (batch, 1, 28, 28), generator=g).float() / 15
    logits = torch.randn(batch, 16, 28, 28, generator=g) * 2
    return x, logits, uniform((batch, z_dim), -2.0, 2.0, seed + 1), uniform((batch, z_dim), -1.5, 1.0, seed + 2)


def _reference(x: Tensor, logits: Tensor, mean: Tensor, log_std: Tensor, beta: float) -> Tensor:
    """The docstring's loss in float64 (differentiable in float64 leaves)."""
    levels = (x.double() * 15).round().long()
    return (rec_per_image(logits, levels) + beta * kld_per_image(mean, log_std)).mean()


@check("part3.beta_vae.beta_vae_loss.value")
@grades(LOSS)
@tags(LOSS)
def test_beta_value(part3):
    """mean over the batch of (cross-entropy of the levels summed over pixels + beta * closed-form
    KL), for beta in {0.5, 1, 4}; relative tolerance 1e-5 (float32 sums of 784 terms)."""
    for k, beta in enumerate((1.0, 4.0, 0.5)):
        x, logits, mean, log_std = _case(10 + k)
        call = f"beta_vae_loss(x, logits, mean, log_std, beta={beta:g}) for a batch of 8"
        got = one_element(H.probe(part3, "beta_loss_probe", x, logits, mean, log_std, beta, call=call)["out"], call)
        want = float(_reference(x, logits.double(), mean.double(), log_std.double(), beta))
        if abs(got - want) > 1e-5 * max(1.0, abs(want)):
            fail(f"{call} = {got:.7g}; expected mean_i [-log p(x_i|z_i) + beta * KL_i] = {want:.7g}",
                 mistakes.beta_loss(torch.tensor([got]), x, logits, mean, log_std, beta))


@check("part3.beta_vae.beta_vae_loss.gradients")
@grades(LOSS)
@tags(LOSS)
def test_beta_gradients(part3):
    """The loss trains the VAE, so its gradients on logits, mean and log_std must be the
    formula's (relative tolerance 1e-4)."""
    x, logits, mean, log_std = _case(20)
    beta = 2.0
    call = f"beta_vae_loss(x, logits, mean, log_std, beta={beta:g}) for a batch of 8"
    r = H.probe(part3, "beta_loss_probe", x, logits, mean, log_std, beta, call=call)
    one_element(r["out"], call)
    if r.get("grads") is None or any(g is None for g in r["grads"]):
        fail(f"{call}: no gradient reaches " + ("the inputs" if r.get("grads") is None else
             ", ".join(n for n, g in zip(("logits", "mean", "log_std"), r["grads"]) if g is None))
             + " (detached, or computed with .item()/numpy)"
             + (f"; backward() raised {r['backward_error']}" if "backward_error" in r else ""))
    leaves = [t.double().requires_grad_(True) for t in (logits, mean, log_std)]
    want = torch.autograd.grad(_reference(x, *leaves, beta), leaves)
    for name, g, w in zip(("logits", "mean", "log_std"), r["grads"], want):
        scale = float(w.abs().max()) or 1.0
        if tuple(g.shape) != tuple(w.shape) or float((g.double() - w).abs().max()) > 1e-4 * scale:
            fail(f"{call}: the gradient with respect to {name} is {H.preview(g)}; expected {H.preview(w)}")


@check("part3.beta_vae.beta_vae_loss.smoke.beta")
@grades(LOSS)
@tags(LOSS)
def test_beta_smoke(part3, ref1, ref3, threshold, figures):
    """A short training of the handout's VAE with the student's loss at beta = 1 must reach a
    calibrated negative ELBO on held-out images, and at beta = 4 the posterior's KL must be lower
    than at beta = 1 (what beta is for). How often the grader's targeted attack succeeds on each
    model goes to the report beside each other (Sootla found disentangled models less robust;
    not graded)."""
    s = threshold("part3.beta_smoke")
    models = ref3("models")
    data = ref1("data")
    train, _ = H.images(data, int(s["train_images"]), split="train")
    held, labels = H.images(data, int(s["eval_images"]))
    a = H.asset()
    torch.manual_seed(int(s["seed"]))
    initial = models.VAE(a["z_dim"], a["hidden"]).state_dict()
    betas = [float(b) for b in s["betas"]]
    call = (f"the handout's VAE trained {int(s['steps'])} Adam steps (batch {int(s['batch'])}) with "
            f"beta_vae_loss at beta = {', '.join(f'{b:g}' for b in betas)}")
    trained = part3.driver(f"{H.DRV}.beta_smoke", train, a["z_dim"], a["hidden"], int(s["steps"]), int(s["batch"]),
                           float(s["lr"]), betas, int(s["seed"]), initial, slow_ok=True)
    if not isinstance(trained, dict) or any(str(b) not in trained for b in betas):
        fail(f"{call}: the trained weights could not be read back")
    measured: dict[float, dict[str, float]] = {}
    target = held[H.pairs(labels, 0)]
    for b in betas:
        try:
            vae = H.grader_vae(models, trained[str(b)])
        except Exception as exc:
            fail(f"{call}: the weights trained at beta = {b:g} do not load ({type(exc).__name__})")
        measured[b] = smoke.beta_measure(vae, models, held, target, s)
    figures.bars("Targeted latent attack success on VAEs trained with your loss",
                 {f"beta = {b:g}": m["success"] for b, m in measured.items()},
                 caption="the grader's targeted attack (epsilon {:g}); Sootla's thesis found disentangled (beta > 1) "
                         "models easier to attack".format(float(s["epsilon"])))
    first, last = measured[betas[0]], measured[betas[-1]]
    if not first["elbo"] <= float(s["max_neg_elbo"]):
        fail(f"{call}: at beta = {betas[0]:g} the held-out negative ELBO is {first['elbo']:.1f} nats per image; "
             f"expected at most {float(s['max_neg_elbo']):g} (the loss does not train the VAE)")
    if not last["kl"] < first["kl"]:
        fail(f"{call}: the posterior's KL to the prior is {last['kl']:.2f} nats at beta = {betas[-1]:g} and "
             f"{first['kl']:.2f} at beta = {betas[0]:g}; a larger beta weights the KL more, so it must come out lower",
             "beta weights the reconstruction term instead of the KL term")
