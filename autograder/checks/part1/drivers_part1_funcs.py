"""Worker-side probes for the part-1 function checks (instructor harness code).

These run inside the untrusted worker, next to the student's modules (imported by
flat name), because they need autograd or objects that cannot cross the wire. They
contain no solution code: they call the student's functions and report what
happened (values, gradients, devices) as plain data. The grader judges.
"""
from __future__ import annotations

from typing import Any

import torch


def _utils() -> Any:
    import utils  # the student's part1/utils.py (imported lazily: a broken file fails only its checks)

    return utils


def reparam_gradients(mean: torch.Tensor, std: torch.Tensor) -> dict[str, Any]:
    """Draw z = sample_reparameterize(mean, std) with both inputs requiring grad; backprop sum(z)."""
    mean = mean.detach().clone().requires_grad_(True)
    std = std.detach().clone().requires_grad_(True)
    z = _utils().sample_reparameterize(mean, std)
    report: dict[str, Any] = {"z": z if isinstance(z, torch.Tensor) else None, "type": type(z).__name__,
                              "requires_grad": bool(getattr(z, "requires_grad", False)),
                              "grad_mean": None, "grad_std": None}
    if isinstance(z, torch.Tensor) and z.requires_grad:
        z.backward(torch.ones_like(z))  # d(sum z)/d input = elementwise derivative for an elementwise map
        report["grad_mean"] = mean.grad
        report["grad_std"] = std.grad
    return report


def reparam_twice(mean: torch.Tensor, std: torch.Tensor) -> list[Any]:
    """Two consecutive draws with the same inputs (the generator is seeded once, before the first)."""
    utils = _utils()
    return [utils.sample_reparameterize(mean, std), utils.sample_reparameterize(mean, std)]


def reparam_devices(mean: torch.Tensor, std: torch.Tensor) -> dict[str, str]:
    """The device of z for inputs on each available device ('cpu', and 'cuda' when present)."""
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    out = {}
    for device in devices:
        z = _utils().sample_reparameterize(mean.to(device), std.to(device))
        out[device] = str(getattr(z, "device", type(z).__name__))
    return out


def elbo_to_bpd(elbo: torch.Tensor, img_shape: list[int]) -> Any:
    """Call the student's elbo_to_bpd with a torch.Size, as the trainers do (imgs.shape)."""
    return _utils().elbo_to_bpd(elbo, torch.Size(img_shape))


def module_gradients(module: torch.nn.Module, inputs: list[torch.Tensor], seed: int = 0) -> dict[str, Any]:
    """Backpropagate a random linear function of ``module(*inputs)``; report which parameters got gradient.

    Random weights (not a plain sum) so that no output normalisation can make the
    gradient vanish by accident; float inputs are made to require grad so the report
    also says whether the gradient reaches them.
    """
    module.zero_grad(set_to_none=True)
    ins = [x.detach().clone().requires_grad_(True) if x.is_floating_point() else x for x in inputs]
    out = module(*ins)
    outs = list(out) if isinstance(out, (tuple, list)) else [out]
    gen = torch.Generator().manual_seed(seed)
    loss = None
    for o in outs:
        if isinstance(o, torch.Tensor) and o.is_floating_point() and o.requires_grad:
            w = torch.randn(o.shape, generator=gen, dtype=o.dtype).to(o.device)
            term = (o * w).sum()
            loss = term if loss is None else loss + term
    if loss is not None:
        loss.backward()
    params = list(module.named_parameters())
    return {
        "parameters": [n for n, _ in params],
        "trainable": [n for n, p in params if p.requires_grad],
        "no_grad": [n for n, p in params if p.requires_grad and p.grad is None],
        "zero_grad": [n for n, p in params if p.grad is not None and not bool(p.grad.ne(0).any())],
        "input_grad": [x.grad is not None and bool(x.grad.ne(0).any()) for x in ins if x.is_floating_point()],
        "output_requires_grad": loss is not None,
    }


def decoder_fit(decoder: torch.nn.Module, z: torch.Tensor, target: torch.Tensor, steps: int, lr: float) -> dict[str, Any]:
    """Fit the decoder alone (Adam) so that every latent in ``z`` decodes to the 4-bit ``target``
    ``[28, 28]``; returns the mean per-pixel cross-entropy of each step and the logits' range at the end.

    A decoder whose outputs are squashed (tanh, sigmoid, a softmax) can never make one level
    much more likely than the others, so its cross-entropy stays high whatever it learns.
    """
    opt = torch.optim.Adam(decoder.parameters(), lr=lr)
    decoder.train()
    labels = target.long().unsqueeze(0).expand(z.shape[0], -1, -1)
    losses: list[float] = []
    logits = None
    for _ in range(steps):
        logits = decoder(z)
        loss = torch.nn.functional.cross_entropy(logits.float(), labels)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
        if not losses[-1] == losses[-1]:  # NaN: stop, the grader reports it
            break
    span = float((logits.max() - logits.min()).detach()) if isinstance(logits, torch.Tensor) else float("nan")
    return {"losses": losses, "logit_span": span}
