"""Worker-side helpers of the part 3 checks (run next to the student's code).

The grader sends plain tensors (images, codes, the grader VAE's weights) and gets plain tensors
back; every expectation is computed in the grading process from what comes back (the returned
tensors, the points a log target was evaluated at), never here: this module shares its process
with student code.
"""
from __future__ import annotations

from typing import Any

import torch

from drivers_common import error_text, plain, resolve


def _vae(asset: dict[str, Any]) -> torch.nn.Module:
    import models

    model = models.VAE(int(asset["z_dim"]), int(asset["hidden"]))
    model.load_state_dict(asset["state"])
    return model.eval()


# ----------------------------------------------------------------------------- 3.1
def skl_probe(m1: torch.Tensor, l1: torch.Tensor, m2: torch.Tensor, l2: torch.Tensor) -> dict[str, Any]:
    """``symmetric_kl`` on leaves that require grad: its value and the four gradients of its sum."""
    leaves = [t.clone().requires_grad_(True) for t in (m1, l1, m2, l2)]
    return _with_gradients(lambda: resolve("latent_attacks.symmetric_kl")(*leaves), leaves)


def _with_gradients(run: Any, leaves: list[torch.Tensor], scalar: bool = False) -> dict[str, Any]:
    """Call ``run()``; its value and the gradients of its sum on ``leaves`` (None where the value
    carries no gradient; ``scalar``: only for a one-element value)."""
    try:
        out = run()
    except Exception as exc:
        return {"error": error_text(exc)}
    result: dict[str, Any] = {"out": plain(out), "grads": None}
    if isinstance(out, torch.Tensor) and out.is_floating_point() and out.requires_grad and (out.numel() == 1 or not scalar):
        try:
            out.sum().backward()
            result["grads"] = [plain(t.grad) for t in leaves]
        except Exception as exc:
            result["backward_error"] = error_text(exc)
    return result


# ----------------------------------------------------------------------------- 3.2, 3.3
def attack_probe(function: str, asset: dict[str, Any], x: torch.Tensor, x_target: torch.Tensor | None,
                 epsilon: float, alpha: float, num_iter: int) -> dict[str, Any]:
    """``latent_attacks.<function>`` on the grader's VAE's encoder: the adversarial images, and
    whether the inputs were changed in place."""
    vae = _vae(asset)
    x_in = x.clone()
    args = (vae.encoder, x_in) + ((x_target.clone(),) if x_target is not None else ()) + (epsilon, alpha, num_iter)
    try:
        out = resolve(f"latent_attacks.{function}")(*args)
    except Exception as exc:
        return {"error": error_text(exc)}
    return {"out": plain(out), "requires_grad": bool(getattr(out, "requires_grad", False)),
            "input_changed": not torch.equal(x_in, x)}


# ----------------------------------------------------------------------------- 3.4
def _gaussian(mean: torch.Tensor, std: torch.Tensor, seen: list[torch.Tensor] | None):
    def log_target(z: torch.Tensor) -> torch.Tensor:
        if seen is not None:
            seen.append(z.detach().clone())
        return -0.5 * (((z - mean) / std) ** 2).sum(dim=1)
    return log_target


def hmc_step_probe(z: torch.Tensor, mean: torch.Tensor, std: torch.Tensor, step_size: float,
                   n_leapfrog: int, again: bool = False) -> dict[str, Any]:
    """One student ``hmc_step`` on a diagonal Gaussian target; every point its log target was
    evaluated at, in order (``again``: then a second call from the same z, its points as ``seen_again``)."""
    seen: list[torch.Tensor] = []
    z_in = z.clone()
    try:
        out = resolve("hmc.hmc_step")(z_in, _gaussian(mean, std, seen), step_size, n_leapfrog)
        result = {"out": plain(out), "seen": seen, "requires_grad": bool(getattr(out, "requires_grad", False)),
                  "input_changed": not torch.equal(z_in, z)}
        if again:
            result["seen_again"] = []
            resolve("hmc.hmc_step")(z.clone(), _gaussian(mean, std, result["seen_again"]), step_size, n_leapfrog)
    except Exception as exc:
        return {"error": error_text(exc)}
    return result


