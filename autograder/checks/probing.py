"""Calling a part's worker driver and reading its results, as the checks of parts 3 and 4 do."""
from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from autograder.checks.part1.helpers_funcs import describe, preview
from autograder.registry import fail


def probe(session: Any, driver: str, *args: Any, call: str, slow_ok: bool = False) -> dict[str, Any]:
    """Run a worker driver (``drivers_part3.skl_probe``); a student exception it caught becomes
    the check's failure, named by ``call``."""
    r = session.driver(driver, *args, slow_ok=slow_ok)
    if not isinstance(r, dict):
        fail(f"{call}: the grader's probe came back as {describe(r)} (the worker's state was changed by your code?)")
    if "error" in r:
        fail(f"{call} raised {r['error']}")
    return r


def one_element(got: Any, call: str) -> float:
    """A result documented as a one-element tensor (shape (1,) or ()) as a float."""
    if not isinstance(got, Tensor):
        fail(f"{call} returned {describe(got)}; expected a tensor with one element")
    if got.numel() != 1:
        fail(f"{call} returned a tensor of shape {list(got.shape)}; expected one element (shape [1] or []): "
             "average over the batch")
    if not got.is_floating_point() or not bool(torch.isfinite(got).all()):
        fail(f"{call} returned {preview(got)}; expected a finite floating-point value")
    return float(got.reshape(-1)[0])
