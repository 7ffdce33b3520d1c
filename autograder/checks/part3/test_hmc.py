"""Checks of part 3's hmc.py: one HMC transition, and HMC as a defence of the VAE.

hmc_step is run on a 2-D Gaussian whose log target records every point it is evaluated at:
from those points the grader rebuilds the student's leapfrog trajectory, the momentum it drew
and the Hamiltonian it should have compared, so each part of the kernel is judged on its own
(3.4.1-3.4.3); 3.4.4 runs the chain and compares its samples with the target. hmc_defence is run
with the grader's hmc_step, which also evaluates the log target the student built at probe points.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from autograder.checks.part3 import helpers as H
from autograder.checks.part3 import smoke
from autograder.registry import check, fail, grades, tags

STEP = "part3.hmc.hmc_step"
DEFENCE = "part3.hmc.hmc_defence"


# ============================================================================ 3.4 hmc_step
def _target(s: dict[str, Any]) -> tuple[Tensor, Tensor]:
    return torch.tensor(s["mean"], dtype=torch.float32), torch.tensor(s["std"], dtype=torch.float32)


def _grad(q: Tensor, mean: Tensor, std: Tensor) -> Tensor:
    """The gradient of the Gaussian log target, float64."""
    return -(q.double() - mean.double()) / std.double() ** 2


def _log_p(q: Tensor, mean: Tensor, std: Tensor) -> Tensor:
    return -0.5 * (((q.double() - mean.double()) / std.double()) ** 2).sum(1)


def _chains(s: dict[str, Any], seed: int, offset: str = "start_offset") -> Tensor:
    mean, std = _target(s)
    g = torch.Generator().manual_seed(seed)
    return mean + torch.tensor(s[offset]) + torch.randn(int(s["chains"]), 2, generator=g) * std


def _distinct(seen: list[Tensor]) -> list[Tensor]:
    points: list[Tensor] = []
    for t in seen:  # compared in float64: code that works in double precision is fine
        t = t.double()
        if not any(torch.equal(t, p) for p in points):
            points.append(t)
    return points


def _step(part3: Any, s: dict[str, Any], z: Tensor, n_leapfrog: int, step_size: float | None = None,
          again: bool = False) -> tuple[list[Tensor], Tensor, str, list[Tensor]]:
    """One student hmc_step; (the distinct points of its trajectory, in order, as float64; its result; the call;
    ``again``: the distinct points of a second call from the same z)."""
    mean, std = _target(s)
    eps = float(s["step_size"]) if step_size is None else step_size
    call = (f"hmc_step(z, log_target, step_size={eps:g}, n_leapfrog={n_leapfrog}) for {len(z)} chains on a 2-D "
            f"Gaussian target (mean {s['mean']}, std {s['std']})")
    r = H.probe(part3, "hmc_step_probe", z, mean, std, eps, n_leapfrog, again, call=call)
    out = r["out"]
    if not isinstance(out, Tensor) or tuple(out.shape) != tuple(z.shape):
        fail(f"{call} returned {H.describe(out)}; expected the new states, a tensor of z's shape {list(z.shape)}")
    if r["requires_grad"]:
        fail(f"{call} returned a tensor that requires grad; return the new states detached")
    if r["input_changed"]:
        fail(f"{call} changed z in place; the chains' current states belong to the caller")
    seen = [t for t in r["seen"] if isinstance(t, Tensor)]
    odd = [t for t in seen if tuple(t.shape) != tuple(z.shape)]
    if odd:
        fail(f"{call}: log_target was called on a tensor of shape {list(odd[0].shape)}; call it on all the chains "
             f"at once ([B, D] = {list(z.shape)})")
    points = _distinct(seen)
    if not points or not torch.equal(points[0], z.double()):
        fail(f"{call}: the first point log_target was evaluated at is not z (the leapfrog starts with a half step of "
             "the momentum, which needs the gradient at z)")
    second = _distinct([t for t in r.get("seen_again", []) if isinstance(t, Tensor)])
    return [p.double() for p in points], out.double(), call, [p.double() for p in second]


def _leapfrog_momenta(points: list[Tensor], s: dict[str, Any], eps: float, first: float) -> tuple[Tensor, Tensor]:
    """(p at the start, p at the end) of the trajectory, the first and last momentum steps being
    ``first`` * eps (1/2: the leapfrog; 1: full steps at both ends)."""
    mean, std = _target(s)
    half = (points[1] - points[0]) / eps
    p0 = half - first * eps * _grad(points[0], mean, std)
    p_end = half + eps * sum((_grad(q, mean, std) for q in points[1:-1]), torch.zeros_like(half)) \
        + first * eps * _grad(points[-1], mean, std)
    return p0, p_end


def _accepted(out: Tensor, points: list[Tensor], call: str) -> Tensor:
    """Per chain: 1 if the proposal (the trajectory's end) was returned, 0 if z was."""
    end, start = points[-1], points[0]
    tol = 1e-5 * (1 + start.abs().max())
    at_end = (out - end).abs().amax(1) <= tol
    at_start = (out - start).abs().amax(1) <= tol
    if not bool((at_end | at_start).all()):
        i = int((~(at_end | at_start)).nonzero()[0])
        fail(f"{call}: chain {i} returned {H.preview(out[i])}, which is neither its z {H.preview(start[i])} nor the "
             f"end of its leapfrog trajectory {H.preview(end[i])}: each chain keeps z or moves to its proposal")
    return at_end.double()


@check("part3.hmc.hmc_step.leapfrog")
@grades(STEP)
@tags(STEP)
def test_leapfrog(part3, threshold):
    """The trajectory is the leapfrog's: exactly ``n_leapfrog`` position steps (tried with 10 and
    3), each interior point obeying q[k+1] - 2 q[k] + q[k-1] = step_size^2 * grad log_target(q[k])
    (the momentum moves up the log target's gradient), and each chain returns either z or the
    trajectory's end. Tolerance 1e-4 relative: float32 positions."""
    s = threshold("part3.hmc")
    mean, std = _target(s)
    eps = float(s["step_size"])
    for n_leapfrog in (int(s["n_leapfrog"]), 3):
        z = _chains(s, 0)
        points, out, call, _ = _step(part3, s, z, n_leapfrog)
        if len(points) - 1 != n_leapfrog:
            fail(f"{call}: log_target was evaluated at {len(points) - 1} distinct points besides z; a leapfrog of "
                 f"n_leapfrog = {n_leapfrog} steps visits {n_leapfrog} (one per position step)")
        for k in range(1, len(points) - 1):
            second = points[k + 1] - 2 * points[k] + points[k - 1]
            want = eps ** 2 * _grad(points[k], mean, std)
            err = float(((second - want).abs() / want.abs().clamp(min=1.0)).max())
            if err > float(s["leapfrog_rtol"]):
                hint = ("the momentum steps go down the gradient of log_target (the potential energy is -log_target: "
                        "p <- p + step_size * grad log_target)" if bool(((second + want).abs() <= 1e-4 * want.abs().clamp(min=1.0)).all())
                        else None)
                fail(f"{call}: between position steps {k} and {k + 1} the momentum changed by "
                     f"{H.preview((second / eps)[0])} for chain 0; the leapfrog changes it by step_size * grad log_target "
                     f"= {H.preview((want / eps)[0])}", hint)
        _accepted(out, points, call)


@check("part3.hmc.hmc_step.momentum")
@grades(STEP)
@tags(STEP)
def test_momentum(part3, threshold):
    """The momentum, read back from the first position step (p0 = (q1 - z) / step_size - step_size / 2
    * grad log_target(z)), is a fresh N(0, I) draw: per-coordinate mean within ``momentum_mean_tol``
    and variance within ``momentum_var_range`` over the chains (4,000 chains: standard errors 0.016
    and 0.022), and a second call from the same z draws another one."""
    s = threshold("part3.hmc")
    eps = float(s["step_size"])
    z = _chains(s, 1)
    points, _, call, again = _step(part3, s, z, int(s["n_leapfrog"]), again=True)
    if len(points) < 2:
        fail(f"{call}: log_target was evaluated at z only; the chains never moved")
    tol, (low, high) = float(s["momentum_mean_tol"]), (float(v) for v in s["momentum_var_range"])

    def normal(p: Tensor) -> bool:
        v = p.var(0)
        return bool((p.mean(0).abs() <= tol).all() and (v >= low).all() and (v <= high).all())

    p0, _ = _leapfrog_momenta(points, s, eps, 0.5)
    if not normal(p0):
        full, _ = _leapfrog_momenta(points, s, eps, 1.0)
        hint = ("a full first momentum step: the leapfrog starts (and ends) with half a step, p + step_size / 2 * grad"
                if normal(full) else None)
        fail(f"{call}: the momentum drawn has per-coordinate mean {H.preview(p0.mean(0))} and variance "
             f"{H.preview(p0.var(0))}; expected a standard normal draw (mean 0, variance 1)", hint)
    if len(again) > 1 and bool(torch.isclose(again[1], points[1]).all(1).double().mean() > 0.5):
        fail(f"{call}: a second call from the same z drew the same momentum; draw a fresh p ~ N(0, I) every call "
             "(no fixed seed inside hmc_step)")


@check("part3.hmc.hmc_step.metropolis")
@grades(STEP)
@tags(STEP)
def test_metropolis(part3, threshold):
    """Each chain accepts its proposal with probability min(1, exp(H(z, p0) - H(q_L, p_L))),
    H = -log_target + ||p||^2 / 2, judged on the trajectory and momentum the student's own
    leapfrog produced: the number accepted must be within ``metropolis_max_z`` standard
    deviations of the expected number, and a chain whose H went down by more than 1e-3 is
    always accepted. (A full first and last momentum step is judged with its own momenta here:
    3.4.2 charges that mistake.)"""
    s = threshold("part3.hmc")
    mean, std = _target(s)
    eps = float(s["step_size"])
    z = _chains(s, 2)
    points, out, call, _ = _step(part3, s, z, int(s["n_leapfrog"]))
    if len(points) < 2:
        fail(f"{call}: log_target was evaluated at z only; the chains never moved")
    accepted = _accepted(out, points, call)
    verdicts = []
    for first in (0.5, 1.0):
        p0, p_end = _leapfrog_momenta(points, s, eps, first)
        dh = (-_log_p(points[-1], mean, std) + 0.5 * (p_end ** 2).sum(1)) - (-_log_p(points[0], mean, std) + 0.5 * (p0 ** 2).sum(1))
        prob = torch.exp(-dh).clamp(max=1.0).nan_to_num(0.0)
        spread = float((prob * (1 - prob)).sum().sqrt())
        score = float(accepted.sum() - prob.sum()) / max(spread, 1.0)
        sure = dh < -1e-3
        missed = float((1 - accepted[sure]).mean()) if bool(sure.any()) else 0.0
        verdicts.append((abs(score) <= float(s["metropolis_max_z"]) and missed <= 0.001, score, float(prob.mean()), missed))
    if not any(v[0] for v in verdicts):
        _, score, expected, missed = verdicts[0]
        rate = float(accepted.mean())
        hint = ("no accept/reject step: every proposal is taken" if rate == 1.0 else
                "every proposal is rejected" if rate == 0.0 else
                "the acceptance test is reversed (accepting with probability exp(H_new - H_old))" if missed > 0.05 else None)
        fail(f"{call}: {rate:.3f} of the chains accepted their proposal; their energy changes give an expected "
             f"acceptance of {expected:.3f} ({score:+.1f} standard deviations)"
             + (f", and {missed:.1%} of the chains whose H decreased were rejected" if missed > 0 else ""), hint)


@check("part3.hmc.hmc_step.distribution")
@grades(STEP)
@tags(STEP)
def test_distribution(part3, threshold):
    """End to end: ``chain_steps`` transitions of 4,000 chains started away from a narrow 2-D
    Gaussian (std 1 and 0.1; the step size is 1.5 times the narrow std, where a kernel without
    its Metropolis step is visibly biased) must give samples with the target's mean (within
    ``chain_mean_tol`` standard deviations) and variance (ratio in ``chain_var_range``)."""
    s = threshold("part3.hmc")
    mean, std = _target(s)
    z = _chains(s, 3, "chain_start_offset")
    steps = int(s["chain_steps"])
    call = (f"{steps} hmc_step transitions (step_size={float(s['step_size']):g}, n_leapfrog={int(s['n_leapfrog'])}) "
            f"of {len(z)} chains on a 2-D Gaussian target (mean {s['mean']}, std {s['std']})")
    r = H.probe(part3, "hmc_chain", z, mean, std, float(s["step_size"]), int(s["n_leapfrog"]), steps, call=call, slow_ok=True)
    out = r["out"]
    if not isinstance(out, Tensor) or tuple(out.shape) != tuple(z.shape) or not bool(torch.isfinite(out).all()):
        fail(f"{call}: the chains ended as {H.describe(out)}; expected finite states of shape {list(z.shape)}")
    shift = ((out.double().mean(0) - mean.double()) / std.double())
    ratio = out.double().var(0) / std.double() ** 2
    low, high = (float(v) for v in s["chain_var_range"])
    if not bool((shift.abs() <= float(s["chain_mean_tol"])).all() and (ratio >= low).all() and (ratio <= high).all()):
        fail(f"{call}: the samples' mean is off the target's by {H.preview(shift)} standard deviations and their "
             f"variance is {H.preview(ratio)} times the target's; expected within {float(s['chain_mean_tol']):g} and "
             f"[{low:g}, {high:g}]")


# ============================================================================ 3.5 hmc_defence
def _prior_omitted(want: Tensor, probes: list[Tensor]) -> list[Tensor]:
    return [w + 0.5 * (p.double() ** 2).sum(1) for w, p in zip(want, probes)]


@check("part3.hmc.hmc_defence.target")
@grades(DEFENCE)
@tags(DEFENCE)
def test_defence_target(part3, ref1, ref3, threshold):
    """hmc_defence calls hmc_step T times with the given step size and number of leapfrog steps,
    chaining the states (z0 first, each call from the previous result, the last result returned),
    on the log target log N(z; 0, I) + log p(x_adv | z): evaluated at probe codes each time
    hmc_step is called, its differences between codes must match the grader's (constants in z
    may be dropped); tolerance 5e-3 nats (float32 sums over 784 pixels)."""
    s = threshold("part3.hmc_defence")
    models = ref3("models")
    vae = H.grader_vae(models)
    x, _ = H.images(ref1("data"), 8, start=100)
    g = torch.Generator().manual_seed(1)
    x_adv = (x + (torch.rand(x.shape, generator=g) * 2 - 1) * float(s["epsilon"])).clamp(0, 1)  # off the levels
    z0 = torch.randn(8, vae.z_dim, generator=g) * 0.5
    probes = [torch.randn(8, vae.z_dim, generator=g) for _ in range(3)]
    T, eps, n_leapfrog = 3, float(s["step_size"]), 4
    call = f"hmc_defence(decoder, x_adv, z0, T={T}, step_size={eps:g}, n_leapfrog={n_leapfrog}) on the grader's decoder"
    r = H.probe(part3, "hmc_defence_probe", H.asset(), x_adv, z0, T, eps, n_leapfrog, probes, call=call)
    calls = r["calls"]
    if len(calls) != T:
        fail(f"{call} called hmc_step {len(calls)} times; expected T = {T}")
    for k, c in enumerate(calls):
        if float(c["step_size"]) != eps or int(c["n_leapfrog"]) != n_leapfrog:
            fail(f"{call}: hmc_step call {k + 1} got step_size={c['step_size']!r}, n_leapfrog={c['n_leapfrog']!r}; "
                 "pass hmc_defence's own")
        start = z0 if k == 0 else calls[k - 1]["out"]
        if not isinstance(c["z"], Tensor) or c["z"].shape != start.shape or not torch.allclose(c["z"], start, atol=1e-6):
            fail(f"{call}: hmc_step call {k + 1} started from {H.preview(c['z'])}; expected "
                 + ("z0" if k == 0 else f"the result of call {k}") + f" {H.preview(start)}: chain the steps")
        if "error" in c:
            fail(f"{call}: your log_target raised {c['error']} when the grader's hmc_step evaluated it")
    out = r["out"]
    last = calls[-1]["out"]
    if not isinstance(out, Tensor) or not isinstance(last, Tensor) or out.shape != last.shape \
            or not torch.allclose(out, last, atol=1e-6):
        fail(f"{call} returned {H.describe(out)}; expected the last hmc_step's result, {H.describe(last)}")
    got = [v.double() for v in calls[0]["values"]]
    want = [H.log_target(vae.decoder, x_adv, p, models.to_levels) for p in probes]
    candidates = {
        "the prior log N(z; 0, I) left out": _prior_omitted(want, probes),
        "the log target's sign flipped (HMC then samples away from the posterior)": [-w for w in want],
        "the levels truncated with (x * 15).long() instead of to_levels(x_adv)": [
            H.log_target(vae.decoder, x_adv, p, lambda t: (t * 15).long()) for p in probes],
    }

    def fits(vals: list[Tensor]) -> bool:
        return all(float(((got[k] - got[0]) - (vals[k] - vals[0])).abs().max()) <= 5e-3 + 1e-5 * float(vals[k].abs().max())
                   for k in range(1, len(vals)))

    if not fits(want):
        mistake = next((text for text, vals in candidates.items() if fits(vals)), None)
        d = (got[1] - got[0])[0]
        w = (want[1] - want[0])[0]
        fail(f"{call}: your log target differs between two codes by {float(d):.6g} for image 0; log N(z; 0, I) + "
             f"log p(x_adv | z) differs by {float(w):.6g}", mistake)


@check("part3.hmc.hmc_defence.smoke.recovery")
@grades(DEFENCE)
@tags(DEFENCE)
def test_defence_recovery(part3, ref1, ref3, threshold, figures):
    """The defence's purpose, measured (Kuzina et al.'s claim): images attacked by the grader's
    latent attack (a budget that changes no 4-bit level, so p(x_adv | z) = p(x | z)), codes z0 ~
    q(z|x_adv), then the student's hmc_defence with the grader's hmc_step. The clean images'
    -log p(x | z) must recover a calibrated fraction of what the attack cost (grading.toml)."""
    s = threshold("part3.hmc_defence")
    models = ref3("models")
    vae = H.grader_vae(models)
    x, _ = H.images(ref1("data"), int(s["images"]))
    eps = float(s["epsilon"])
    x_adv, z0, z_clean = smoke.defence_setup(vae, x, s)
    T, step, n_leapfrog = int(s["T"]), float(s["step_size"]), int(s["n_leapfrog"])
    call = (f"hmc_defence(decoder, x_adv, z0, T={T}, step_size={step:g}, n_leapfrog={n_leapfrog}) on {len(x)} images "
            f"attacked with epsilon {eps:g}")
    r = H.probe(part3, "hmc_defence_probe", H.asset(), x_adv, z0, T, step, n_leapfrog, [], call=call, slow_ok=True)
    z_t = r["out"]
    if not isinstance(z_t, Tensor) or tuple(z_t.shape) != tuple(z0.shape) or not bool(torch.isfinite(z_t).all()):
        fail(f"{call} returned {H.describe(z_t)}; expected finite codes of z0's shape {list(z0.shape)}")
    before, after, clean, recovery = smoke.recovery(vae, models, x, z0, z_t, z_clean)
    figures.images("Your HMC defence on the grader's VAE", [
        ("clean", x[:8]), ("decoded from q(z|x_adv)", H.decoded(vae, z0[:8])),
        ("decoded after HMC", H.decoded(vae, z_t[:8].float()))],
        caption=f"-log p(x|z): {before:.1f} nats from the attacked posterior, {after:.1f} after your defence, "
                f"{clean:.1f} from the clean posterior")
    if recovery < float(s["min_recovery"]):
        fail(f"{call}: -log p(x_clean | z) was {before:.1f} nats per image at z0 ~ q(z|x_adv) and {after:.1f} after "
             f"the defence (clean posterior: {clean:.1f}); it recovered {recovery:.3g} of the attack's cost, expected "
             f"at least {float(s['min_recovery']):g}")
