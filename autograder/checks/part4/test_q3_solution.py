"""Checks of IFT6135 HW3 problem 3, q3_solution.py: SimSiam's cosine similarity, forward pass
(with its stop-gradient) and symmetric loss.

The SimSiam the checks build is the student's class around the grader's encoder
(``q3_model.mlp_encoder``); its outputs are compared with the reference forward pass run
here on the same weights (the student's state dict), in eval mode so batch normalisation
uses its running statistics (running both views as one batch or one after the other is then
the same). Similarities are compared with the formula in float64.
"""
from __future__ import annotations

from typing import Any

import torch
from hypothesis import given
from hypothesis import strategies as st

from autograder.checks.part4 import mistakes, smoke
from autograder.checks.part4.helpers import describe, gaussian, one_element, preview, probe
from autograder.checks.part1.strategies import graded
from autograder.registry import check, fail, grades, tags

COS = "part4.q3_solution.CosineSimilarity"
FORWARD = "part4.q3_solution.SimSiam.forward"
LOSS = "part4.q3_solution.SimSiam.loss"
SEEDS = st.integers(min_value=0, max_value=2**31 - 1)


def _cosine(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    a, b = a.double(), b.double()
    return (a * b).sum(1) / (a.norm(dim=1) * b.norm(dim=1))


def _similarities(part4: Any, x1: torch.Tensor, x2: torch.Tensor, call: str) -> torch.Tensor:
    got = part4.driver("drivers_part4.cosine_probe", x1, x2)
    if not isinstance(got, torch.Tensor):
        fail(f"{call} returned {describe(got)}; expected a tensor of shape [{len(x1)}]")
    if got.numel() != len(x1) or got.dim() > 2:
        fail(f"{call} returned a tensor of shape {list(got.shape)}; expected shape [{len(x1)}] (one similarity per row, "
             "reduced over dim 1)", "the sum or norm taken over the wrong dimension (dim=0 is the batch)")
    if not got.is_floating_point() or not bool(torch.isfinite(got).all()):
        fail(f"{call} returned {preview(got)}; expected finite similarities")
    return got.reshape(-1)


# ============================================================================ CosineSimilarity
@check("part4.q3_solution.CosineSimilarity.values")
@grades(COS)
@tags(COS)
@graded
@given(seed=SEEDS, batch=st.integers(1, 16), d=st.integers(2, 64), scale=st.sampled_from([1e-2, 1.0, 30.0]))
def test_cosine_values(part4, seed, batch, d, scale):
    """<x1_i, x2_i> / (||x1_i|| ||x2_i||) per row of [B, d] inputs (the class's default dim=1),
    rows correlated so that similarities spread over [-1, 1]. Tolerance 1e-5 (float32 rounding of
    a normalised dot product; eps of 1e-8 or less changes nothing at these norms)."""
    x1 = gaussian((batch, d), seed, scale)
    x2 = (0.6 * x1 + gaussian((batch, d), seed + 1, scale)) * torch.where(torch.arange(batch) % 2 == 0, 1.0, -1.0)[:, None]
    call = f"CosineSimilarity()(x1, x2) for x1, x2 of shape [{batch}, {d}] (values of size ~{scale:g})"
    got = _similarities(part4, x1, x2, call)
    want = _cosine(x1, x2)
    err = (got.double() - want).abs()
    if bool((err > 1e-5).any()):
        i = int(err.argmax())
        dot = float((x1[i].double() * x2[i].double()).sum())
        hint = ("the dot product without dividing by the norms" if abs(float(got[i]) - dot) < 1e-4 * max(1, abs(dot))
                else "the norms taken over the batch dimension (dim=0)" if batch > 1 else None)
        fail(f"{call}: row {i} gives {float(got[i]):.6g}; expected {float(want[i]):.6g}", hint)


@check("part4.q3_solution.CosineSimilarity.properties")
@grades(COS)
@tags(COS)
def test_cosine_properties(part4):
    """Rows that are positive multiples (1), negative multiples (-1) and orthogonal (0), and the
    same rows rescaled by 1e-3 and 1e3 (the similarity does not depend on the vectors' lengths)."""
    base = gaussian((6, 10), 5)
    ortho = base - (base * base.roll(1, 0)).sum(1, keepdim=True) / (base.roll(1, 0) ** 2).sum(1, keepdim=True) * base.roll(1, 0)
    cases = [("x2 = 2.5 * x1", base, 2.5 * base, 1.0), ("x2 = -0.4 * x1", base, -0.4 * base, -1.0),
             ("x2 orthogonal to x1 row by row", base.roll(1, 0), ortho, 0.0)]
    for text, a, b, want in cases:
        call = f"CosineSimilarity()(x1, x2) for x1 of shape [6, 10] and {text}"
        got = _similarities(part4, a, b, call)
        if float((got.double() - want).abs().max()) > 1e-5:
            fail(f"{call} = {preview(got)}; expected {want:g} for every row")
    plain = _similarities(part4, base, base.roll(1, 0), "CosineSimilarity()(x1, x2)")
    for factor in (1e-3, 1e3):
        call = f"CosineSimilarity()(c * x1, x2) for c = {factor:g}"
        got = _similarities(part4, factor * base, base.roll(1, 0), call)
        if float((got.double() - plain.double()).abs().max()) > 1e-5:
            fail(f"{call} = {preview(got)}; expected the same as for c = 1, {preview(plain)} (cosine similarity does not "
                 "depend on the vectors' lengths)")


# ============================================================================ SimSiam.forward
def _views(n: int = 8, seed: int = 3) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 1, 28, 28, generator=g), torch.rand(n, 1, 28, 28, generator=g)


