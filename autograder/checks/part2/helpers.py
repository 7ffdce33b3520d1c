"""Trusted-side support for the part-2 checks: the grader's model, data, metrics and messages.

Runs in the grading process only. The grader's classifier is the instructor's
``SmallNet`` (``solutions/part2/models.py``, loaded through ``ref2("models")``) with the
weights in ``assets/smallnet_fashionmnist.pt`` (trained by ``tools/train_grader_model.py``;
loaded with ``weights_only=True``: a dict of tensors, no pickled code). The same weights
are sent to the worker, which builds the same class from the staged ``models.py``.
"""
from __future__ import annotations

import math

from functools import lru_cache
from pathlib import Path
from types import ModuleType
from typing import Any, Sequence

import torch
import torch.nn as nn
from torch import Tensor

from autograder.checks import reference
from autograder.checks.part2 import drivers_part2
from autograder.registry import fail

ASSET = Path(__file__).resolve().parent / "assets" / "smallnet_fashionmnist.pt"
DATASET = "fashionmnist"
DRIVERS = "drivers_part2"


# ----------------------------------------------------------------------------- model and data
@lru_cache(maxsize=1)
def _asset() -> dict[str, Tensor]:
    state = torch.load(ASSET, map_location="cpu", weights_only=True)
    return {k: v.float().contiguous() for k, v in state.items()}


def grader_state() -> dict[str, Tensor]:
    """The pretrained weights (fresh copies: callers may send or modify them)."""
    return {k: v.clone() for k, v in _asset().items()}


def space() -> drivers_part2.InputSpace:
    """The edition's input space (``[conventions.part2]``; set by the part's setup driver)."""
    return drivers_part2.space()


def grader_model(models: ModuleType, state: dict[str, Tensor] | None = None) -> nn.Module:
    """The instructor's SmallNet with ``state`` (default: the pretrained asset), eval mode,
    reading the input space's images."""
    model = models.SmallNet()
    model.load_state_dict(grader_state() if state is None else state)
    return space().adapt(model).eval()


def images_text(split: str = "test") -> str:
    """How messages name the grader's images ("FashionMNIST test images", and how they were shaped)."""
    s = space()
    if s.channels == 1 and s.size == 28 and not s.normalised:
        return f"FashionMNIST {split} images"
    how = "normalised with the template's mean and std" if s.normalised else "in [0, 1]"
    return f"FashionMNIST {split} images as {s.channels}x{s.size}x{s.size} inputs {how} (a CIFAR-10 stand-in)"


def inputs(pixels_u8: Tensor) -> Tensor:
    """uint8 pixels ``[N, 1, 28, 28]`` -> the input space's float images."""
    return space().from_pixels(pixels_u8.float().div(255.0))


@lru_cache(maxsize=2)
def _test_uint8(data: ModuleType) -> tuple[Tensor, Tensor]:
    images, labels = data.load_split_uint8(DATASET, "test")
    reference.drop_caches(data)
    return torch.from_numpy(images), torch.from_numpy(labels)


def test_images(data: ModuleType, start: int, count: int) -> tuple[Tensor, Tensor]:
    """FashionMNIST test images ``start .. start + count - 1`` as the input space's images
    (default: float [count, 1, 28, 28] in [0, 1]), long labels.

    The split is kept as uint8 (8 MB) and only the requested images are made float: the
    whole split as float would be 31 MB more in this process for its whole life.
    """
    images, labels = _test_uint8(data)
    return inputs(images[start:start + count]), labels[start:start + count].clone()


@lru_cache(maxsize=4)
def split_head(data: ModuleType, split: str, n: int) -> tuple[Tensor, Tensor]:
    """The first ``n`` images of a split as uint8 [n, 1, 28, 28] and long labels (the light form sent to the worker).

    Only the head is kept, and the data module's cache of the whole official split is
    dropped: the container has 768 MB, and a full split costs ~90 MB in this process.
    """
    images, labels = data.load_split_uint8(DATASET, split, limit=n)
    reference.drop_caches(data)
    return torch.from_numpy(images), torch.from_numpy(labels)


