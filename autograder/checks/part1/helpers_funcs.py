"""Shared pieces of the part-1 function checks: type checks, comparisons, messages.

Every comparison here is made in float64 against an expectation the grader computed
itself; a failure message names the call, the input, what was expected and what came
back, and (through :mod:`mistakes`) the known mistake the output matches.
"""
from __future__ import annotations

from typing import Any, Sequence

import torch
from torch import Tensor

from autograder.checks.part1 import mistakes
from autograder.registry import fail

EPS32 = float(torch.finfo(torch.float32).eps)  # 1.19e-7


def describe(value: Any) -> str:
    """Short description of a returned value for messages."""
    if isinstance(value, Tensor):
        return f"a {str(value.dtype).replace('torch.', '')} tensor of shape {list(value.shape)}"
    if isinstance(value, (list, tuple)):
        inner = ", ".join(describe(v) for v in value[:3])
        return f"a {type(value).__name__} of {len(value)} ({inner}{', ...' if len(value) > 3 else ''})"
    return f"{type(value).__name__} {value!r}"[:200]


def preview(t: Tensor, n: int = 4) -> str:
    """The first few values of a tensor, for messages."""
    flat = t.detach().reshape(-1)
    vals = ", ".join(f"{v:.6g}" for v in flat[:n].tolist())
    return f"[{vals}{', ...' if flat.numel() > n else ''}]"


def require_tensor(got: Any, call: str, shape: Sequence[int] | None = None, *, floating: bool = True,
                   finite: bool = True, function_id: str | None = None, args: tuple = ()) -> Tensor:
    """``got`` as a tensor of ``shape`` (float and finite unless told otherwise), or fail naming the mistake."""
    if not isinstance(got, Tensor):
        fail(f"{call} returned {describe(got)}; expected a tensor"
             + (f" of shape {list(shape)}" if shape is not None else ""))
    if shape is not None and tuple(got.shape) != tuple(shape):
        fail(f"{call} returned a tensor of shape {list(got.shape)}; expected shape {list(shape)}",
             mistakes.diagnose(function_id, got, *args) if function_id else None)
    if floating and not got.is_floating_point():
        fail(f"{call} returned a {str(got.dtype).replace('torch.', '')} tensor; expected a floating-point tensor")
    if finite and got.is_floating_point() and not bool(torch.isfinite(got).all()):
        bad = int((~torch.isfinite(got)).sum())
        fail(f"{call} returned {bad} non-finite value(s) (inf/nan) out of {got.numel()}: {preview(got)}",
             mistakes.diagnose(function_id, got, *args) if function_id else None)
    return got


def compare(got: Any, want: Tensor, tol: Tensor | float, call: str, function_id: str, args: tuple,
            expected_text: str = "") -> Tensor:
    """Fail unless ``got`` has ``want``'s shape and ``|got - want| <= tol`` elementwise.

    ``want`` is the float64 expectation; ``tol`` an absolute tolerance (scalar or
    elementwise), chosen by the caller from the float32 rounding of the computation.
    """
    got = require_tensor(got, call, want.shape, function_id=function_id, args=args)
    err = (got.double() - want).abs()
    tol_t = torch.as_tensor(tol, dtype=torch.float64).expand_as(want)
    bad = err > tol_t
    if bool(bad.any()):
        idx = tuple(int(i) for i in bad.nonzero()[0].tolist())
        where = f" at index {list(idx)}" if idx else ""
        fail(f"{call}: got {got[idx].item():.7g}{where}, expected {want[idx].item():.7g}{expected_text} "
             f"(difference {err[idx].item():.3g}, tolerance {tol_t[idx].item():.2g}; "
             f"{int(bad.sum())} of {want.numel()} values differ)",
             mistakes.diagnose(function_id, got, *args))
    return got