def _modules(ref4: Any, dim: int, pred_dim: int, hidden: int, seed: int) -> tuple[torch.nn.Module, torch.nn.Module]:
    """The grader's encoder f and predictor h (q3_model), seeded, with batch-norm running
    statistics away from (0, 1) so that eval mode is not the identity."""
    q3_model = ref4("q3_model")
    torch.manual_seed(seed)
    f, h = q3_model.mlp_encoder(dim, hidden=hidden), q3_model.mlp_predictor(dim, pred_dim)
    g = torch.Generator().manual_seed(seed)
    for m in [*f.modules(), *h.modules()]:
        if isinstance(m, torch.nn.BatchNorm1d):
            m.running_mean.copy_(0.3 * torch.randn(m.num_features, generator=g))
            m.running_var.copy_(0.5 + torch.rand(m.num_features, generator=g))
    return f, h


def _forward(part4: Any, ref4: Any, stop_gradient: bool, train: bool, call: str, dim: int = 32, pred_dim: int = 8,
             hidden: int = 64) -> dict[str, Any]:
    x1, x2 = _views()
    f, h = _modules(ref4, dim, pred_dim, hidden, 17)
    r = probe(part4, "simsiam_forward_probe", dim, pred_dim, hidden, stop_gradient, x1, x2, train,
              f.state_dict(), h.state_dict(), call=call)
    out = r.get("out")
    if not isinstance(out, list) or len(out) != 4 or not all(isinstance(o, torch.Tensor) for o in out):
        fail(f"{call} returned {describe(out)}; expected the four tensors p1, p2, z1, z2")
    for name, o in zip(("p1", "p2", "z1", "z2"), out):
        if tuple(o.shape) != (len(x1), dim):
            fail(f"{call}: {name} has shape {list(o.shape)}; expected [{len(x1)}, {dim}] (batch, dim)")
    r["x"], r["modules"] = (x1, x2), (f, h)
    return r