# ----------------------------------------------------------------------------- correct attacks
def fgsm(x: Tensor, g: Tensor, eps: float) -> Tensor:
    """FGSM as the handout states it, kept in the valid range of the input space."""
    return space().clamp(x.detach() + eps * g.sign()).detach()


def pgd(model: nn.Module, x: Tensor, y: Tensor, eps: float, alpha: float, num_iter: int) -> Tensor:
    """PGD without random start, each iterate projected and kept in the valid range of the input space."""
    from autograder.checks.part2 import mistakes

    return mistakes.pgd_variant(model, x, y, eps, alpha, num_iter, clamp="valid")


# ----------------------------------------------------------------------------- metrics
def input_gradient(model: nn.Module, x: Tensor, y: Tensor) -> Tensor:
    """d CE(model(x), y) / dx with the batch-mean cross-entropy."""
    x = x.detach().clone().requires_grad_(True)
    (g,) = torch.autograd.grad(nn.functional.cross_entropy(model(x), y), x)
    return g


def predictions(model: nn.Module, x: Tensor, batch: int = 1000) -> Tensor:
    with torch.no_grad():
        return torch.cat([model(x[i:i + batch]).argmax(1) for i in range(0, len(x), batch)]) if len(x) else \
            torch.zeros(0, dtype=torch.long)


def accuracy(model: nn.Module, x: Tensor, y: Tensor) -> float:
    return float((predictions(model, x) == y).float().mean()) if len(y) else 0.0


def mean_loss(model: nn.Module, x: Tensor, y: Tensor) -> float:
    with torch.no_grad():
        return float(nn.functional.cross_entropy(model(x), y))


def parameter_gradients(model: nn.Module, loss: Tensor) -> dict[str, Tensor]:
    """d loss / d parameter, by parameter name (zeros where the loss does not depend on one)."""
    params = dict(model.named_parameters())
    grads = torch.autograd.grad(loss, list(params.values()), allow_unused=True)
    return {n: (g if g is not None else torch.zeros_like(p)) for (n, p), g in zip(params.items(), grads)}


def flat(grads: dict[str, Tensor | None], names: Sequence[str], like: dict[str, Tensor]) -> Tensor:
    """Concatenate gradients in ``names`` order (None counts as zeros) as one float64 vector."""
    return torch.cat([(grads.get(n) if grads.get(n) is not None else torch.zeros_like(like[n])).double().reshape(-1)
                      for n in names])


def proportional(got: Tensor, want: Tensor, rtol: float) -> tuple[bool, float, float]:
    """Whether ``got = c * want`` for some c > 0 within ``rtol`` of ``|got|``; returns (ok, c, relative error)."""
    denom = float(want.dot(want))
    if denom == 0.0:
        ok = float(got.norm()) == 0.0
        return ok, 1.0, 0.0 if ok else float("inf")
    c = float(got.dot(want)) / denom
    err = float((got - c * want).norm()) / max(float(got.norm()), 1e-30)
    return (c > 0 and err <= rtol), c, err


def fraction_close(a: Tensor, b: Tensor, atol: float) -> float:
    """Fraction of elements where ``|a - b| <= atol`` (shapes must match)."""
    return float(((a.double() - b.double()).abs() <= atol).double().mean()) if a.numel() else 1.0


# ----------------------------------------------------------------------------- messages
def describe(value: Any) -> str:
    """Short description of a returned value for messages."""
    if isinstance(value, Tensor):
        return f"a {str(value.dtype).replace('torch.', '')} tensor of shape {list(value.shape)}"
    if type(value).__name__ == "ndarray":
        return f"a {value.dtype} array of shape {list(value.shape)}"
    if isinstance(value, (list, tuple)):
        inner = ", ".join(describe(v) for v in value[:4])
        return f"a {type(value).__name__} of {len(value)} ({inner}{', ...' if len(value) > 4 else ''})"
    return f"{type(value).__name__} {value!r}"[:200]


def preview(t: Tensor, n: int = 4) -> str:
    flat_ = t.detach().reshape(-1)
    vals = ", ".join(f"{v:.5g}" for v in flat_[:n].tolist())
    return f"[{vals}{', ...' if flat_.numel() > n else ''}]"


