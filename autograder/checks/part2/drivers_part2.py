"""Worker-side probes for the part-2 checks (instructor harness code, no solution code).

These functions run inside the untrusted worker next to the student's
``adversarial_attack.py`` and ``utils.py`` (imported lazily by flat name, so a broken
file fails only the checks that use it). They build the instructor's model, call the
student's functions, watch what happens (copies of the inputs, recorded calls,
gradients handed to the optimizer) and report plain data; the grader judges.

To grade one function without depending on the student's other functions, some probes
temporarily replace a function the graded one calls by a *stand-in* defined here:

* :func:`pattern_perturb` - a fixed, deterministic perturbation of the pixels (a cosine
  pattern of the pixel values and positions). It stands in for the attacks inside
  ``test_attack`` and for ``pgd_attack`` / ``fgsm_loss`` inside ``train``, so that a
  wrong attack does not cost the points of the evaluation or training loop.
* :func:`rms_gradient_step` - ``x + epsilon * g / rms(g)`` per example (a step along the
  raw gradient, the L2-flavoured "fast gradient method"). It stands in for
  ``fgsm_attack`` inside ``fgsm_loss``, so ``fgsm_loss`` is graded on its own.

Both are deliberately *not* the assignment's attacks; the grader (trusted process)
imports this module to compute the same stand-in outputs for its expectations.
"""
from __future__ import annotations

import contextlib
import sys
from typing import Any, Iterator

import torch
import torch.nn as nn

ALPHA, EPSILON, NUM_ITER = "alpha", "epsilon", "num_iter"  # the keys of globals.py (instructor-owned)
FGSM, PGD, STANDARD = "fgsm", "pgd", "standard"
CLAMPS = ("none", "valid", "unit")