@check("part4.q3_solution.SimSiam.forward.outputs")
@grades(FORWARD)
@tags(FORWARD)
def test_forward_outputs(part4, ref4):
    """p1, p2, z1, z2 = forward(x1, x2) must be h(f(x1)), h(f(x2)), f(x1), f(x2) (in that order)
    for the grader's f and h (set as the model's ``encoder`` and ``predictor``), in eval mode;
    tolerance 1e-5 (the same float32 operations)."""
    call = "SimSiam(mlp_encoder, dim=32, pred_dim=8).eval()(x1, x2) on two [8, 1, 28, 28] views"
    r = _forward(part4, ref4, True, False, call)
    f, h = r["modules"]
    f.eval()
    h.eval()
    x1, x2 = r["x"]
    with torch.no_grad():
        z1, z2 = f(x1), f(x2)
        want = (h(z1), h(z2), z1, z2)
    names = ("p1", "p2", "z1", "z2")
    got = r["out"]
    for i, name in enumerate(names):
        if float((got[i].double() - want[i].double()).abs().max()) > 1e-5:
            swapped = next((names[j] for j in range(4) if j != i
                            and float((got[i].double() - want[j].double()).abs().max()) <= 1e-5), None)
            fail(f"{call}: {name} = {preview(got[i])}; expected {preview(want[i])}"
                 + (f" (what you returned as {name} is {swapped})" if swapped else ""),
                 "outputs returned in another order than p1, p2, z1, z2" if swapped else None)


@check("part4.q3_solution.SimSiam.forward.stop_gradient")
@grades(FORWARD)
@tags(FORWARD)
def test_forward_stop_gradient(part4, ref4):
    """With ``stop_gradient=True`` the targets z1, z2 carry no gradient (nothing reaches the
    encoder through them) while the predictions p1, p2 do; with ``stop_gradient=False`` the
    targets carry gradient into the encoder too (the report's ablation). In training mode."""
    for stop in (True, False):
        call = f"SimSiam(mlp_encoder, dim=32, pred_dim=8, stop_gradient={stop})(x1, x2)"
        r = _forward(part4, ref4, stop, True, call)
        if not r.get("encoder_grad_from_predictions"):
            fail(f"{call}: no gradient reaches the encoder through the predictions p1, p2",
                 "the predictions detached (stop-gradient belongs on the targets z1, z2)")
        from_targets = bool(r.get("encoder_grad_from_targets"))
        if stop and from_targets:
            fail(f"{call}: gradient reaches the encoder through the targets z1, z2; with stop_gradient=True they must be "
                 "detached", "z1, z2 returned without .detach() when self.stop_gradient is set")
        if not stop and not from_targets:
            fail(f"{call}: no gradient reaches the encoder through the targets z1, z2; with stop_gradient=False they must "
                 "be returned as computed (the ablation trains without the stop-gradient)",
                 "z1, z2 detached whatever self.stop_gradient says")


@check("part4.q3_solution.SimSiam.forward.smoke.no_collapse")
@grades(FORWARD)
@tags(FORWARD)
def test_forward_smoke(part4, ref4, ref2, threshold):
    """The stop-gradient's purpose, end to end: the student's SimSiam (stop_gradient=True; its
    forward, the grader's loss, augmentations and encoder) trained briefly on FashionMNIST must not
    collapse: the per-dimension std of the l2-normalised encodings of held-out images, times
    sqrt(dim), stays above a calibrated bound (grading.toml; without the stop-gradient the
    encodings collapse towards one point)."""
    s = threshold("part4.simsiam_smoke")
    train, held_out = smoke.simsiam_images(ref2("data"), s)  # the grader's FashionMNIST reader
    dim = int(s["dim"])
    call = (f"SimSiam(mlp_encoder, dim={dim}, pred_dim={s['pred_dim']}) trained {s['steps']} SGD steps (batch {s['batch']}) "
            f"on augmented views of {len(train)} FashionMNIST images with the SimSiam loss")
    encoder, args = smoke.simsiam_setup(s, ref4("q3_model"), train)
    state = part4.driver("drivers_part4.simsiam_smoke", *args, seed=int(s["seed"]), slow_ok=True)
    try:
        encoder.load_state_dict(state)  # the grader's own copy of the trained encoder
    except Exception:
        fail(f"{call}: the trained encoder's weights could not be read back")
    std = smoke.collapse_std(encoder, held_out, dim)
    count = len(held_out)
    if not std >= float(s["min_std"]):
        fail(f"{call}: the encodings of {count} held-out images collapsed: their per-dimension std (normalised, times "
             f"sqrt(dim)) is {std:.3f}; expected >= {float(s['min_std']):g} (about 1 for spread-out encodings)",
             "the targets z1, z2 not detached: without the stop-gradient SimSiam collapses")


