"""Checks of IFT6135 HW3 problem 2, q2_solution.py: the Lipschitz penalty of Petzka et al. and
the critic's estimates of the Wasserstein-1 distance and of the squared Hellinger distance.

The critics are the grader's: :class:`RecordingCritic` (worker side) has a known input
gradient and records every batch it is called on, so the penalty is checked against the
interpolates the student's code actually drew; expectations are computed here, in float64.
"""
from __future__ import annotations

from typing import Any

import torch
from hypothesis import given
from hypothesis import strategies as st

from autograder.checks.part4 import mistakes, smoke
from autograder.checks.part4.helpers import gaussian, on_shells, one_element, preview, probe, shape_text
from autograder.checks.part1.stat_tests import ks_normal_pvalue, normal_quantile
from autograder.checks.part1.strategies import graded
from autograder.registry import check, fail, grades, tags

LP = "part4.q2_solution.lp_reg"
W1 = "part4.q2_solution.vf_wasserstein_distance"
HELLINGER = "part4.q2_solution.vf_squared_hellinger"
SEEDS = st.integers(min_value=0, max_value=2**31 - 1)


def _shapes(cfg: Any) -> list[tuple[int, ...]]:
    return [tuple(int(d) for d in s) for s in cfg.convention("part4.lp_reg_shapes", [[2]])]