# ----------------------------------------------------------------------------- the input space
class InputSpace:
    """How the edition's images reach the graded functions (``[conventions.part2]`` in grading.toml).

    The grader's data are FashionMNIST pixels ``[B, 1, 28, 28]`` in [0, 1]. An edition may hand
    the student's functions other images: ``channels`` x ``size`` x ``size`` (zero-padded around
    the centre, the grey channel repeated) and normalised per channel, ``(pixel - mean) / std``
    (the UvA template's CIFAR-10 convention); empty ``mean``/``std`` keep raw pixels (this
    project's handout: the models normalise inside). The grader's SmallNet reads such inputs
    through :meth:`adapt` (denormalise, centre crop, mean over channels), so a student's code
    written for CIFAR-10 runs unchanged and its gradients are meaningful.

    ``valid_range`` lists the accepted ways to keep an attack's images valid: ``"none"`` (no
    clamp), ``"valid"`` (clamp to the valid pixel range, in the input's units), ``"unit"``
    (clamp the values themselves to [0, 1], as template students often write in normalised
    space). Both processes build the same space from the same plain dict (:func:`configure`).
    """

    def __init__(self, spec: dict[str, Any] | None = None) -> None:
        spec = dict(spec or {})
        self.channels = int(spec.get("channels", 1))
        self.size = int(spec.get("size", 28))
        self.mean = [float(v) for v in spec.get("mean", [])]
        self.std = [float(v) for v in spec.get("std", [])]
        self.valid_range = tuple(spec.get("valid_range", ("none", "valid")))
        if self.size < 28 or (self.size - 28) % 2:
            raise ValueError(f"input size {self.size}: expected 28 or more, 28 + an even number")
        if self.normalised and not (len(self.mean) == len(self.std) == self.channels and min(self.std) > 0):
            raise ValueError(f"input mean {self.mean} / std {self.std}: expected {self.channels} values each, std > 0")
        unknown = set(self.valid_range) - set(CLAMPS)
        if unknown or not self.valid_range:
            raise ValueError(f"valid_range {list(self.valid_range)}: expected some of {list(CLAMPS)}")

    @property
    def normalised(self) -> bool:
        return bool(self.mean)

    def spec(self) -> dict[str, Any]:
        return {"channels": self.channels, "size": self.size, "mean": list(self.mean), "std": list(self.std),
                "valid_range": list(self.valid_range)}

    def _stats(self, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(mean, std) shaped to broadcast over ``like`` ``[B, C, ...]``."""
        shape = (1, -1, *([1] * (like.dim() - 2)))
        return (torch.tensor(self.mean, dtype=like.dtype, device=like.device).view(shape),
                torch.tensor(self.std, dtype=like.dtype, device=like.device).view(shape))

    def from_pixels(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, 1, 28, 28]`` pixels in [0, 1] -> the graded functions' images ``[B, C, S, S]``."""
        if self.size > 28:
            p = (self.size - 28) // 2
            x = nn.functional.pad(x, (p, p, p, p))
        if self.channels != x.shape[1]:
            x = x.expand(-1, self.channels, -1, -1)
        return self.normalise(x.contiguous())

    def normalise(self, x: torch.Tensor) -> torch.Tensor:
        """Pixel values (any shape ``[B, C, ...]``) -> the input's units."""
        if not self.normalised:
            return x
        mean, std = self._stats(x)
        return (x - mean) / std

    def denormalise(self, x: torch.Tensor) -> torch.Tensor:
        """The input's units -> pixel values (the template's ``denormalize``)."""
        if not self.normalised:
            return x
        mean, std = self._stats(x)
        return x * std + mean

    def to_pixels(self, x: torch.Tensor) -> torch.Tensor:
        """The graded functions' images -> ``[B, 1, 28, 28]`` pixels: what the grader's SmallNet reads."""
        x = self.denormalise(x)
        if self.size > 28:
            p = (self.size - 28) // 2
            x = x[..., p:p + 28, p:p + 28]
        return x.mean(1, keepdim=True) if x.shape[1] != 1 else x

    def bounds(self, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The valid pixel range [0, 1] in the input's units, broadcastable to ``like``."""
        lo, hi = torch.zeros((), dtype=like.dtype), torch.ones((), dtype=like.dtype)
        if not self.normalised or like.dim() < 2 or like.shape[1] != self.channels:
            return lo, hi
        mean, std = self._stats(like)
        return (0 - mean) / std, (1 - mean) / std

    def clamp(self, x: torch.Tensor, form: str = "valid") -> torch.Tensor:
        """``x`` kept valid the ``form`` way (one of :data:`CLAMPS`)."""
        if form == "none":
            return x
        if form == "unit" or not self.normalised:
            return x.clamp(0.0, 1.0)
        lo, hi = self.bounds(x)
        return torch.maximum(torch.minimum(x, hi.to(x.dtype)), lo.to(x.dtype))

    def forms(self, t: torch.Tensor) -> list[torch.Tensor]:
        """``t`` unclamped, then kept valid in each other accepted way (``valid_range``)."""
        return [t] + [self.clamp(t, form) for form in self.valid_range if form != "none"]

    def epsilon(self, pixels: float) -> float:
        """An attack budget of ``pixels`` (pixel units) in the input's units (divided by the mean std)."""
        if not self.normalised:
            return float(pixels)
        return float(f"{pixels * len(self.std) / sum(self.std):.3g}")

    def adapt(self, model: nn.Module) -> nn.Module:
        """``model`` (reading ``[B, 1, 28, 28]`` pixels) made to read this space's images.

        The class is swapped for a subclass whose ``forward`` maps the input first, so the
        parameters keep their names (a state dict moves between both forms unchanged).
        """
        if self.channels == 1 and self.size == 28 and not self.normalised:
            return model
        base = type(model)
        space = self

        def forward(self: nn.Module, x: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
            return base.forward(self, space.to_pixels(x), *args, **kwargs)

        model.__class__ = type(base.__name__, (base,), {"forward": forward, "__module__": base.__module__})
        return model


_SPACE = InputSpace()


def configure(conventions: dict[str, Any] | None) -> None:
    """Set this process's input space from the part's conventions (both processes call it)."""
    global _SPACE
    conventions = conventions or {}
    _SPACE = InputSpace({"channels": conventions.get("input_channels", 1), "size": conventions.get("input_size", 28),
                         "mean": conventions.get("input_mean", []), "std": conventions.get("input_std", []),
                         "valid_range": conventions.get("valid_range", ["none", "valid"])})


def space() -> InputSpace:
    return _SPACE


# ----------------------------------------------------------------------------- stand-ins
def pattern_perturb(x: torch.Tensor, epsilon: float) -> torch.Tensor:
    """``x + epsilon * cos(7 x + 0.4 h + 0.4 w)`` clamped to the valid range: fixed, elementwise in
    value and position.

    Independent of the batch it is applied to (each image gets the same perturbation
    wherever it sits in a batch), detached, same shape and dtype as ``x``. The cosine reads
    the pixel values (denormalised in a normalised space), so the pattern, and how strongly it
    moves the grader's model, are the same in every input space.
    """
    x = x.detach()
    h = torch.arange(x.shape[-2], dtype=torch.float32, device=x.device).view(-1, 1)
    w = torch.arange(x.shape[-1], dtype=torch.float32, device=x.device).view(1, -1)
    phase = (0.4 * h + 0.4 * w).to(x.dtype)
    pixels = _SPACE.denormalise(x) if _SPACE.normalised and x.dim() >= 2 and x.shape[1] == _SPACE.channels else x
    return _SPACE.clamp(x + float(epsilon) * torch.cos(7.0 * pixels + phase))


def rms_gradient_step(image: torch.Tensor, data_grad: torch.Tensor, epsilon: float) -> torch.Tensor:
    """``image + epsilon * g / rms(g)`` with the root-mean-square taken per example; detached.

    Invariant to a positive rescaling of the gradient (a summed or averaged loss give the
    same step). An example whose gradient is all zeros does not move.
    """
    g = data_grad.detach().to(image.dtype)
    rms = g.flatten(1).pow(2).mean(1).sqrt().clamp_min(1e-30).view(-1, *([1] * (g.dim() - 1)))
    return image.detach() + float(epsilon) * g / rms


# ----------------------------------------------------------------------------- plumbing
def _aa() -> Any:
    import adversarial_attack  # the student's file

    return adversarial_attack


def _utils() -> Any:
    import utils  # the student's part2/utils.py

    return utils


@contextlib.contextmanager
def _replaced(pairs: list[tuple[Any, str, Any]]) -> Iterator[None]:
    """Set ``module.name = value`` for each pair, restoring the old values afterwards."""
    saved = [(m, n, getattr(m, n)) for m, n, _ in pairs if hasattr(m, n)]
    try:
        for m, n, v in pairs:
            setattr(m, n, v)
        yield
    finally:
        for m, n, v in saved:
            setattr(m, n, v)


def _clone(t: Any) -> Any:
    return t.detach().cpu().clone() if isinstance(t, torch.Tensor) else t


def _plain(value: Any) -> Any:
    """Numbers, strings and tensors as they are; anything else as its type name (for reports)."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, torch.Tensor):
        return _clone(value)
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    np = sys.modules.get("numpy")
    if np is not None and isinstance(value, (np.ndarray, np.generic)):
        return value  # the wire format carries arrays and numpy scalars
    return f"<{type(value).__name__}>"


def _error_text(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:1500]


def device() -> str:
    """'cuda' when the worker sees a GPU, else 'cpu' (the smoke trainings use it)."""
    return "cuda" if torch.cuda.is_available() else "cpu"


def make_model(state: dict[str, torch.Tensor]) -> nn.Module:
    """The instructor's SmallNet (models.py in the staging folder) with the given weights, eval mode."""
    import models

    model = models.SmallNet()
    model.load_state_dict(state)
    return _SPACE.adapt(model).eval()


def make_linear(channels: int, height: int, width: int, seed: int, classes: int = 10) -> nn.Module:
    """A seeded linear classifier on ``[B, C, H, W]`` images (shape-generic PGD checks)."""
    g = torch.Generator().manual_seed(seed)
    model = nn.Sequential(nn.Flatten(), nn.Linear(channels * height * width, classes))
    with torch.no_grad():
        model[1].weight.copy_(torch.randn(model[1].weight.shape, generator=g) * 0.5)
        model[1].bias.copy_(torch.randn(model[1].bias.shape, generator=g) * 0.5)
    return model.eval()


# ----------------------------------------------------------------------------- fgsm_attack
def fgsm_attack_probe(image: torch.Tensor, data_grad: torch.Tensor, epsilon: float | None) -> dict[str, Any]:
    """Call ``fgsm_attack`` (default epsilon when ``epsilon`` is None); report whether it changed its inputs."""
    x, g = image.clone(), data_grad.clone()
    out = _aa().fgsm_attack(x, g) if epsilon is None else _aa().fgsm_attack(x, g, epsilon)
    # The inputs after the call go back too: the grader compares them itself (student code in
    # this process can patch torch.equal, so the booleans here are only a hint).
    return {"out": out if isinstance(out, torch.Tensor) else _plain(out),
            "image_changed": not torch.equal(x, image), "grad_changed": not torch.equal(g, data_grad),
            "image_after": x.detach(), "grad_after": g.detach()}


def input_gradient(model: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Harness: d CE(model(x), y) / dx (mean over the batch), the gradient FGSM is given."""
    x = images.detach().clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(nn.functional.cross_entropy(model(x), labels), x)
    return grad


def fgsm_on_model(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, epsilon: float) -> Any:
    """``fgsm_attack(images, dCE/dx, epsilon)`` on the given model (the smoke check's attack)."""
    return _aa().fgsm_attack(images.clone(), input_gradient(model, images, labels), epsilon)


# ----------------------------------------------------------------------------- fgsm_loss
def fgsm_loss_probe(model: nn.Module, inputs: torch.Tensor, labels: torch.Tensor, alpha: float, epsilon: float,
                    return_preds: bool | None, stand_in: bool = True) -> dict[str, Any]:
    """Call ``fgsm_loss`` as the training loop does, then ``zero_grad`` and ``loss.backward()``.

    With ``stand_in``, the module's ``fgsm_attack`` is replaced during the call by
    :func:`rms_gradient_step` (recording what it was given). ``return_preds=None`` omits
    the argument (its default). Reports the returned value(s), the parameters' gradients
    after the backward pass (by parameter name), whether ``inputs`` changed, and the
    recorded stand-in calls.
    """
    aa = _aa()
    calls: list[dict[str, Any]] = []

    def fgsm_stand_in(image: torch.Tensor, data_grad: torch.Tensor, epsilon: float = 0.25) -> torch.Tensor:
        if not isinstance(data_grad, torch.Tensor):
            raise TypeError(f"fgsm_attack was called with data_grad={data_grad!r}: no gradient reached the "
                            "images (they must require grad before the forward pass)")
        calls.append({"image": _clone(image), "data_grad": _clone(data_grad), "epsilon": float(epsilon)})
        return rms_gradient_step(image, data_grad, epsilon)

    x = inputs.clone()
    criterion = nn.CrossEntropyLoss()
    args = {ALPHA: alpha, EPSILON: epsilon}
    kwargs = {} if return_preds is None else {"return_preds": return_preds}
    model.zero_grad(set_to_none=True)
    with _replaced([(aa, "fgsm_attack", fgsm_stand_in)] if stand_in else []):
        result = aa.fgsm_loss(model, criterion, x, labels, args, **kwargs)
    report: dict[str, Any] = {"calls": calls, "inputs_changed": not torch.equal(x, inputs),
                              "kind": type(result).__name__, "length": len(result) if isinstance(result, (tuple, list)) else None}
    loss = result[0] if isinstance(result, (tuple, list)) and len(result) >= 1 else result
    preds = result[1] if isinstance(result, (tuple, list)) and len(result) >= 2 else None
    report["preds"] = _plain(preds)
    report["loss"] = _clone(loss) if isinstance(loss, torch.Tensor) else _plain(loss)
    report["loss_requires_grad"] = bool(isinstance(loss, torch.Tensor) and loss.requires_grad)
    report["grads"], report["backward_error"] = None, None
    if isinstance(loss, torch.Tensor) and loss.requires_grad:
        model.zero_grad(set_to_none=True)  # as the training loop does, after fgsm_loss and before backward
        try:
            loss.backward()
        except RuntimeError as exc:  # e.g. a graph freed by an earlier backward inside fgsm_loss
            report["backward_error"] = _error_text(exc)
        else:
            report["grads"] = {n: (_clone(p.grad) if p.grad is not None else None) for n, p in model.named_parameters()}
    model.zero_grad(set_to_none=True)
    return report


# ----------------------------------------------------------------------------- pgd_attack
def pgd_probe(model: nn.Module, data: torch.Tensor, target: torch.Tensor, epsilon: float, alpha: float,
              num_iter: int) -> dict[str, Any]:
    """Call ``pgd_attack`` with cross-entropy; report the result, its autograd state and whether ``data`` changed."""
    x = data.clone()
    out = _aa().pgd_attack(model, x, target, nn.CrossEntropyLoss(), {ALPHA: alpha, EPSILON: epsilon, NUM_ITER: num_iter})
    is_tensor = isinstance(out, torch.Tensor)
    return {"out": _clone(out) if is_tensor else _plain(out), "type": type(out).__name__,
            "requires_grad": bool(is_tensor and out.requires_grad),
            "grad_fn": (type(out.grad_fn).__name__ if is_tensor and out.grad_fn is not None else None),
            "dtype": str(out.dtype) if is_tensor else None,
            "data_changed": not torch.equal(x, data)}


def pgd_linear_probe(data: torch.Tensor, target: torch.Tensor, seed: int, epsilon: float, alpha: float,
                     num_iter: int) -> dict[str, Any]:
    """:func:`pgd_probe` on the seeded linear classifier of :func:`make_linear` (any image shape)."""
    channels, height, width = data.shape[1:]
    return pgd_probe(make_linear(channels, height, width, seed), data, target, epsilon, alpha, num_iter)


def pgd_on_model(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, epsilon: float, alpha: float,
                 num_iter: int, batch_size: int = 500) -> Any:
    """``pgd_attack`` over ``images`` in batches (the strength and smoke checks)."""
    outs = []
    for i in range(0, len(images), batch_size):
        out = _aa().pgd_attack(model, images[i:i + batch_size].clone(), labels[i:i + batch_size],
                               nn.CrossEntropyLoss(), {ALPHA: alpha, EPSILON: epsilon, NUM_ITER: num_iter})
        if not isinstance(out, torch.Tensor):
            return _plain(out)
        outs.append(out.detach())
    return torch.cat(outs)


# ----------------------------------------------------------------------------- test_attack
def test_attack_probe(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, batch_size: int,
                      attack: str, attack_args: dict[str, Any], stand_in: bool = True) -> dict[str, Any]:
    """Run ``test_attack`` on a fixed loader, with both attacks replaced by :func:`pattern_perturb`.

    Records every call of the attacks (inputs, the gradient given to ``fgsm_attack``, the
    arguments). Returns ``{"result": what test_attack returned, "calls": [...]}``.
    """
    aa = _aa()
    calls: list[dict[str, Any]] = []

    def fgsm_stand_in(image: torch.Tensor, data_grad: Any, epsilon: float = 0.25) -> torch.Tensor:
        calls.append({"attack": FGSM, "image": _clone(image), "epsilon": _plain(epsilon),
                      "data_grad": _clone(data_grad) if isinstance(data_grad, torch.Tensor) else _plain(data_grad)})
        return pattern_perturb(image, float(epsilon))

    watched = model

    def pgd_stand_in(model: nn.Module, data: torch.Tensor, target: torch.Tensor, criterion: Any, args: Any) -> torch.Tensor:
        # Same parameter names as the assignment's pgd_attack: the caller may pass them by keyword.
        calls.append({"attack": PGD, "image": _clone(data), "target": _clone(target), "args": _plain(args),
                      "same_model": model is watched, "criterion": type(criterion).__name__})
        return pattern_perturb(data, float(args[EPSILON]))

    dataset = torch.utils.data.TensorDataset(images, labels)
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=False)
    replace = [(aa, "fgsm_attack", fgsm_stand_in), (aa, "pgd_attack", pgd_stand_in)] if stand_in else []
    with _replaced(replace):
        result = aa.test_attack(model, loader, attack, dict(attack_args))
    return {"result": _plain(result) if not isinstance(result, (tuple, list)) else [_plain(r) for r in result],
            "calls": calls}


# ----------------------------------------------------------------------------- train
def train_probe(state: dict[str, torch.Tensor], images: torch.Tensor, labels: torch.Tensor, valid_images: torch.Tensor,
                valid_labels: torch.Tensor, strategy: str, defense_args: dict[str, Any], batch_size: int,
                record_steps: int = 2) -> dict[str, Any]:
    """One epoch of the student's ``train`` on a tiny, unshuffled loader, watched closely.

    ``pgd_attack`` (as ``utils`` and ``adversarial_attack`` see it) is replaced by a stand-in
    returning ``pattern_perturb(data, epsilon)``; ``fgsm_loss`` stays the student's (wrapped to
    record its calls) but the ``fgsm_attack`` it calls is :func:`rms_gradient_step`.
    Recorded: the batch size of every forward pass, every stand-in call, and for the first
    ``record_steps`` optimizer steps the parameters and their gradients (by name) as the
    optimizer saw them. Errors from the student's code are reported, not raised.
    """
    import models

    aa, utils = _aa(), _utils()
    model = watched = _SPACE.adapt(models.SmallNet())
    model.load_state_dict(state)
    names = {id(p): n for n, p in model.named_parameters()}
    forwards: list[int] = []
    pgd_calls: list[dict[str, Any]] = []
    fgsm_calls: list[dict[str, Any]] = []
    attack_calls: list[float] = []
    steps: list[dict[str, Any]] = []

    inner_forward = model.forward

    def recorded_forward(x: torch.Tensor, *a: Any, **k: Any) -> torch.Tensor:
        forwards.append(int(x.shape[0]))
        return inner_forward(x, *a, **k)

    model.forward = recorded_forward  # type: ignore[method-assign]  # instance attribute: model(x) and model.forward(x)

    def pgd_stand_in(model: nn.Module, data: torch.Tensor, target: torch.Tensor, criterion: Any, args: Any) -> torch.Tensor:
        pgd_calls.append({"data": _clone(data), "target": _clone(target), "args": _plain(args),
                          "same_model": model is watched, "criterion": type(criterion).__name__})
        return pattern_perturb(data, float(args[EPSILON]))

    real_fgsm_loss = aa.fgsm_loss

    def recorded_fgsm_loss(model: nn.Module, criterion: Any, inputs: torch.Tensor, labels: torch.Tensor,
                           defense_args: Any, return_preds: bool = True) -> Any:
        # Same parameter names as the assignment's fgsm_loss: the loop may pass them by keyword.
        fgsm_calls.append({"inputs": _clone(inputs), "labels": _clone(labels), "args": _plain(defense_args),
                           "same_model": model is watched, "return_preds": bool(return_preds)})
        return real_fgsm_loss(model, criterion, inputs, labels, defense_args, return_preds=return_preds)

    def fgsm_attack_stand_in(image: torch.Tensor, data_grad: torch.Tensor, epsilon: float = 0.25) -> torch.Tensor:
        if not isinstance(data_grad, torch.Tensor):
            raise TypeError(f"fgsm_attack was called with data_grad={data_grad!r}: no gradient reached the images")
        attack_calls.append(float(epsilon))
        return rms_gradient_step(image, data_grad, epsilon)

    def step_hook(optimizer: Any, args: Any, kwargs: Any) -> None:
        if len(steps) >= record_steps:
            return
        params, grads = {}, {}
        for group in optimizer.param_groups:
            for p in group["params"]:
                name = names.get(id(p))
                if name is not None:
                    params[name] = _clone(p)
                    grads[name] = _clone(p.grad) if p.grad is not None else None
        steps.append({"params": params, "grads": grads, "forwards_before": len(forwards)})

    trainloader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(images, labels), batch_size=batch_size,
                                              shuffle=False)
    validloader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(valid_images, valid_labels),
                                              batch_size=len(valid_labels), shuffle=False)
    from torch.optim.optimizer import register_optimizer_step_pre_hook

    hook = register_optimizer_step_pre_hook(step_hook)
    error = None
    replace = ([(m, "pgd_attack", pgd_stand_in) for m in (aa, utils)]
               + [(m, "fgsm_loss", recorded_fgsm_loss) for m in (aa, utils)] + [(aa, "fgsm_attack", fgsm_attack_stand_in)])
    try:
        with _replaced(replace):
            utils.train(model, trainloader, validloader, num_epochs=1, defense_strategy=strategy,
                        defense_args=dict(defense_args))
    except Exception as exc:  # reported to the grader, which explains it
        error = _error_text(exc)
    finally:
        hook.remove()
    return {"forwards": forwards, "pgd_calls": pgd_calls, "fgsm_calls": fgsm_calls, "attack_calls": attack_calls,
            "steps": steps, "error": error}


# ----------------------------------------------------------------------------- smoke trainings
def smoke_loaders(images_u8: torch.Tensor, labels: torch.Tensor, valid_u8: torch.Tensor, valid_labels: torch.Tensor,
                  batch_size: int, seed: int) -> tuple[Any, Any]:
    """The smoke trainings' loaders: uint8 pixels made the input space's images batch by batch
    (the whole set as 3 x 32 x 32 floats would hold 4x more memory); training order shuffled
    from ``seed``. The grader builds its standard-training baseline with this same function.
    """
    def collate(batch: list[tuple[torch.Tensor, torch.Tensor]]) -> tuple[torch.Tensor, torch.Tensor]:
        images = torch.stack([b[0] for b in batch]).float().div_(255.0)
        return _SPACE.from_pixels(images), torch.stack([b[1] for b in batch])

    generator = torch.Generator().manual_seed(seed)
    trainloader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(images_u8, labels), batch_size=batch_size,
                                              shuffle=True, generator=generator, collate_fn=collate)
    validloader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(valid_u8, valid_labels), batch_size=500,
                                              shuffle=False, collate_fn=collate)
    return trainloader, validloader