def hmc_chain(z: torch.Tensor, mean: torch.Tensor, std: torch.Tensor, step_size: float, n_leapfrog: int,
              steps: int) -> dict[str, Any]:
    """``steps`` student ``hmc_step`` transitions on a diagonal Gaussian target; the final states."""
    step = resolve("hmc.hmc_step")
    log_target = _gaussian(mean, std, None)
    try:
        for _ in range(steps):
            z = step(z, log_target, step_size, n_leapfrog)
            if not isinstance(z, torch.Tensor):
                return {"out": z}
            z = z.detach()
    except Exception as exc:
        return {"error": error_text(exc)}
    return {"out": plain(z)}


# ----------------------------------------------------------------------------- 3.5
def hmc_defence_probe(asset: dict[str, Any], x_adv: torch.Tensor, z0: torch.Tensor, T: int, step_size: float,
                      n_leapfrog: int, probes: list[torch.Tensor]) -> dict[str, Any]:
    """``hmc.hmc_defence`` on the grader's decoder, with ``hmc.hmc_step`` (the grader's stand-in, or
    in the student edition the student's own) wrapped to record each call: its arguments, its
    result and the log target's values at ``probes``."""
    import hmc

    inner = hmc.hmc_step
    calls: list[dict[str, Any]] = []

    def recording(z: Any, log_target: Any, step_size: Any, n_leapfrog: Any) -> Any:
        entry: dict[str, Any] = {"z": plain(z), "step_size": step_size, "n_leapfrog": n_leapfrog}
        calls.append(entry)
        if probes:
            try:
                with torch.no_grad():
                    entry["values"] = [plain(log_target(p.clone())) for p in probes]
            except Exception as exc:
                entry["error"] = error_text(exc)
        out = inner(z, log_target, step_size, n_leapfrog)
        entry["out"] = plain(out)
        return out

    hmc.hmc_step = recording
    try:
        out = resolve("hmc.hmc_defence")(_vae(asset).decoder, x_adv.clone(), z0.clone(), T, step_size, n_leapfrog)
    except Exception as exc:
        return {"error": error_text(exc), "calls": calls}
    finally:
        hmc.hmc_step = inner
    return {"out": plain(out), "calls": calls}


# ----------------------------------------------------------------------------- 3.6
def beta_loss_probe(x: torch.Tensor, logits: torch.Tensor, mean: torch.Tensor, log_std: torch.Tensor,
                    beta: float) -> dict[str, Any]:
    """``beta_vae_loss`` on leaves that require grad: its value and the gradients on logits,
    mean and log_std."""
    leaves = [t.clone().requires_grad_(True) for t in (logits, mean, log_std)]
    return _with_gradients(lambda: resolve("beta_vae.beta_vae_loss")(x.clone(), *leaves, beta), leaves, scalar=True)


def beta_smoke(images: torch.Tensor, z_dim: int, hidden: int, steps: int, batch: int, lr: float,
               betas: list[float], seed: int, initial: dict[str, torch.Tensor]) -> dict[str, Any]:
    """Train the handout's VAE from the grader's initial weights with the student's
    ``beta_vae_loss`` for each beta (Adam, reparameterised samples); the weights after training."""
    import models

    loss_fn = resolve("beta_vae.beta_vae_loss")
    trained = {}
    for beta in betas:
        torch.manual_seed(seed)
        g = torch.Generator().manual_seed(seed)
        model = models.VAE(z_dim, hidden)
        model.load_state_dict(initial)
        opt = torch.optim.Adam(model.parameters(), lr=lr)
        for _ in range(steps):
            x = images[torch.randint(0, len(images), (batch,), generator=g)]
            mean, log_std = model.encoder(x)
            z = mean + torch.exp(log_std) * torch.randn(mean.shape, generator=g)
            loss = loss_fn(x, model.decoder(z), mean, log_std, beta)
            opt.zero_grad()
            loss.reshape(-1)[0].backward()
            opt.step()
        trained[str(beta)] = {k: plain(v) for k, v in model.state_dict().items()}
    return trained
