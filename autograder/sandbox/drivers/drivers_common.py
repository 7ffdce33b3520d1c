"""Worker-side helpers shared by all parts (runs in the worker, next to student code).

Call them from the grader as ``worker.call("@drivers_common.state", handle)``. A handle
argument arrives here as the object itself. Whatever these functions return goes back
as plain data (or as a new handle); it is as untrusted as anything else from the worker,
because student code in the same process can patch this module. Per-part drivers
(``drivers_part1.py``, ...) sit in the same folder and may ``import drivers_common``.
"""
from __future__ import annotations

import importlib
from typing import Any


def resolve(target: str) -> Any:
    """``"utils.KLD"`` -> the function (imports the student module)."""
    module, _, rest = target.partition(".")
    obj: Any = importlib.import_module(module)
    for name in filter(None, rest.split(".")):
        obj = getattr(obj, name)
    return obj


def apply(obj: Any, *args: Any, **kwargs: Any) -> Any:
    """``obj(*args, **kwargs)``: calls a module (its ``forward`` with hooks) or any callable."""
    return obj(*args, **kwargs)


def attr(obj: Any, path: str) -> Any:
    """A dotted attribute path: ``attr(vae, "encoder.net.0.weight")``."""
    for name in path.split("."):
        obj = getattr(obj, name)
    return obj


def state(module: Any) -> dict[str, Any]:
    """A module's ``state_dict`` as plain CPU tensors."""
    return {k: v.detach().cpu().clone() for k, v in module.state_dict().items()}


def load_state(module: Any, tensors: dict[str, Any], strict: bool = True) -> list[list[str]]:
    """``module.load_state_dict``; returns [missing keys, unexpected keys]."""
    result = module.load_state_dict(tensors, strict=strict)
    return [list(result.missing_keys), list(result.unexpected_keys)]


def num_parameters(module: Any) -> int:
    return sum(p.numel() for p in module.parameters())


def call_with_grads(target: str, *inputs: Any, **kwargs: Any) -> dict[str, Any]:
    """Call ``target(*inputs)`` with gradients on the floating inputs; back-propagate ``sum(output)``.

    Returns ``{"output": ..., "grads": [grad of each input or None]}``: how a check sees
    whether gradients reach the inputs (e.g. through ``sample_reparameterize``).
    """
    import torch

    xs = [x.detach().clone().requires_grad_(True) if isinstance(x, torch.Tensor) and x.is_floating_point() else x
          for x in inputs]
    out = resolve(target)(*xs, **kwargs)
    total = out.sum() if isinstance(out, torch.Tensor) else sum(o.sum() for o in out)
    total.backward()
    grads = [x.grad if isinstance(x, torch.Tensor) and x.requires_grad else None for x in xs]
    return {"output": out, "grads": grads}