def make_optimizer(params: list[torch.nn.Parameter], recipe: dict[str, Any] | None) -> tuple[Any, Any]:
    """(optimizer, scheduler or None) of a training recipe (``[conventions.part2] train_recipe``):
    ``{"optimizer": "adam" | "sgd", "lr", "momentum", "step_size", "gamma"}``; default Adam 1e-3."""
    recipe = dict(recipe or {})
    name = str(recipe.get("optimizer", "adam")).lower()
    lr = float(recipe.get("lr", 1e-3))
    if name == "sgd":
        optimizer = torch.optim.SGD(params, lr=lr, momentum=float(recipe.get("momentum", 0.0)))
    elif name == "adam":
        optimizer = torch.optim.Adam(params, lr=lr)
    else:
        raise ValueError(f"unknown optimizer {name!r} in the training recipe: expected 'adam' or 'sgd'")
    scheduler = None
    if recipe.get("step_size"):
        scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=int(recipe["step_size"]),
                                                    gamma=float(recipe.get("gamma", 0.1)))
    return optimizer, scheduler


def harness_train(model: nn.Module, trainloader: Any, validloader: Any, num_epochs: int, defense_strategy: str,
                  defense_args: dict[str, Any], recipe: dict[str, Any] | None = None) -> nn.Module:
    """The training loop of the handout's ``train`` for STANDARD and FGSM (instructor code, given in
    the handout): the edition's recipe (default Adam, lr 1e-3; the UvA template's SGD with
    momentum and StepLR), ``fgsm_loss`` from ``adversarial_attack`` for FGSM, the weights of the
    best validation epoch kept. The FGSM smoke training grades ``fgsm_loss`` with it, so a bug in
    the student's ``train`` is charged to ``train``'s own checks."""
    import copy

    if defense_strategy not in (STANDARD, FGSM):
        raise ValueError(f"the harness loop trains STANDARD or FGSM, not {defense_strategy!r}")
    params = list(model.parameters())
    dev = params[0].device if params else torch.device("cpu")
    criterion = nn.CrossEntropyLoss()
    optimizer, scheduler = make_optimizer(params, recipe)
    best, best_acc = copy.deepcopy(model.state_dict()), -1.0
    for _ in range(num_epochs):
        model.train()
        for inputs, labels in trainloader:
            inputs, labels = inputs.to(dev), labels.to(dev)
            if defense_strategy == STANDARD:
                loss = criterion(model(inputs), labels)
            else:
                out = _aa().fgsm_loss(model, criterion, inputs, labels, defense_args=defense_args, return_preds=True)
                loss = out[0] if isinstance(out, (tuple, list)) else out
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        if scheduler is not None:
            scheduler.step()
        model.eval()
        correct, seen = 0, 0
        with torch.no_grad():
            for inputs, labels in validloader:
                inputs, labels = inputs.to(dev), labels.to(dev)
                correct += int((model(inputs).argmax(1) == labels).sum())
                seen += labels.numel()
        if correct / max(seen, 1) > best_acc:
            best_acc, best = correct / max(seen, 1), copy.deepcopy(model.state_dict())
    model.load_state_dict(best)
    return model