# ============================================================================ SimSiam.loss
def _loss_inputs(seed: int, n: int = 16, dim: int = 12) -> list[torch.Tensor]:
    z1 = gaussian((n, dim), seed)
    z2 = z1 + 0.5 * gaussian((n, dim), seed + 1)
    return [z2 + 0.3 * gaussian((n, dim), seed + 2), z1 - 0.3 * gaussian((n, dim), seed + 3), z1, z2]


def _reference_loss(p1: torch.Tensor, p2: torch.Tensor, z1: torch.Tensor, z2: torch.Tensor) -> torch.Tensor:
    return -0.5 * (_cosine(p1, z2).mean() + _cosine(p2, z1).mean())


@check("part4.q3_solution.SimSiam.loss.value")
@grades(LOSS)
@tags(LOSS)
@graded
@given(seed=SEEDS)
def test_loss_value(part4, seed):
    """L = 0.5 * D(p1, z2) + 0.5 * D(p2, z1) with D(p, z) = -mean_i S(p_i, z_i) and S the
    similarity_function passed in (``nn.CosineSimilarity(dim=1)`` here): predictions and
    targets built so that every pairing gives a different value. Tolerance 1e-5."""
    p1, p2, z1, z2 = _loss_inputs(seed)
    call = "SimSiam(...).loss(p1, p2, z1, z2, nn.CosineSimilarity(dim=1)) for [16, 12] inputs"
    r = probe(part4, "simsiam_loss_probe", p1, p2, z1, z2, True, call=call)
    got = one_element(r["out"], call)
    want = float(_reference_loss(p1, p2, z1, z2))
    if abs(got - want) > 1e-5:
        sims = {"p1z2": float(_cosine(p1, z2).mean()), "p2z1": float(_cosine(p2, z1).mean()),
                "p1z1": float(_cosine(p1, z1).mean()), "p2z2": float(_cosine(p2, z2).mean())}
        fail(f"{call} = {got:.6g}; expected -0.5 * (mean S(p1, z2) + mean S(p2, z1)) = {want:.6g}",
             mistakes.simsiam_loss(got, sims))


@check("part4.q3_solution.SimSiam.loss.gradients")
@grades(LOSS)
@tags(LOSS)
def test_loss_gradients(part4, partial_credit):
    """Gradients of the loss reach the predictions p1, p2 as the formula's, and the targets z1,
    z2 either the formula's or none: equation (7) writes stop-grad inside the loss, so a loss
    that detaches the targets itself follows the handout (a note says that it then also stops the
    gradient in the report's stop_gradient=False run; forward's check 3.1.2 grades the switch).
    Tolerance 1e-5."""
    p1, p2, z1, z2 = _loss_inputs(7)
    leaves = [t.double().clone().requires_grad_(True) for t in (p1, p2, z1, z2)]
    _reference_loss(*leaves).backward()
    want = [t.grad for t in leaves]
    names = ("p1", "p2", "z1", "z2")
    for stop in (True, False):
        call = f"SimSiam(..., stop_gradient={stop}).loss(p1, p2, z1, z2, nn.CosineSimilarity(dim=1)), then backward()"
        r = probe(part4, "simsiam_loss_probe", p1, p2, z1, z2, stop, call=call)
        one_element(r["out"], call)
        grads = r.get("grads") or [None] * 4
        for i, name in enumerate(names):
            g = grads[i] if i < len(grads) else None
            if i >= 2 and (g is None or float(g.abs().max()) == 0.0):
                if not stop:
                    partial_credit.notes.append(
                        "Note: your loss detaches the targets even with stop_gradient=False. Equation (7) allows it, "
                        "but the report's run without gradient stopping then still stops it; detach in forward only "
                        "(or only when self.stop_gradient is set).")
                continue
            if g is None:
                fail(f"{call}: no gradient reached {name}", "the predictions detached in the loss")
            if float((g.double() - want[i]).abs().max()) > 1e-5:
                fail(f"{call}: the gradient on {name} is {preview(g)}; expected {preview(want[i])}")