def require_tensor(got: Any, call: str, shape: Sequence[int] | None = None) -> Tensor:
    """``got`` as a finite floating tensor of ``shape``, or fail saying what came back."""
    if not isinstance(got, Tensor):
        fail(f"{call} returned {describe(got)}; expected a tensor" + (f" of shape {list(shape)}" if shape else ""))
    if shape is not None and tuple(got.shape) != tuple(shape):
        fail(f"{call} returned a tensor of shape {list(got.shape)}; expected shape {list(shape)} (the input's)")
    if not got.is_floating_point():
        fail(f"{call} returned a {str(got.dtype).replace('torch.', '')} tensor; expected float images")
    if not bool(torch.isfinite(got).all()):
        fail(f"{call} returned {int((~torch.isfinite(got)).sum())} non-finite value(s) (inf/nan)")
    return got


def as_float(value: Any, call: str) -> float:
    """A returned number (Python number or one-element tensor) as a finite float, or fail
    (a NaN would pass every ``abs(got - want) > tol`` comparison)."""
    got: float | None = None
    if isinstance(value, Tensor) and value.numel() == 1:
        got = float(value.reshape(()).item())
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        got = float(value)
    if got is None:
        fail(f"{call} returned {describe(value)}; expected a number")
        raise AssertionError  # unreachable: fail raises
    if not math.isfinite(got):
        fail(f"{call} returned {got}; expected a finite number")
    return got


CHUNK = 100  # images per float64 computation: 1,000 CIFAR-shaped images in float64 are 25 MB a tensor


def ball_excess(out: Tensor, x: Tensor, eps: float) -> Tensor:
    """Per element, how far ``out`` lies outside what an attack of budget ``eps`` on ``x`` may give:
    ``[f(x - eps), f(x + eps)]`` for a valid-range form ``f`` (0 inside). With the template's
    "clamp to [0, 1] in normalised units" a pixel may leave the ball towards [0, 1]. Computed in
    float64 a chunk of images at a time (the grading process shares 768 MB), kept as float32."""
    s = space()
    result = torch.empty(out.shape, dtype=torch.float32)
    for i in range(0, max(len(out), 1), CHUNK):
        o, xd = out[i:i + CHUNK].double(), x[i:i + CHUNK].double()
        excess = None
        for form in s.valid_range:
            lo, hi = s.clamp(xd - eps, form), s.clamp(xd + eps, form)
            e = (lo - o).clamp_min(0) + (o - hi).clamp_min(0)
            excess = e if excess is None else torch.minimum(excess, e)
        result[i:i + CHUNK] = excess if excess is not None else 0.0
    return result


def linf(a: Tensor, b: Tensor) -> float:
    """max |a - b| in float64, a chunk of images at a time."""
    if not a.numel():
        return 0.0
    return max(float((a[i:i + CHUNK].double() - b[i:i + CHUNK].double()).abs().max()) for i in range(0, len(a), CHUNK))


# ----------------------------------------------------------------------------- pictures for report.html
CLASSES = ("T-shirt", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Boot")


def attack_figure(figures: Any, title: str, model: nn.Module, x: Tensor, adv: Tensor, y: Tensor, eps: float,
                  n: int = 8) -> None:
    """The first ``n`` images, the student's adversarial versions, their difference amplified to
    the full grey range (mid-grey: unchanged), and the model's predictions on each."""
    s = space()
    with torch.no_grad():
        before, after = model(x[:n]).argmax(1).tolist(), model(adv[:n]).argmax(1).tolist()
    clean, attacked = s.to_pixels(x[:n]), s.to_pixels(adv[:n])
    scale = max(float((attacked - clean).abs().max()), 1e-12)
    figures.images(title, [("original", clean), ("adversarial", attacked),
                           ("difference (amplified)", 0.5 + 0.5 * (attacked - clean) / scale)],
                   f"epsilon {eps:.3g}; predictions (true -> clean / adversarial) below",
                   [[f"{CLASSES[int(t)]}: {CLASSES[b]} / {CLASSES[a]}" for t, b, a in zip(y[:n].tolist(), before, after)]])