def smoke_train(init_state: dict[str, torch.Tensor], images_u8: torch.Tensor, labels: torch.Tensor,
                valid_u8: torch.Tensor, valid_labels: torch.Tensor, strategy: str, defense_args: dict[str, Any],
                batch_size: int, num_epochs: int, seed: int, loop: str = "student",
                recipe: dict[str, Any] | None = None) -> dict[str, Any]:
    """Train SmallNet (from ``init_state``) with the student's ``train`` (``loop="student"``) or the
    handout's loop (``"harness"``, see :func:`harness_train`) and ``strategy``; return its weights.

    Images arrive as uint8 ``[N, 1, 28, 28]`` and become the input space's images here. The training
    loader shuffles with a generator seeded by ``seed``; the GPU is used when present.
    """
    import models

    dev = device()
    model = _SPACE.adapt(models.SmallNet())
    model.load_state_dict(init_state)
    model.to(dev)
    trainloader, validloader = smoke_loaders(images_u8, labels, valid_u8, valid_labels, batch_size, seed)
    if loop == "harness":
        returned = harness_train(model, trainloader, validloader, num_epochs=num_epochs, defense_strategy=strategy,
                                 defense_args=dict(defense_args), recipe=recipe)
    else:
        returned = _utils().train(model, trainloader, validloader, num_epochs=num_epochs, defense_strategy=strategy,
                                  defense_args=dict(defense_args))
    trained = returned[0] if isinstance(returned, (tuple, list)) else returned
    if not isinstance(trained, nn.Module):
        trained = model  # the loop trains in place; a missing return value is not what this check grades
    return {"state": {k: v.detach().float().cpu().clone() for k, v in trained.state_dict().items()},
            "device": dev, "returned": type(returned).__name__}