def _segment(xh: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per example, the t with xh = t x + (1 - t) y in least squares, and the distance of xh from
    that point relative to |x - y|."""
    d = (x - y).double().reshape(len(x), -1)
    r = (xh - y).double().reshape(len(x), -1)
    t = (r * d).sum(1) / (d * d).sum(1)
    return t, (r - t[:, None] * d).norm(dim=1) / d.norm(dim=1)


def _interpolates(r: dict[str, Any], x: torch.Tensor, y: torch.Tensor, call: str, tol: float) -> tuple[torch.Tensor, torch.Tensor]:
    """The batch the student's lp_reg evaluated the critic's gradient on, and its t per example."""
    seen = [s for s in r.get("seen") or [] if isinstance(s, torch.Tensor) and s.shape == x.shape]
    if not seen:
        fail(f"{call} never called the critic on a batch of x's shape {list(x.shape)}")
    fits = [(_segment(s, x, y), s) for s in seen]
    (t, resid), xh = min(fits, key=lambda f: float(f[0][1].max()))
    if float(resid.max()) > tol:
        per_element = (xh - y).double() / (x - y).double()
        spread = per_element.reshape(len(x), -1)
        if bool(((spread >= -tol) & (spread <= 1 + tol)).all()) and float(spread.std(1).mean()) > 0.05:
            fail(f"{call}: the critic was evaluated at points that are not on the segments between x_i and y_i: "
                 "each coordinate has its own interpolation weight",
                 "t drawn per element (torch.rand_like(x)); draw one t per example, shape [B, 1, ...], "
                 "shared by all of the example's coordinates")
        fail(f"{call}: the critic was evaluated at points that are not x_hat_i = t_i x_i + (1 - t_i) y_i "
             f"(largest distance from the segment {float(resid.max()):.3g} of |x_i - y_i|)")
    return xh, t


# ============================================================================ lp_reg
@check("part4.q2_solution.lp_reg.linear")
@grades(LP)
@tags(LP)
@graded
@given(seed=SEEDS, slope=st.sampled_from([0.25, 0.9, 1.5, 3.0]))
def test_lp_reg_linear(part4, cfg, seed, slope):
    """A linear critic f(x) = <w, x> has gradient w at every point, so whatever t is drawn the
    penalty is max(0, ||w|| - 1)^2 exactly; w spans all of an example's coordinates (an image's
    too), so a norm over the wrong dimension or a missing square changes the value. Tolerance:
    1e-4 relative (float32 rounding of a norm)."""
    for k, shape in enumerate(_shapes(cfg)):
        x, y = gaussian((64, *shape), seed + k), gaussian((64, *shape), seed + k + 100, shift=1.0)
        w = gaussian(shape, seed + k + 200).reshape(-1)
        w = w / w.norm() * slope
        call = f"lp_reg(x, y, critic) for x, y of shape {shape_text(shape)} (B = 64) and a linear critic of slope ||w|| = {slope:g}"
        r = probe(part4, "critic_probe", "lp_reg", "linear", w, x, y, call=call)
        got = one_element(r["out"], call)
        want = max(0.0, slope - 1.0) ** 2
        if abs(got - want) > 1e-4 * max(1.0, want) + 1e-6:
            grads = w.reshape(1, *shape).expand(64, *shape)
            fail(f"{call} = {got:.6g}; expected max(0, ||w|| - 1)^2 = {want:.6g} (the input gradient of this critic is w "
                 "everywhere)", mistakes.penalty(got, grads))


@check("part4.q2_solution.lp_reg.interpolation")
@grades(LP)
@tags(LP)
def test_lp_reg_interpolation(part4, cfg, threshold):
    """With f(x) = ||x||^2 / 2 the input gradient at x_hat is x_hat itself, so the penalty the
    student returns must be mean_i max(0, ||x_hat_i|| - 1)^2 of the x_hat the critic was called
    on, and those x_hat must lie on the segments [y_i, x_i] with one t_i per example, the t_i
    uniform on [0, 1] (Kolmogorov-Smirnov test, alpha from the config, 1,000 examples; x and y
    have norms on both sides of 1 so that the max(0, .) matters). Either orientation of t
    (t x + (1 - t) y or t y + (1 - t) x) is the same distribution."""
    alpha = float(threshold("part4.lp_reg.ks_alpha"))
    tol = float(threshold("part4.lp_reg.segment_tol"))
    rtol = float(threshold("part4.lp_reg.value_rtol"))
    n = 1000
    for k, shape in enumerate(_shapes(cfg)):
        x, y = on_shells(n, shape, 11 + k), on_shells(n, shape, 51 + k)
        call = f"lp_reg(x, y, critic) for x, y of shape {shape_text(shape)} (B = {n}) and the critic f(x) = ||x||^2 / 2"
        r = probe(part4, "critic_probe", "lp_reg", "half_square", torch.ones(1), x, y, call=call)
        got = one_element(r["out"], call)
        xh, t = _interpolates(r, x, y, call, tol)
        if float(t.min()) < -tol or float(t.max()) > 1 + tol:
            fail(f"{call}: interpolation weights t range over [{float(t.min()):.3g}, {float(t.max()):.3g}]; "
                 "expected t ~ U[0, 1]", "t drawn from torch.randn (a normal) instead of torch.rand (uniform on [0, 1])")
        if float(t.std()) < 1e-3:
            fail(f"{call}: every example was interpolated with the same t = {float(t[0]):.4g}; expected one t per example",
                 "one t drawn for the whole batch (torch.rand(1)); draw a t for each example, shape [B, 1, ...]")
        p = ks_normal_pvalue(normal_quantile(t.clamp(1e-12, 1 - 1e-12)))
        if p < alpha:
            fail(f"{call}: the interpolation weights t (mean {float(t.mean()):.3f}, std {float(t.std()):.3f}) are not "
                 f"uniform on [0, 1] (Kolmogorov-Smirnov p = {p:.2g} < {alpha:g}; U[0, 1] has mean 0.5, std 0.289)")
        norms = xh.double().reshape(n, -1).norm(dim=1)
        want = float(((norms - 1).clamp(min=0) ** 2).mean())
        if abs(got - want) > rtol * max(1.0, want):
            fail(f"{call} = {got:.6g}; expected mean_i max(0, ||x_hat_i|| - 1)^2 = {want:.6g} over the x_hat the critic was "
                 "called on (the gradient of ||x||^2 / 2 is x)", mistakes.penalty(got, xh))


@check("part4.q2_solution.lp_reg.gradients")
@grades(LP)
@tags(LP)
def test_lp_reg_gradients(part4, cfg, threshold):
    """The penalty is added to the critic's loss, so it must be differentiable in the critic's
    parameters (``create_graph=True``): with f(x) = a ||x||^2 / 2, d(penalty)/da =
    mean_i 2 max(0, a ||x_hat_i|| - 1) ||x_hat_i|| from the critic's own x_hat. And lp_reg must
    work when x is a leaf that requires grad and when y is a generator's output with history
    (setting requires_grad on a non-leaf, or differentiating with respect to x, fails there)."""
    rtol = float(threshold("part4.lp_reg.value_rtol"))
    tol = float(threshold("part4.lp_reg.segment_tol"))
    a = 1.5
    for k, shape in enumerate(_shapes(cfg)):
        x, y = on_shells(256, shape, 71 + k), on_shells(256, shape, 91 + k)
        for x_grad, y_graph in ((False, False), (True, True)):
            inputs = ("x requiring grad and y = G(z) with history" if x_grad else "plain tensors x, y")
            call = (f"lp_reg(x, y, critic) for {inputs} of shape {shape_text(shape)} and the critic "
                    f"f(x) = a ||x||^2 / 2, a = {a:g}")
            r = probe(part4, "critic_probe", "lp_reg", "half_square", torch.tensor([a]), x, y, x_grad, y_graph, call=call)
            one_element(r["out"], call)
            if not r.get("requires_grad") or r.get("grad") is None:
                fail(f"{call}: the penalty has no gradient with respect to the critic's parameters, so adding it to the "
                     "critic's loss changes nothing",
                     "torch.autograd.grad(...) without create_graph=True (or a .detach()/.item() on the gradient)")
            if "backward_error" in r:
                fail(f"{call}: backward() through the penalty raised {r['backward_error']}")
            xh, _ = _interpolates(r, x, y, call, tol)
            norms = xh.double().reshape(len(xh), -1).norm(dim=1)
            want = float((2 * (a * norms - 1).clamp(min=0) * norms).mean())
            got = float(r["grad"].double().reshape(-1)[0])
            if abs(got - want) > rtol * max(1.0, abs(want)) + 1e-6:
                fail(f"{call}: d(penalty)/da = {got:.6g}; expected {want:.6g} (mean_i 2 max(0, a ||x_hat_i|| - 1) "
                     "||x_hat_i||, from the x_hat the critic was called on)")


@check("part4.q2_solution.lp_reg.smoke.critic")
@grades(LP)
@tags(LP)
def test_lp_reg_smoke(part4, ref4, threshold):
    """The penalty's purpose, end to end: q2_model.Critic trained to maximise the grader's distance
    minus lambda * the student's penalty between N(0, I) and N((shift, 0), I) (W1 = shift) must
    estimate a distance in a calibrated range around W1 and stay about 1-Lipschitz (mean input
    gradient norm at interpolates). Without a working penalty the critic grows without bound;
    calibration in grading.toml."""
    s = threshold("part4.wgan_smoke")
    shift = float(s["shift"])
    critic, args, g = smoke.wgan_setup(s, ref4("q2_model").Critic)
    start = args[0]
    call = (f"a critic trained {s['steps']} Adam steps on -(mean f(p) - mean f(q)) + {s['lam']:g} * lp_reg(p, q, critic), "
            f"p ~ N(0, I), q ~ N(({shift:g}, 0), I) in 2-D (W1 = {shift:g})")
    state = part4.driver("drivers_part4.wgan_smoke", *args, seed=int(s["seed"]), slow_ok=True)
    if not isinstance(state, dict) or set(state) != set(start) or any(
            not isinstance(state[k], torch.Tensor) or state[k].shape != start[k].shape for k in start):
        fail(f"{call}: the trained critic's weights could not be read back")
    critic.load_state_dict(state)
    estimate, norm = smoke.wgan_measure(critic, s, g)
    low, high = (float(v) for v in s["w1_range"])
    if not (torch.isfinite(torch.tensor([estimate, norm])).all() and low <= estimate <= high and norm <= float(s["max_grad_norm"])):
        fail(f"{call}: the critic estimates W1 = {estimate:.4g} with a mean gradient norm of {norm:.3g} at interpolates; "
             f"expected an estimate in [{low:g}, {high:g}] and a norm <= {float(s['max_grad_norm']):g} (a working penalty "
             "keeps the critic about 1-Lipschitz)",
             "a penalty that does not reach the critic's parameters (create_graph), or that penalises the wrong quantity"
             if estimate > high else None)


# ============================================================================ the distances
def _linear_case(seed: int, shape: tuple[int, ...], n: int = 128) -> tuple[torch.Tensor, ...]:
    w = gaussian(shape, seed).reshape(-1) * 0.3
    return w, gaussian((n, *shape), seed + 1), gaussian((n, *shape), seed + 2, shift=0.7)


def _outputs(w: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
    return a.double().reshape(len(a), -1) @ w.double()


@check("part4.q2_solution.vf_wasserstein_distance.values")
@grades(W1)
@tags(W1)
@graded
@given(seed=SEEDS)
def test_wasserstein_values(part4, cfg, seed):
    """mean f(p) - mean f(q) for a linear critic on 2-D and image batches of different sizes'
    values; the sign may be either of the config's accepted conventions, but one sign for every
    call (the critic is trained to maximise whichever it is). Tolerance 1e-5 relative."""
    signs = {"p_minus_q": 1.0, "q_minus_p": -1.0}
    accepted = {signs[s] for s in cfg.convention("part4.wasserstein_signs", ["p_minus_q"])}
    used: set[float] = set()
    for k, shape in enumerate(_shapes(cfg)):
        w, p, q = _linear_case(seed + k, shape)
        call = f"vf_wasserstein_distance(p, q, critic) for p, q of shape {shape_text(shape)} and a linear critic"
        got = one_element(probe(part4, "critic_probe", "vf_wasserstein_distance", "linear", w, p, q, call=call)["out"], call)
        fp, fq = _outputs(w, p), _outputs(w, q)
        d = float(fp.mean() - fq.mean())
        match = [s for s in accepted if abs(got - s * d) <= 1e-5 * max(1.0, abs(d))]
        if not match:
            want = " or ".join(f"{s * d:.6g}" for s in sorted(accepted, reverse=True))
            fail(f"{call} = {got:.6g}; expected mean f(p) - mean f(q) = {d:.6g}"
                 + (f" (accepted: {want})" if len(accepted) > 1 else ""), mistakes.wasserstein(got, fp, fq))
        used.add(match[0])
    if len(used) > 1:
        fail("vf_wasserstein_distance returned mean f(p) - mean f(q) for one call and its opposite for another; "
             "the sign must be the same every time")


@check("part4.q2_solution.vf_wasserstein_distance.gradients")
@grades(W1)
@tags(W1)
def test_wasserstein_gradients(part4, cfg):
    """The estimate is the critic's objective, so gradients must reach its parameters: for
    f(x) = <w, x>, d/dw = +-(mean p - mean q), with the sign of the value."""
    for k, shape in enumerate(_shapes(cfg)):
        w, p, q = _linear_case(300 + k, shape)
        call = f"vf_wasserstein_distance(p, q, critic) for p, q of shape {shape_text(shape)} and a linear critic"
        r = probe(part4, "critic_probe", "vf_wasserstein_distance", "linear", w, p, q, call=call)
        got = one_element(r["out"], call)
        if r.get("grad") is None:
            fail(f"{call}: no gradient reaches the critic's parameters (the result was detached, or computed with "
                 ".item()/numpy)")
        sign = 1.0 if got * float(_outputs(w, p).mean() - _outputs(w, q).mean()) >= 0 else -1.0
        want = sign * (p.double().reshape(len(p), -1).mean(0) - q.double().reshape(len(q), -1).mean(0))
        err = float((r["grad"].double().reshape(-1) - want).abs().max())
        if err > 1e-5 * max(1.0, float(want.abs().max())):
            fail(f"{call}: the gradient on w is {preview(r['grad'])}; expected {preview(want)} (the difference of the "
                 "batches' means)")


@check("part4.q2_solution.vf_squared_hellinger.values")
@grades(HELLINGER)
@tags(HELLINGER)
@graded
@given(seed=SEEDS)
def test_hellinger_values(part4, cfg, seed):
    """mean(1 - exp(-V(x))) - mean(exp(V(y)) - 1) (Nowozin et al., squared Hellinger: g_f(v) =
    1 - exp(-v), f*(t) = t / (1 - t)) for a linear V with outputs of moderate size, 2-D and image
    batches. Writing f*(g_f(v)) as T / (1 - T) or as exp(v) - 1 is the same; tolerance 1e-4
    relative (the T / (1 - T) form loses a few float32 digits)."""
    for k, shape in enumerate(_shapes(cfg)):
        w, x, y = _linear_case(seed + k, shape)
        w = w / max(1e-6, float(w.norm())) * 0.5
        call = f"vf_squared_hellinger(x, y, critic) for x, y of shape {shape_text(shape)} and a linear critic V"
        got = one_element(probe(part4, "critic_probe", "vf_squared_hellinger", "linear", w, x, y, call=call)["out"], call)
        vx, vy = _outputs(w, x), _outputs(w, y)
        want = float((1 - torch.exp(-vx)).mean() - (torch.exp(vy) - 1).mean())
        if abs(got - want) > 1e-4 * max(1.0, abs(want)):
            fail(f"{call} = {got:.6g}; expected mean(1 - exp(-V(x))) - mean(exp(V(y)) - 1) = {want:.6g}",
                 mistakes.hellinger(got, vx, vy))


@check("part4.q2_solution.vf_squared_hellinger.gradients")
@grades(HELLINGER)
@tags(HELLINGER)
def test_hellinger_gradients(part4, cfg):
    """d/dw of the bound for V(x) = <w, x>: mean(exp(-V(x)) x) - mean(exp(V(y)) y)."""
    for k, shape in enumerate(_shapes(cfg)):
        w, x, y = _linear_case(400 + k, shape)
        w = w / max(1e-6, float(w.norm())) * 0.5
        call = f"vf_squared_hellinger(x, y, critic) for x, y of shape {shape_text(shape)} and a linear critic V"
        r = probe(part4, "critic_probe", "vf_squared_hellinger", "linear", w, x, y, call=call)
        one_element(r["out"], call)
        if r.get("grad") is None:
            fail(f"{call}: no gradient reaches the critic's parameters (the result was detached, or computed with "
                 ".item()/numpy)")
        xf, yf = x.double().reshape(len(x), -1), y.double().reshape(len(y), -1)
        want = (torch.exp(-(xf @ w.double()))[:, None] * xf).mean(0) - (torch.exp(yf @ w.double())[:, None] * yf).mean(0)
        err = float((r["grad"].double().reshape(-1) - want).abs().max())
        if err > 1e-4 * max(1.0, float(want.abs().max())):
            fail(f"{call}: the gradient on w is {preview(r['grad'])}; expected {preview(want)}")
